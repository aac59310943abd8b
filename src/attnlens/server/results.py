"""A results folder, browsable: atlas reports and pretraining / fine-tuning runs found under it, and its
report files served safely (only listed kinds of files, never outside the folder).

A fine-tuning run (run.json with a "task") is listed with its task, steps and last held-out scores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..pretraining.checkpoint import list_checkpoints

REPORT_SUFFIXES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".png": "image/png",
                   ".svg": "image/svg+xml", ".csv": "text/csv; charset=utf-8", ".jsonl": "application/x-ndjson"}
ATLAS_MARKERS = ("scores.json", "report.html")
MAX_DEPTH = 4
MAX_ENTRIES = 500


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "_"))


def _report_files(folder: Path, root: Path) -> list[str]:
    return sorted(str(p.relative_to(root).as_posix()) for p in folder.iterdir()
                  if p.is_file() and _visible(p) and p.suffix.lower() in REPORT_SUFFIXES)


def _last_records(path: Path, tail: int = 16384):
    """The JSON object lines of the last `tail` bytes of a .jsonl file, newest first."""
    if not path.is_file():
        return
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - tail))
        lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def _run_summary(folder: Path) -> dict:
    """The last metrics line of a run, when it has metrics.jsonl (read from the end, bounded)."""
    return next(_last_records(folder / "metrics.jsonl"), {})


def _score(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _finetune_summary(folder: Path) -> dict | None:
    """A fine-tuning run's task (a task file by its name only), steps (done / planned), last held-out accuracy
    and macro-F1 (metrics.jsonl's last "eval" line, read from the end, bounded) and majority baseline; None
    when the folder's run.json is not a fine-tuning run's."""
    try:
        with open(folder / "run.json", "rb") as fh:
            record = json.loads(fh.read(1 << 20).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None
    task = record.get("task") if isinstance(record, dict) else None
    if not isinstance(task, dict) or "kind" not in task:
        return None  # a pretraining run
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    baseline = (record.get("baseline") or {}).get("majority") if isinstance(record.get("baseline"), dict) else None
    last = _run_summary(folder)
    heldout = next((r for r in _last_records(folder / "metrics.jsonl", 1 << 20) if r.get("kind") == "eval"), None)
    return {"task": Path(str(task.get("name", ""))).name, "kind": str(task["kind"]),
            "labels": [str(x) for x in task.get("labels") or []],
            "steps": last.get("step"), "planned_steps": config.get("steps"),
            "heldout": None if heldout is None else {"step": heldout.get("step"),
                                                     "accuracy": _score(heldout.get("accuracy")),
                                                     "macro_f1": _score(heldout.get("macro_f1"))},
            "baseline": None if not isinstance(baseline, dict) else {"accuracy": _score(baseline.get("accuracy")),
                                                                     "macro_f1": _score(baseline.get("macro_f1"))}}


def list_results(root: Path | None) -> dict:
    """{"root": the folder's name (never its absolute path) or None, "atlas": [...], "runs": [...]}
    found under `root` (at most MAX_DEPTH folders deep); a fine-tuning run's entry has "finetune"
    (see _finetune_summary)."""
    found = {"root": None if root is None else (root.name or "/"), "atlas": [], "runs": []}
    if root is None or not root.is_dir():
        return found
    root = root.resolve()
    stack = [(root, 0)]
    seen = 0
    while stack and seen < MAX_ENTRIES:
        folder, depth = stack.pop()
        seen += 1
        try:
            children = sorted(folder.iterdir())
        except OSError:
            continue
        names = {c.name for c in children}
        rel = folder.relative_to(root).as_posix()
        rel = "" if rel == "." else rel
        if any(m in names for m in ATLAS_MARKERS):
            files = _report_files(folder, root)
            found["atlas"].append({"path": rel, "files": files,
                                   "report": f"{rel}/report.html".lstrip("/") if "report.html" in names else None})
        checkpoints = [p.name for _, p in list_checkpoints(folder)]
        if checkpoints or "run.json" in names:
            run = {"path": rel, "checkpoints": checkpoints, "files": _report_files(folder, root),
                   "last_metrics": _run_summary(folder)}
            finetune = _finetune_summary(folder) if "run.json" in names else None
            found["runs"].append(run if finetune is None else {**run, "finetune": finetune})
            continue  # a run's own subfolders are its checkpoints
        if depth < MAX_DEPTH:
            stack.extend((c, depth + 1) for c in reversed(children)
                         if c.is_dir() and _visible(c) and not c.is_symlink())
    return found


def safe_report_file(root: Path | None, relative: str) -> Path | None:
    """The file `relative` names under `root`, or None when it is outside it, hidden, not a
    report kind of file, or missing."""
    if root is None or not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = relative.split("/")
    if any(p in ("", ".", "..") or p.startswith((".", "_")) for p in parts):
        return None
    try:
        base = root.resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base) or not target.is_file() or target.suffix.lower() not in REPORT_SUFFIXES:
            return None
    except (OSError, RuntimeError, ValueError):  # a name too long, not encodable, a loop...: no such file
        return None
    return target


def open_report_file(root: Path | None, relative: str) -> tuple[Path, os.stat_result] | None:
    """(path, its stat) of `relative` under `root` when safe_report_file allows it and it can be
    read now; None for anything else (so every unreadable path is a 404, never a 500)."""
    target = safe_report_file(root, relative)
    if target is None:
        return None
    try:
        with open(target, "rb") as fh:
            return target, os.fstat(fh.fileno())
    except (OSError, ValueError):
        return None
