"""Imports every command module so each registers its commands on the shared app."""

from . import (
    atlas,  # noqa: F401  (imported to register its commands)
    capture,  # noqa: F401  (imported to register its command)
    finetune,  # noqa: F401  (imported to register its commands)
    importance,  # noqa: F401  (imported to register its command)
    pretrain,  # noqa: F401  (imported to register its commands)
    serve,  # noqa: F401  (imported to register its command)
    syntax,  # noqa: F401  (imported to register its commands)
    view,  # noqa: F401  (imported to register its command)
)
