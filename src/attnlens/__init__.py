"""attnlens: capture, view, measure and explain the attention heads of BERT-style encoders.

This module is the public API only; the layers live in the subpackages (see the README's
Architecture section): capturing -> corpus / patterns -> views -> analysis -> pretraining -> server -> cli.
"""

from . import views  # noqa: F401  (registers the notebook views behind Capture.head_view() & co.)
from .analysis.causal import causal_checks
from .analysis.explain import explain
from .analysis.importance import HeadImportance, head_importance, pruning_curve
from .analysis.lenses import LENSES, lens
from .analysis.run import Atlas, atlas
from .analysis.search import SearchIndex, build_index, search
from .analysis.syntax import DependencyHeads, dependency_heads
from .capturing import (
                        DEFAULT_MODEL,
                        ArchSpec,
                        Capture,
                        LoadedModel,
                        capture,
                        capture_batch,
                        hooks,
                        load_model,
                        register_arch,
                        supported_families,
)
from .errors import AttnlensError
from .finetuning import classify, finetune
from .finetuning.compare import diff
from .patterns import PATTERN_NAMES
from .pretraining import fill_mask, next_sentence_probability, pretrain
from .views.html import to_html

__all__ = [
    "ArchSpec", "Atlas", "AttnlensError", "Capture", "DEFAULT_MODEL", "LoadedModel", "PATTERN_NAMES", "atlas",
    "capture", "capture_batch", "causal_checks", "explain", "fill_mask", "hooks", "load_model",
    "next_sentence_probability", "pretrain", "register_arch", "to_html",
]
__all__ += ["DependencyHeads", "SearchIndex", "build_index", "dependency_heads", "search"]
__all__ += ["classify", "diff", "finetune"]
__all__ += ["HeadImportance", "LENSES", "head_importance", "lens", "pruning_curve"]
__all__ += ["supported_families"]
__version__ = "0.1.0"
