"""Causal interventions on the input embeddings, as hooks on the unmodified modules.

Each intervention is one registry entry: which embedding it changes and the forward hook
that changes it. Inside `intervene(lm, name)` every forward pass of the model sees the
changed embeddings; the hooks (attnlens.capturing.hooks) are always removed on exit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

from ..capturing import LoadedModel, find_modules, hooks
from ..errors import AttnlensError


@dataclass(frozen=True)
class Intervention:
    """What an intervention changes (the ArchSpec field of an embedding module) and how (hook factory of a seed)."""

    name: str
    definition: str
    embedding: str  # "segment_embeddings" or "position_embeddings"
    make_hook: Callable[[int], Callable]


def _segments_equal(_seed: int):
    def hook(module, _inputs, output):
        return module.weight[0].expand_as(output)  # [..., tokens, hidden]: every token gets segment A's vector
    return hook


def _positions_shuffled(seed: int):
    def hook(_module, _inputs, output):
        n = output.shape[-2]
        gen = torch.Generator().manual_seed(seed + n)
        order = torch.randperm(n, generator=gen).to(output.device)
        return output.index_select(-2, order)  # [..., tokens, hidden] with positions permuted
    return hook


def _positions_zeroed(_seed: int):
    return lambda _module, _inputs, output: torch.zeros_like(output)


_REGISTRY = (
    Intervention("segments_equal", "the segment (token-type) embedding of sentence A is used for every token, "
                 "so sentences A and B can no longer be told apart by segment", "segment_embeddings", _segments_equal),
    Intervention("positions_shuffled", "the position embeddings are permuted across positions (fixed seed)",
                 "position_embeddings", _positions_shuffled),
    Intervention("positions_zeroed", "the position embeddings are replaced by zeros", "position_embeddings",
                 _positions_zeroed),
)
INTERVENTIONS: dict[str, Intervention] = {i.name: i for i in _REGISTRY}


def get_intervention(name: str) -> Intervention:
    if name not in INTERVENTIONS:
        raise AttnlensError(f"unknown intervention {name!r}: use one of {', '.join(INTERVENTIONS)}")
    return INTERVENTIONS[name]


@contextmanager
def intervene(lm: LoadedModel, name: str | None, *, seed: int = 0):
    """Apply intervention `name` (one of INTERVENTIONS, or None for none) while the block runs."""
    if name is None:
        yield
        return
    spec = get_intervention(name)
    pattern = getattr(lm.spec, spec.embedding)
    what = spec.embedding.split("_")[0]
    if pattern is None:
        raise AttnlensError(f"{lm.spec.family} models have no {what} embeddings to intervene on")
    if not find_modules(lm.model, pattern):
        raise AttnlensError(f"no {what} embedding module matching {pattern!r} in this {lm.spec.family} model")
    with hooks(lm.model, [(pattern, spec.make_hook(seed))]):
        yield
