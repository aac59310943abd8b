"""Causal interventions on the input embeddings, and head ablations, as hooks on the unmodified modules.

Each intervention is one registry entry: which embedding it changes and the forward hook
that changes it. Inside `intervene(lm, name)` every forward pass of the model sees the
changed embeddings; the hooks (attnlens.capturing.hooks) are always removed on exit.

Head ablations (`HEAD_ABLATIONS`) replace head h's context vector -- its slice of the input of the
attention output projection (ArchSpec.output) -- inside `ablate_heads(lm, heads, kind)`; `gate_heads`
multiplies each head's context by a gate (Michel et al. 2019's head mask, for gradients).
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


# ---- head ablations ------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadAblation:
    """What replaces an ablated head's context vector c_h(i) (the head's slice of the output projection input)."""

    name: str
    definition: str
    replace: Callable  # (context [B, T, D], values [B, T, D] | None, mask [B, T] | None, mean [D] | None) -> [B, T, D]
    needs: str = ""  # "" | "means" (corpus means, from head_means) | "values" (the value projection and the mask)


def _uniform(_context, values, mask, _mean):
    weights = mask.to(values.dtype)[:, :, None]  # [B, T, 1]
    pooled = (values * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True)  # [B, 1, D]
    return pooled.expand_as(values)


_HEAD_REGISTRY = (
    HeadAblation("zero", "c_h(i) = 0 (the same as zeroing head h's columns of the output projection W_O)",
                 lambda context, *_: torch.zeros_like(context)),
    HeadAblation("mean", "c_h(i) = the head's mean context vector over the real tokens of a corpus",
                 lambda context, _v, _m, mean: mean.to(context.dtype).expand_as(context), needs="means"),
    HeadAblation("uniform", "c_h(i) = mean_j v_h(j) over the input's real tokens: what uniform attention would give",
                 _uniform, needs="values"),
)
HEAD_ABLATIONS: dict[str, HeadAblation] = {a.name: a for a in _HEAD_REGISTRY}


def get_head_ablation(name: str) -> HeadAblation:
    if name not in HEAD_ABLATIONS:
        raise AttnlensError(f"unknown ablation {name!r}: use one of {', '.join(HEAD_ABLATIONS)}")
    return HEAD_ABLATIONS[name]


def _output_pattern(lm: LoadedModel, what: str = "output") -> str:
    pattern = getattr(lm.spec, what, None)
    if not pattern:
        raise AttnlensError(f"family {lm.spec.family!r} declares no attention {what} projection: "
                            "heads cannot be ablated or gated")
    return pattern


def _layer_counter(n_layers: int):
    """A callable giving 0, 1, ..., L-1, 0, ...: hooks fire in layer order (shared modules too)."""
    calls = [0]

    def next_layer() -> int:
        calls[0] += 1
        return (calls[0] - 1) % n_layers
    return next_layer


@contextmanager
def ablate_heads(lm: LoadedModel, heads, kind: str = "zero", *, means=None, mask=None):
    """Replace the context vector of every (layer, head) in `heads` while the block runs.

    kind: one of HEAD_ABLATIONS. means: [L, H, D] tensor (kind "mean"); mask: [B, T] of the batch
    that runs (kind "uniform": 1 = real token).
    """
    spec = get_head_ablation(kind)
    if spec.needs == "means" and means is None:
        raise AttnlensError("mean ablation needs the heads' mean context vectors (head_means)")
    if spec.needs == "values" and mask is None:
        raise AttnlensError("uniform ablation needs the batch's attention mask")
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < lm.num_layers and 0 <= head < lm.num_heads):
            raise AttnlensError(f"head L{layer} H{head} is outside this model "
                                f"({lm.num_layers} layers x {lm.num_heads} heads)")
        by_layer.setdefault(int(layer), []).append(int(head))
    values: dict[int, object] = {}
    layer_of_out, layer_of_value = _layer_counter(lm.num_layers), _layer_counter(lm.num_layers)
    n_heads = lm.num_heads

    def on_value(_module, _inputs, output):
        values[layer_of_value()] = output  # [B, T, H * D]

    def on_output(module, inputs, _output):
        layer = layer_of_out()
        if layer not in by_layer:
            return None
        x = inputs[0]  # [B, T, H * D]
        d = x.shape[-1] // n_heads
        new = x.clone()
        for head in by_layer[layer]:
            part = slice(head * d, (head + 1) * d)
            v = None
            if spec.needs == "values":
                if values[layer].shape[-1] != x.shape[-1]:
                    raise AttnlensError(f"uniform ablation needs one value slice per head; {lm.spec.family} models "
                                        "fuse or share their value projection (use zero or mean)")
                v = values[layer][..., part]  # [B, T, D]
            m = means[layer, head] if means is not None else None  # [D]
            new[..., part] = spec.replace(x[..., part], v, None if mask is None else mask.to(x.device), m)
        return module.forward(new)  # [B, T, hidden]: the projection itself (Linear or Conv1D), hooks not re-run

    entries = [(_output_pattern(lm), on_output)]
    if spec.needs == "values":
        entries.insert(0, (_output_pattern(lm, "value"), on_value))
    with hooks(lm.model, entries):
        yield


@contextmanager
def gate_heads(lm: LoadedModel, gates):
    """Multiply head h's context vector by gates[b, l, h] (Michel et al. 2019's head mask) while the block runs.

    gates: [B, L, H] tensor (usually ones with requires_grad, for d loss / d gate).
    """
    layer_of = _layer_counter(lm.num_layers)

    def on_output(module, inputs, _output):
        x = inputs[0]  # [B, T, H * D]
        d = x.shape[-1] // lm.num_heads
        gate = gates[:, layer_of()].repeat_interleave(d, dim=-1).to(x.dtype)  # [B, H * D]
        return module.forward(x * gate[:, None, :])  # [B, T, hidden]

    with hooks(lm.model, [(_output_pattern(lm), on_output)]):
        yield


def head_means(lm: LoadedModel, batches_) -> torch.Tensor:
    """Mean context vector of every head over the real tokens of `batches_`, an iterable of
    (forward: a callable running one batch, mask [B, T]).  # [L, H, D]"""
    sums: dict[int, torch.Tensor] = {}
    count = [0.0]
    layer_of = _layer_counter(lm.num_layers)
    current = {}

    def on_output(_module, inputs, _output):
        layer = layer_of()
        m = current["mask"].to(inputs[0].dtype)[:, :, None]  # [B, T, 1]
        total = (inputs[0].detach() * m).sum((0, 1)).double()  # [H * D]
        sums[layer] = sums.get(layer, 0) + total

    for forward, mask in batches_:  # the hook is on only while `forward` runs (not while batches_ makes the next)
        current["mask"] = mask
        with hooks(lm.model, [(_output_pattern(lm), on_output)]), torch.no_grad():
            forward()
        count[0] += float(mask.sum())
    if not sums:
        raise AttnlensError("no input to average the heads' context vectors over")
    stacked = torch.stack([sums[layer] for layer in range(lm.num_layers)]) / count[0]  # [L, H * D]
    return stacked.view(lm.num_layers, lm.num_heads, -1).float()  # [L, H, D]
