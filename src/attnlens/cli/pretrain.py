"""`attnlens pretrain`, `attnlens predict fill-mask|nsp|generate` and `attnlens emergence`."""

from __future__ import annotations

from typing import Optional

import typer

from ..pretraining.emergence import emergence, write_emergence
from ..pretraining.generate import generate
from ..pretraining.predict import fill_mask, next_sentence_probability
from ..pretraining.run import run_pretraining
from .app import app, user_errors

predict_app = typer.Typer(no_args_is_help=True,
                          help="Predict with a pretrained model's own heads (MLM, NSP, a decoder's next token).")
app.add_typer(predict_app, name="predict")

RunModelOpt = typer.Option(None, "--model", "-m",
                           help="Run folder, checkpoint folder or other model folder with a masked-LM head "
                                "(NSP: a BertForPreTraining; default: the checkpoint shipped with attnlens).")


@app.command("pretrain")
@user_errors
def pretrain_cmd(
    out: str = typer.Option(..., "--out", "-o", help="Run folder (checkpoints, metrics, tokenizer)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="A text file (.txt/.txt.gz, one sentence per line, "
                                         "blank line between documents) or a folder of them."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A built-in corpus (default: 'default')."),
    size: Optional[str] = typer.Option(None, "--size", help="tiny | mini | small | base (default tiny)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default 1000)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    vocab: Optional[str] = typer.Option(None, "--vocab", help="Use this vocab.txt instead of training WordPiece."),
    device: str = typer.Option("auto", "--device", help="cpu | cuda | auto."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of weights, pairs and masks (default 0)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch (default: the size's)."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Tokens per pair (default: the size's)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: the size's)."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="WordPiece vocabulary size (default 8000)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Steps between held-out evaluations."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Steps between checkpoints."),
    objective: Optional[str] = typer.Option(None, "--objective",
                                            help="mlm-nsp: a BERT (masked LM + next sentence prediction, default); "
                                                 "clm: a GPT-2-style decoder (next-token loss) on the same inputs."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
):
    """Pretrain a BERT (masked LM + next sentence prediction) or a GPT-2-style decoder from scratch on a corpus."""
    settings = {k: v for k, v in dict(size=size, steps=steps, seed=seed, batch_size=batch_size, seq_len=seq_len,
                                      lr=lr, vocab_size=vocab_size, eval_every=eval_every,
                                      save_every=save_every, objective=objective).items() if v is not None}
    run_dir = run_pretraining(out, corpus=corpus, dataset=dataset, settings=settings, resume=resume, vocab=vocab,
                              device=device, progress=not no_progress)
    typer.echo(f"done: {run_dir}")


@predict_app.command("fill-mask")
@user_errors
def fill_mask_cmd(
    text: str = typer.Argument(..., help="Text with one or more [MASK] tokens."),
    model: Optional[str] = RunModelOpt,
    top_k: int = typer.Option(5, "--top-k", "-k", help="Candidates per mask."),
):
    """Top-k predictions for every [MASK] in the text."""
    for n, pred in enumerate(fill_mask(text, model=model, top_k=top_k), start=1):
        cands = ", ".join(f"{tok} {p:.3f}" for tok, p in zip(pred.tokens, pred.probabilities, strict=True))
        typer.echo(f"[MASK] {n} (token {pred.position}): {cands}")


@predict_app.command("nsp")
@user_errors
def nsp_cmd(
    sentence_a: str = typer.Argument(..., help="Sentence A."),
    sentence_b: str = typer.Argument(..., help="Sentence B."),
    model: Optional[str] = RunModelOpt,
):
    """Probability that sentence B follows sentence A (IsNext)."""
    p = next_sentence_probability(sentence_a, sentence_b, model=model)
    typer.echo(f"IsNext {p:.3f}  NotNext {1 - p:.3f}")


@predict_app.command("generate")
@user_errors
def generate_cmd(
    text: str = typer.Argument(..., help="The text to continue."),
    model: str = typer.Option(..., "--model", "-m", help="A decoder with its language-model head: a run folder "
                              "of `attnlens pretrain --objective clm`, a checkpoint or model folder, or a hub name."),
    max_new_tokens: int = typer.Option(20, "--max-new-tokens", "-n", help="Most tokens to add."),
    top_k: int = typer.Option(1, "--top-k", "-k", help="1: greedy; k > 1: sample among the k most likely tokens."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling (the same seed gives the same text)."),
):
    """Continue a text with a decoder (greedy or seeded top-k sampling)."""
    result = generate(text, model, max_new_tokens=max_new_tokens, top_k=top_k, seed=seed)
    typer.echo(result.text)


@app.command("emergence")
@user_errors
def emergence_cmd(
    run_dir: str = typer.Argument(..., help="A run folder written by `attnlens pretrain`."),
    limit: int = typer.Option(300, "--limit", help="Held-out sentence pairs scored per checkpoint."),
    out: Optional[str] = typer.Option(None, "--out", "-o",
                                      help="Folder for emergence.png/.html/.json (default RUN_DIR)."),
):
    """Run the atlas on every checkpoint of a run: each pattern's best head against the training step."""
    result = emergence(run_dir, limit=limit)
    typer.echo(result.summary())
    for path in write_emergence(result, out or run_dir).values():
        typer.echo(f"saved {path}")
