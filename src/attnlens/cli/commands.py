"""Imports every command module so each registers its commands on the shared app."""

from . import (
    atlas,  # noqa: F401
    capture,  # noqa: F401
    pretrain,  # noqa: F401
    serve,  # noqa: F401
    view,  # noqa: F401
)
