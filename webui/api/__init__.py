"""The A1111-compatible HTTP API under ``/sdapi/v1`` (a1111-conventions §5)."""

from webui.api.routes import mount_api

__all__ = ["mount_api"]
