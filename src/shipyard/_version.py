"""The package version, in the base layer so any layer may print it."""

__version__ = "0.1.0"
