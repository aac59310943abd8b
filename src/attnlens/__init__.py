"""attnlens: capture, view, measure and explain the attention heads of BERT-style encoders."""

from .capture import Capture
from .errors import AttnlensError
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .record import capture, capture_batch
from .views.html import to_html

__all__ = ["Capture", "AttnlensError", "DEFAULT_MODEL", "LoadedModel", "load_model", "capture", "capture_batch"]
__version__ = "0.1.0"
__all__ += ["to_html"]

from .atlas_run import Atlas, atlas  # noqa: E402
from .causal import causal_checks  # noqa: E402
from .explain_run import explain  # noqa: E402
from .patterns import PATTERN_NAMES  # noqa: E402

__all__ += ["Atlas", "atlas", "causal_checks", "explain", "PATTERN_NAMES"]

from .pretraining import fill_mask, next_sentence_probability, pretrain  # noqa: E402

__all__ += ["fill_mask", "next_sentence_probability", "pretrain"]
