"""`attnlens.diff` on run folders: a model and its fine-tuned copy compared head by head (analysis/diff.py)."""

from __future__ import annotations

import os
from pathlib import Path

from ..analysis.diff import HeadDiff
from ..analysis.diff import diff as diff_models
from ..capturing import LoadedModel
from ..pretraining.checkpoint import model_folder


def _model(model):
    """A LoadedModel or None as given; a run folder -> its newest checkpoint; other folders and hub names as given."""
    if model is None or isinstance(model, LoadedModel):
        return model
    path = Path(model).expanduser()
    return str(model_folder(path)) if path.exists() else str(model)


def diff(model_a: LoadedModel | str | os.PathLike | None, model_b: LoadedModel | str | os.PathLike | None,
         corpus=None, **options) -> HeadDiff:
    """Per head, how model B's attention differs from model A's over `corpus` (mean total-variation distance,
    atlas scores and labels, gradient head importance; see attnlens.analysis.diff). Models: run folders (their
    newest checkpoint), model folders, hub names, LoadedModels, or None for the default model; same architecture
    and tokenizer."""
    return diff_models(_model(model_a), _model(model_b), corpus, **options)
