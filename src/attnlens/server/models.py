"""The models a server holds: loaded once at start, each with a lock, and what each can do.

A masked-LM head is kept when the checkpoint has one (see pretraining.predict.masked_lm_class),
so fill-mask works on it; a fine-tuned classifier (`attnlens finetune`'s run or checkpoint folder) is
loaded with its classification head, so each capture carries its prediction (finetuning.describe).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..capturing import DEFAULT_MODEL, Capture, LoadedModel, load_model
from ..errors import AttnlensError
from ..finetuning.describe import capture_prediction, classifier_info
from ..finetuning.predict import HEADS, auto_class, classifier_class
from ..pretraining.checkpoint import model_folder
from ..pretraining.predict import architectures, has_mlm_head, masked_lm_class


@dataclass
class ServedModel:
    """One model a server offers, under the name clients use to pick it."""

    name: str
    lm: LoadedModel
    lock: threading.Lock = field(default_factory=threading.Lock)  # capture hooks are per model: one job at a time

    @property
    def has_mlm(self) -> bool:
        return has_mlm_head(self.lm)

    def prediction(self, cap: Capture) -> dict | None:
        """A fine-tuned classifier's prediction for a capture of this model (finetuning.describe), else None."""
        if cap.logits is None:
            return None
        with self.lock:  # the tokenizer, like the hooks, serves one job at a time
            return capture_prediction(self.lm, cap)

    def describe(self, max_tokens: int) -> dict:
        lm = self.lm
        described = {"name": self.name, "family": lm.spec.family, "layers": lm.num_layers, "heads": lm.num_heads,
                     "d_head": lm.d_head, "max_tokens": min(max_tokens, lm.max_length), "mlm": self.has_mlm}
        classifier = classifier_info(lm)  # {"kind", "labels"} of a fine-tuned classifier
        return described if classifier is None else {**described, "classifier": classifier}


def head_class(source: str):
    """The class that loads `source` with its head: a fine-tuned classifier's AutoModelFor*Classification, a
    masked-LM model's (pretraining.predict.masked_lm_class), else None (the encoder alone)."""
    if any(arch.endswith(tuple(HEADS)) for arch in architectures(source)):
        return auto_class(classifier_class(source))
    return masked_lm_class(source)


def load_served_model(spec: str | None) -> LoadedModel:
    """Load a model given on the command line: None or 'default' = the default model; a local
    folder = that model folder, or a pretraining or fine-tuning run's newest checkpoint; else a hub
    name. A masked-LM or classification head is kept when present (head_class).

    Not through the shared model cache: each served model is its own object, guarded by its own lock.
    """
    if spec is None or spec in ("default", DEFAULT_MODEL):
        return load_model()
    path = Path(spec).expanduser()
    source = str(model_folder(path)) if path.is_dir() else spec
    lm = load_model(source, model_class=head_class(source))
    lm.name = spec
    return lm


def serve_models(models) -> dict[str, ServedModel]:
    """{name: ServedModel} from a dict of LoadedModels or a list of names/paths (None = default)."""
    if isinstance(models, dict):
        items = list(models.items())
    else:
        specs = list(models) or [None]
        items = [(DEFAULT_MODEL if spec in (None, "default") else spec, load_served_model(spec)) for spec in specs]
    if not items:
        raise AttnlensError("a server needs at least one model")
    served = {}
    for name, lm in items:
        if not isinstance(lm, LoadedModel):
            raise AttnlensError(f"model {name!r} must be a LoadedModel, not {type(lm).__name__}")
        if name in served:
            raise AttnlensError(f"model name {name!r} given twice")
        served[str(name)] = ServedModel(str(name), lm)
    return served
