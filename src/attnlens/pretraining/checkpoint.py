"""Run folders and checkpoints: safetensors files written atomically (temporary folder + rename).

Layout of a run folder::

    RUN_DIR/run.json                 the TrainConfig and corpus description
    RUN_DIR/metrics.jsonl            one JSON line per train log / evaluation
    RUN_DIR/checkpoints/step-000500/ config.json, model.safetensors, tokenizer files,
                                     trainer_state.json (+ optimizer.safetensors in the newest)

A checkpoint folder appears only complete (it is renamed into place last), so a run killed
at any moment leaves every `step-*` folder loadable; stale `.tmp-*` folders are removed on resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import AttnlensError
from ..io import atomic_write_text
from .vocab import save_tokenizer

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
MODEL_CONFIG = "config.json"  # what makes a folder a loadable model


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def write_json_atomic(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n", fsync=True)


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint of a run that is a loadable model folder (has config.json), by step.

    The one rule for finding checkpoints (resume, emergence, predictions, the server): a checkpoint
    folder is renamed into place complete, so a `step-*` folder with config.json is a whole checkpoint.
    """
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("step-") and (p / MODEL_CONFIG).is_file():
            try:
                found.append((int(p.name[5:]), p))
            except ValueError:
                continue
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint folder of a run (None when it has none)."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def model_folder(path: str | Path) -> Path:
    """A loadable model folder: `path` itself when it is one (config.json), else the newest checkpoint of
    the run folder `path`; a clear error when it is neither."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AttnlensError(f"{path} does not exist")
    if (path / MODEL_CONFIG).is_file():
        return path
    newest = latest_checkpoint(path)
    if newest is None:
        raise AttnlensError(f"{path} is neither a model folder ({MODEL_CONFIG}) nor a pretraining run folder "
                            f"with checkpoints ({CHECKPOINTS}/step-*)")
    return newest


def optimizer_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into flat tensors (for safetensors) and JSON-able rest."""
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, optimizer, trainer_state: dict) -> Path:
    """Write checkpoint `step` atomically; keep the optimizer state only in the newest one."""
    final = step_dir(run_dir, step)
    tmp = final.with_name(".tmp-" + final.name)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    save_tokenizer(tokenizer, tmp)
    tensors, meta = optimizer_to_tensors(optimizer.state_dict())
    save_file(tensors, str(tmp / OPTIMIZER_FILE))
    rng = {"torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        rng["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    state = dict(trainer_state, step=step, optimizer=meta, rng=rng)
    (tmp / TRAINER_STATE).write_text(json.dumps(state) + "\n", encoding="utf-8")
    _fsync_tree(tmp)
    if final.exists():  # a re-run of the same step after a resume: replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old_step, folder in list_checkpoints(run_dir):
        if old_step != step and (folder / OPTIMIZER_FILE).exists():
            (folder / OPTIMIZER_FILE).unlink()
    return final


def clean_partial(run_dir: Path) -> None:
    """Remove temporary folders a killed run left behind."""
    root = Path(run_dir) / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def load_resume_state(folder: Path) -> tuple[dict, dict]:
    """(trainer_state, optimizer state_dict) of a checkpoint that has its optimizer state."""
    state = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    if not (folder / OPTIMIZER_FILE).is_file():
        raise AttnlensError(f"checkpoint {folder} has no optimizer state; only the newest one can be resumed")
    optim = optimizer_from_tensors(load_file(str(folder / OPTIMIZER_FILE)), state["optimizer"])
    return state, optim
