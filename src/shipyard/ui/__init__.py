"""The web UI: server-rendered pages over the same stores and services as the CLI.

``shipyard ui`` serves it; :func:`shipyard.ui.app.create_app` builds the app.
"""
