"""attnlens: capture, view, measure and explain the attention heads of BERT-style encoders."""

from .atlas_run import Atlas, atlas
from .capture import Capture
from .causal import causal_checks
from .errors import AttnlensError
from .explain_run import explain
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .patterns import PATTERN_NAMES
from .pretraining import fill_mask, next_sentence_probability, pretrain
from .record import capture, capture_batch
from .views.html import to_html

__all__ = [
    "Atlas", "AttnlensError", "Capture", "DEFAULT_MODEL", "LoadedModel", "PATTERN_NAMES", "atlas", "capture",
    "capture_batch", "causal_checks", "explain", "fill_mask", "load_model", "next_sentence_probability", "pretrain",
    "to_html",
]
__version__ = "0.1.0"
