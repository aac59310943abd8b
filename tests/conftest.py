"""Shared fixtures: tiny random models of every supported family, built in-process, and the default model.

Tests live in tests/unit (pure functions and tiny in-process models), tests/integration (the
default model, the CLI, the server, training) and tests/browser (headless chromium); each gets
the marker of its folder, so `pytest -m unit` runs the fast part alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAIR = ("I went to the store.", "At the store, I bought fresh strawberries.")
pytest_plugins = ["browser_fixtures"]  # the `browser` and `probe` fixtures
KINDS = ("unit", "integration", "browser")


def pytest_collection_modifyitems(config, items):
    """Mark every test with the kind of its folder."""
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))


def tiny_config(family: str, **overrides):
    """A small random config of `family` (vocab of the default model's WordPiece tokenizer)."""
    from transformers import AlbertConfig, BertConfig, DistilBertConfig, ElectraConfig, RobertaConfig

    common = dict(vocab_size=30522, max_position_embeddings=64, pad_token_id=0)
    common.update({k: overrides.pop(k) for k in list(overrides) if k in common})
    if family == "distilbert":
        return DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common, **overrides)
    cls = {"bert": BertConfig, "roberta": RobertaConfig, "electra": ElectraConfig, "albert": AlbertConfig}[family]
    kw = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, type_vocab_size=2)
    if family == "electra":
        kw["embedding_size"] = 16
    if family == "albert":
        kw.update(embedding_size=16, num_hidden_groups=1, inner_group_num=1)
    return cls(**common, **kw, **overrides)


def tiny_model(family: str, attn_implementation: str = "sdpa", seed: int = 0, **overrides):
    """A LoadedModel of random weights, built in-process (no files, no network)."""
    import torch
    from transformers import AutoModel

    from attnlens.capturing import LoadedModel

    torch.manual_seed(seed)
    config = tiny_config(family, **overrides)
    config._attn_implementation = attn_implementation
    model = AutoModel.from_config(config, attn_implementation=attn_implementation)
    return LoadedModel(model, default_tokenizer(), name=f"tiny-{family}")


_TOKENIZER = None


def default_tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        from transformers import AutoTokenizer

        from attnlens.capturing import default_model_path

        _TOKENIZER = AutoTokenizer.from_pretrained(str(default_model_path()))
    return _TOKENIZER


FAMILIES = ("bert", "roberta", "distilbert", "electra", "albert")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray (1 CPU) for every test that shards work on it; skipped without the ray package."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def default_model():
    """The real default model (all-MiniLM-L6-v2), loaded once per test session (the library's own cache,
    so the CLI and server in the same process reuse it)."""
    from attnlens.capturing import resolve_model

    return resolve_model(None)


@pytest.fixture(scope="session")
def default_capture(default_model):
    """The source's example pair on the default model."""
    from attnlens import capture

    return capture(*PAIR, model=default_model)
