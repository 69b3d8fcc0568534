"""The web UI tabs, one module each."""
