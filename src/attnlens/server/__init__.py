"""`attnlens serve`: a local web app over the capture and views (needs the `server` extra)."""

from .app import create_app
from .limits import Limits

__all__ = ["create_app", "Limits"]
