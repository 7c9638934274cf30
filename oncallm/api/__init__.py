"""HTTP API: the FastAPI app factory, problem+json errors and JSON routes under /api/v1."""

from oncallm.api.app import create_app

__all__ = ["create_app"]
