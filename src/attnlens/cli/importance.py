"""`attnlens importance`: how much every head matters to an objective (gradient or ablation), and pruning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..analysis.importance import head_importance, pruning_curve
from ..analysis.objectives import get_objective
from ..errors import AttnlensError
from ..pretraining.predict import shipped_checkpoint
from .app import app, user_errors


@app.command("importance")
@user_errors
def importance_cmd(
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Documents or pairs file (as for `attnlens atlas`)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A corpus shipped with attnlens (default)."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Model folder or hub name, loaded with the heads its config names (default: "
                                    "all-MiniLM-L6-v2; for mlm/nsp: the shipped pretrained checkpoint)."),
    objective: str = typer.Option("embedding", "--objective",
                                  help="embedding (1 - cosine to the unablated sentence embedding), masked_embedding "
                                       "(the same from a masked input; has a gradient), mlm, nsp, or "
                                       "classification (a fine-tuned *ForSequenceClassification model)."),
    method: str = typer.Option("ablation", "--method", help="ablation, or gradient (Michel et al. 2019)."),
    ablation: str = typer.Option("zero", "--ablation", help="zero, mean or uniform (method ablation)."),
    output: str = typer.Option("out/importance", "--output", "-o", help="Folder for the JSON, CSV and figures."),
    limit: int = typer.Option(256, "--limit", help="Use N inputs (0 = all)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Inputs per forward pass."),
    pruning: bool = typer.Option(False, "--pruning/--no-pruning",
                                 help="Also prune heads in order of importance and in 3 random orders."),
    points: int = typer.Option(13, "--points", help="Pruning curve: numbers of removed heads measured."),
    seed: int = typer.Option(0, "--seed", help="Corpus sample and mlm masks."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
    use_ray: bool = typer.Option(False, "--ray", help="Score shards of the corpus as Ray tasks "
                                                      "(pip install 'attnlens[ray]'; RAY_ADDRESS for a cluster)."),
    shards: Optional[int] = typer.Option(None, "--shards", help="Ray shards (default: one per CPU of the cluster)."),
):
    """Score every head's importance for an objective; write importance.json/.csv/.png (and pruning.*)."""
    if corpus and dataset:
        raise AttnlensError("give either --corpus FILE or --dataset NAME, not both")
    if corpus and not Path(corpus).expanduser().exists():
        raise AttnlensError(f"no corpus file at {corpus}")
    if limit < 0:
        raise AttnlensError(f"--limit must be 0 (all) or more, got {limit}")
    if points < 2:
        raise AttnlensError(f"--points must be at least 2, got {points}")
    get_objective(objective)
    if model is None and objective in ("mlm", "nsp"):
        model = str(shipped_checkpoint())
    source = corpus or dataset
    result = head_importance(source, model, objective, method, ablation, limit=limit or None,
                             batch_size=batch_size, seed=seed, progress=progress, ray=use_ray, shards=shards)
    typer.echo(result.text())
    path = result.save(output)
    if pruning:
        curve = pruning_curve(source, model, result, ablation="zero" if ablation == "mean" else ablation,
                              points=points, limit=limit or None, batch_size=batch_size, progress=progress)
        curve.save(output)
        typer.echo("pruning (least important first): " + ", ".join(
            f"{f:.2f}:{v:.4f}" for f, v in zip(curve.fractions, curve.by_importance)))
    typer.echo(f"\nwrote {path.parent}")
