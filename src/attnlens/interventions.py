"""Causal interventions on the input embeddings, as hooks on the unmodified modules.

Each intervention is a context manager over a LoadedModel; inside it every forward pass of
the model sees the changed embeddings, and the hooks are always removed on exit.
- segments_equal: the segment (token-type) embedding of sentence A is used for every token,
  so sentences A and B can no longer be told apart by segment;
- positions_shuffled: the position embeddings are permuted across positions (fixed seed);
- positions_zeroed: the position embeddings are replaced by zeros.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .errors import AttnlensError
from .models import LoadedModel, find_modules

INTERVENTIONS = ("segments_equal", "positions_shuffled", "positions_zeroed")


def _modules(lm: LoadedModel, pattern: str | None, what: str):
    if pattern is None:
        raise AttnlensError(f"{lm.spec.family} models have no {what} embeddings to intervene on")
    modules = find_modules(lm.model, pattern)
    if not modules:
        raise AttnlensError(f"no {what} embedding module matching {pattern!r} in this {lm.spec.family} model")
    return [m for _, m in modules]


def _segments_equal(module, _inputs, output):
    return module.weight[0].expand_as(output)  # [..., tokens, hidden]: every token gets segment A's vector


def _positions_shuffled(seed: int):
    def hook(_module, _inputs, output):
        n = output.shape[-2]
        gen = torch.Generator().manual_seed(seed + n)
        order = torch.randperm(n, generator=gen).to(output.device)
        return output.index_select(-2, order)  # [..., tokens, hidden] with positions permuted
    return hook


def _positions_zeroed(_module, _inputs, output):
    return torch.zeros_like(output)


@contextmanager
def intervene(lm: LoadedModel, name: str | None, *, seed: int = 0):
    """Apply intervention `name` (one of INTERVENTIONS, or None for none) while the block runs."""
    if name is None:
        yield
        return
    if name == "segments_equal":
        hook, modules = _segments_equal, _modules(lm, lm.spec.segment_embeddings, "segment")
    elif name == "positions_shuffled":
        hook, modules = _positions_shuffled(seed), _modules(lm, lm.spec.position_embeddings, "position")
    elif name == "positions_zeroed":
        hook, modules = _positions_zeroed, _modules(lm, lm.spec.position_embeddings, "position")
    else:
        raise AttnlensError(f"unknown intervention {name!r}: use one of {', '.join(INTERVENTIONS)}")
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
