"""`attnlens atlas` (score, label and report every head over a corpus) and `attnlens explain`."""

from __future__ import annotations

from typing import Optional

import typer

from .app import ModelOpt, app, user_errors


@app.command("atlas")
@user_errors
def atlas_cmd(
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Documents (.txt/.txt.gz: one sentence per line, blank line between documents; or a folder of them) or pairs (.tsv: 'sentence A<TAB>sentence B')."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A corpus shipped with attnlens (default: 'default')."),
    model: Optional[str] = ModelOpt,
    output: str = typer.Option("out/atlas", "--output", "-o", help="Folder for the scores, plots and report.html."),
    limit: int = typer.Option(2000, "--limit", help="Score N inputs (a fixed sample of a dataset or documents; the first N of a .tsv); 0 = all."),
    level: str = typer.Option("token", "--level", help="token, or word (attention to a word = sum of its pieces, from = mean)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Inputs per forward pass."),
    use_ray: bool = typer.Option(False, "--ray", help="Score shards of the corpus as Ray tasks (pip install 'attnlens[ray]')."),
    shards: Optional[int] = typer.Option(None, "--shards", help="Ray shards (default: the cluster's CPU count)."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Explain the top head of each pattern down to q/k dimensions."),
    causal: bool = typer.Option(True, "--causal/--no-causal", help="Re-score under segment/position interventions."),
    check_limit: int = typer.Option(200, "--check-limit", help="Inputs used by the explanations and causal checks."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
):
    """Score every head on every pattern over a corpus, label it, and write a report."""
    from ..atlas_run import atlas, resolve_pairs  # noqa: PLC0415
    from ..causal import causal_checks  # noqa: PLC0415
    from ..errors import AttnlensError  # noqa: PLC0415
    from ..explain_run import EXPLAIN_LIMIT, captures_of  # noqa: PLC0415
    from ..explain_run import explain as explain_head  # noqa: PLC0415
    from ..patterns.scores import LABEL_PATTERNS  # noqa: PLC0415
    from ..record import capture, resolve_model  # noqa: PLC0415

    if corpus and dataset:
        raise AttnlensError("give either --corpus FILE or --dataset NAME, not both")
    if corpus:
        from pathlib import Path  # noqa: PLC0415

        if not Path(corpus).expanduser().exists():
            raise AttnlensError(f"no corpus file at {corpus}")
    if limit < 0:
        raise AttnlensError(f"--limit must be 0 (all) or more, got {limit}")
    limit = limit or None
    if check_limit < 1:
        raise AttnlensError(f"--check-limit must be at least 1, got {check_limit}")
    pairs, corpus_name = resolve_pairs(corpus or dataset, limit)
    lm = resolve_model(model)
    result = atlas(pairs, model=lm, level=level, batch_size=batch_size, progress=progress, ray=use_ray, shards=shards)
    result.corpus_name = corpus_name
    typer.echo(result.summary())
    explanations = []
    report = None
    step = max(1, len(pairs) // check_limit)
    check_pairs = pairs[::step][:check_limit]  # spread over the whole corpus sample
    if explain:
        typer.echo("\nexplanations (top head per pattern):")
        captures = captures_of(check_pairs, lm, EXPLAIN_LIMIT)  # captured once, explained per head
        for name in LABEL_PATTERNS:
            layer, head, score = result.top(name, 1)[0]
            try:
                ex = explain_head(captures, layer, head, name)
            except AttnlensError as exc:
                typer.echo(f"  {name:26s} L{layer} H{head}: not explained ({exc})")
                continue
            explanations.append(ex)
            typer.echo(f"  {name:26s} L{layer} H{head} score {score:.2f}: {ex.dims_for_80} of {ex.contributions.size} dims "
                       f"carry 80% of the gap, stability {ex.stability:.2f} -> {ex.kind}")
    if causal:
        report = causal_checks(check_pairs, model=lm, level=level, batch_size=batch_size, limit=None)
        typer.echo("\n" + report.text())
    example = capture("I went to the store.", "At the store, I bought fresh strawberries.", model=lm)
    path = result.save(output, example=example, explanations=explanations, causal=report)
    typer.echo(f"\nwrote {path}")


@app.command("explain")
@user_errors
def explain_cmd(
    sentence_a: str = typer.Argument(..., help="Sentence A."),
    sentence_b: Optional[str] = typer.Argument(None, help="Optional sentence B."),
    layer: int = typer.Option(..., "--layer", "-l", help="Layer (0-based)."),
    head: int = typer.Option(..., "--head", help="Head (0-based)."),
    pattern: Optional[str] = typer.Option(None, "--pattern", "-p", help="Pattern to explain (default: the head's best on this input)."),
    model: Optional[str] = ModelOpt,
    truncate: bool = typer.Option(False, "--truncate", help="Cut inputs longer than the model's maximum."),
):
    """Which q/k dimensions of one head carry its pattern on this input."""
    from ..explain_run import explain  # noqa: PLC0415
    from ..patterns.scores import get_pattern  # noqa: PLC0415
    from ..record import capture  # noqa: PLC0415

    if pattern is not None:
        get_pattern(pattern)
    cap = capture(sentence_a, sentence_b, model=model, truncate=truncate)
    typer.echo(explain(cap, layer, head, pattern).text())
