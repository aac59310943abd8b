"""Imports every command module so each registers its commands on the shared app."""

from . import capture  # noqa: F401
from . import view  # noqa: F401
from . import serve  # noqa: F401
from . import pretrain  # noqa: F401
from . import atlas  # noqa: F401
