"""The models a server holds: loaded once at start, each with a lock, and what each can do.

A masked-LM head is kept when the checkpoint has one (architectures ending in ForMaskedLM,
or BertForPreTraining as written by `attnlens pretrain`), so fill-mask works on it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AttnlensError
from ..models import DEFAULT_MODEL, LoadedModel, load_model

MLM_PRETRAINING = ("BertForPreTraining", "AlbertForPreTraining")  # heads that include a masked-LM head


@dataclass
class ServedModel:
    """One model a server offers, under the name clients use to pick it."""

    name: str
    lm: LoadedModel
    lock: threading.Lock = field(default_factory=threading.Lock)  # capture hooks are per model: one job at a time

    @property
    def has_mlm(self) -> bool:
        return has_mlm_head(self.lm)

    def describe(self, max_tokens: int) -> dict:
        lm = self.lm
        return {"name": self.name, "family": lm.spec.family, "layers": lm.num_layers, "heads": lm.num_heads,
                "d_head": int(lm.config.hidden_size) // lm.num_heads if lm.spec.family != "distilbert"
                else int(lm.config.dim) // lm.num_heads,
                "max_tokens": min(max_tokens, lm.max_length), "mlm": self.has_mlm}


def has_mlm_head(lm: LoadedModel) -> bool:
    """Whether `lm.model` predicts tokens (a masked-LM head)."""
    cls = type(lm.model).__name__
    return cls.endswith("ForMaskedLM") or cls in MLM_PRETRAINING


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoints/step-*` folder with a config.json under a pretraining run folder."""
    root = folder / "checkpoints"
    if not root.is_dir():
        return None
    steps = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("step-") and (p / "config.json").is_file():
            try:
                steps.append((int(p.name[5:]), p))
            except ValueError:
                continue
    return max(steps)[1] if steps else None


def _architectures(source: str) -> list[str]:
    path = Path(source) / "config.json"
    if path.is_file():
        try:
            return list(json.loads(path.read_text(encoding="utf-8")).get("architectures") or [])
        except (OSError, ValueError):
            return []
    try:
        from transformers import AutoConfig  # noqa: PLC0415

        return list(getattr(AutoConfig.from_pretrained(source), "architectures", None) or [])
    except Exception:  # noqa: BLE001  (unknown hub names fail later, in load_model, with a clear message)
        return []


def load_served_model(spec: str | None) -> LoadedModel:
    """Load a model given on the command line: None or 'default' = the default model; a
    pretraining run folder = its newest checkpoint; a masked-LM head is kept when present."""
    if spec is None or spec in ("default", DEFAULT_MODEL):
        return load_model()
    source = spec
    path = Path(spec).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        newest = latest_checkpoint(path)
        if newest is None:
            raise AttnlensError(f"{spec} is neither a model folder (config.json) nor a pretraining run (checkpoints/step-*)")
        source = str(newest)
    archs = _architectures(source)
    model_class = None
    if any(a in MLM_PRETRAINING for a in archs):
        import transformers  # noqa: PLC0415

        model_class = getattr(transformers, next(a for a in archs if a in MLM_PRETRAINING))
    elif any(a.endswith("ForMaskedLM") for a in archs):
        from transformers import AutoModelForMaskedLM as model_class  # noqa: PLC0415,N813
    lm = load_model(source, model_class=model_class)
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
