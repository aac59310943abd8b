"""What the `attnlens pretrain` command does: pick the corpus, the settings, and train (or resume)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import corpus as corpora
from ..errors import AttnlensError
from .config import TrainConfig
from .trainer import RUN_FILE, pretrain


def _documents(corpus: str | None, dataset: str | None):
    """(train, heldout or None, description) from a file/folder or a built-in dataset."""
    if corpus and dataset:
        raise AttnlensError("give either --corpus or --dataset, not both")
    if corpus:
        path = Path(corpus).expanduser()
        if not path.exists():
            raise AttnlensError(f"corpus {corpus} does not exist")
        return corpora.read_documents(path), None, {"corpus": str(path)}
    name = dataset or "default"
    return (corpora.load_documents(name, split="train"), corpora.load_documents(name, split="heldout"),
            {"dataset": name})


def run_pretraining(out, *, corpus=None, dataset=None, settings: dict | None = None, resume: bool = False,
                    vocab=None, device: str = "auto", progress: bool = True) -> Path:
    """Train (or with `resume`, continue) the run in `out`; `settings` are TrainConfig fields given explicitly."""
    settings = dict(settings or {})
    run_dir = Path(out).expanduser()
    config = None
    if resume:
        run_file = run_dir / RUN_FILE
        if not run_file.is_file():
            raise AttnlensError(f"cannot resume: {run_dir} is not a run folder (no {RUN_FILE})")
        saved = json.loads(run_file.read_text(encoding="utf-8"))
        differ = [k for k, v in settings.items() if saved["config"].get(k) != v]
        if differ:
            raise AttnlensError(f"--resume with settings that differ from the run's: {', '.join(differ)}")
        if corpus is None and dataset is None:  # the corpus the run was started with
            corpus, dataset = saved["corpus"].get("corpus"), saved["corpus"].get("dataset")
    else:
        config = TrainConfig(**settings)
    train, heldout, info = _documents(corpus, dataset)
    return pretrain(train, heldout, run_dir, config, resume=resume, vocab=vocab, device=device,
                    corpus_info=info, progress=progress)
