"""Recorders of the families whose attention is not plain softmax(q . k / sqrt(d)), and the fallback.

Importing this package registers them (capturing/__init__ does): `disentangled` (DeBERTa-v2/v3),
`relative_bias` (MPNet) and `output_attentions` (any model_type without an ArchSpec entry).
`supported_families()` lists what each entry of the table gives.
"""

from . import deberta, fallback, interface, mpnet  # noqa: F401  (registers the recorders)
from .support import families_markdown, score_term_names, supported_families

__all__ = ["families_markdown", "score_term_names", "supported_families"]
