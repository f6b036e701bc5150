"""Fixtures shared by the whole suite: isolated settings and the real back ends."""
