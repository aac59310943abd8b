"""The capture layer: the architecture table, model loading, hooks, the one batcher and the Capture.

Everything above (patterns, views, analysis, pretraining, hosts) builds on these names.
"""

from .arch import ArchSpec, arch_specs, find_modules, register_arch, spec_for_config
from .attention import Forward, attention_from_qk, forward_attention, model_inputs, split_heads
from .batcher import MAX_BATCH_CELLS, Batch, TokenInfo, batches, encode, length_groups, token_info
from .data import Capture, register_viewer
from .families import families_markdown, score_term_names, supported_families  # also registers their recorders
from .hooks import hooks
from .inputs import Pair, check_pair, check_text
from .loading import DEFAULT_MODEL, LoadedModel, default_model_path, load_model, resolve_model
from .record import capture, capture_batch
from .recorders import Recorded, Recorder, recorder_names, register_recorder
from .scratch import reused_scratch

__all__ = [
    "DEFAULT_MODEL", "MAX_BATCH_CELLS", "ArchSpec", "Batch", "Capture", "Forward", "LoadedModel", "Pair",
    "Recorded", "Recorder", "TokenInfo", "recorder_names", "register_recorder",
    "arch_specs", "attention_from_qk", "batches", "capture", "capture_batch", "check_pair", "check_text",
    "default_model_path", "encode", "find_modules", "forward_attention", "hooks", "length_groups", "load_model",
    "model_inputs", "register_arch", "reused_scratch", "register_viewer", "resolve_model", "spec_for_config",
    "split_heads", "token_info", "supported_families", "families_markdown",
    "score_term_names",
]
