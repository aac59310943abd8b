"""`attnlens finetune`, `attnlens predict classify` and `attnlens diff`."""

from __future__ import annotations

from typing import Optional

import typer

from ..analysis.diff import write_diff
from ..finetuning import classify, finetune
from ..finetuning.compare import diff
from .app import ModelOpt, app, user_errors
from .pretrain import predict_app


@app.command("finetune")
@user_errors
def finetune_cmd(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="A built-in task (source, order, boundary), a "
                                       "CSV/TSV/JSONL file (text[, text_b], label; or tokens, tags) or "
                                       "datasets:FORMAT:PATH. Required unless --resume."),
    out: str = typer.Option(..., "--out", "-o", help="Run folder (checkpoints, metrics)."),
    model: Optional[str] = ModelOpt,
    heldout: Optional[str] = typer.Option(None, "--heldout", help="Held-out examples of a file task (same format; "
                                          "default: a seeded 10% of the task file's rows)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default 1000)."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Passes over the training examples (sets steps)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch (default 32)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 5e-5)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the head's weights and the batch order."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Tokens per input (default 128)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Steps between held-out evaluations."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Steps between checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    device: str = typer.Option("auto", "--device", help="cpu | cuda | auto."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
):
    """Fine-tune an encoder with a fresh classification head (sequence, pair or token task)."""
    run_dir = finetune(model, task, out, resume=resume, device=device, progress=not no_progress, heldout=heldout,
                       steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, max_length=max_length,
                       eval_every=eval_every, save_every=save_every)
    typer.echo(f"done: {run_dir}")


@predict_app.command("classify")
@user_errors
def classify_cmd(
    text: str = typer.Argument(..., help="The text to classify (a token model tags its whitespace words)."),
    text_b: Optional[str] = typer.Option(None, "--text-b", help="Second text of a pair task."),
    model: str = typer.Option(..., "--model", "-m", help="A run folder of `attnlens finetune` or its checkpoint."),
):
    """The label a fine-tuned classifier gives the text (and each class's probability)."""
    result = classify(text, text_b, model=model)
    if result.label is None:
        typer.echo(" ".join(f"{w}/{t}" for w, t in zip(result.words, result.tags, strict=True)))
        return
    typer.echo(result.label)
    for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {name} {p:.3f}")


@app.command("diff")
@user_errors
def diff_cmd(
    model_a: str = typer.Argument(..., help="Model A (e.g. the pretrained model): folder, run folder or hub name."),
    model_b: str = typer.Argument(..., help="Model B (e.g. its fine-tuned copy), same architecture and tokenizer."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Dataset name or corpus file (default: the "
                                         "shipped corpus)."),
    limit: int = typer.Option(300, "--limit", help="Sentence pairs compared."),
    out: str = typer.Option(..., "--out", "-o", help="Folder for report.html, diff.png/.svg, diff.json/.csv."),
    importance_objective: str = typer.Option(
        "auto", "--importance-objective", help="Objective of the gradient head importance compared: auto "
        "(classification for two classifiers with the same labels, else masked_embedding), or masked_embedding, "
        "classification, mlm, nsp."),
    no_importance: bool = typer.Option(False, "--no-importance", help="Skip head importance (one backward pass "
                                       "per batch and model)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
):
    """How much every head's attention, atlas label and importance changed from model A to model B."""
    result = diff(model_a, model_b, corpus=corpus, limit=limit, progress=not no_progress,
                  importance=None if no_importance else importance_objective)
    typer.echo(result.summary())
    for path in write_diff(result, out):
        typer.echo(f"saved {path}")
