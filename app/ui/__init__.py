"""The dashboard: server-rendered pages at `/ui`."""
