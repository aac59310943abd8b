"""attnlens: capture, view, measure and explain the attention heads of BERT-style encoders."""

from .capture import Capture
from .errors import AttnlensError
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .record import capture, capture_batch
from .views.html import to_html

__all__ = ["Capture", "AttnlensError", "DEFAULT_MODEL", "LoadedModel", "load_model", "capture", "capture_batch"]
__version__ = "0.1.0"
__all__ += ["to_html"]
