"""`attnlens.lens` and the full lens registry: the capture-only lenses (patterns/lenses.py) plus
the lenses that re-run the model (grad_weights).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from ..capturing import Capture, LoadedModel, batches, resolve_model
from ..errors import AttnlensError
from ..patterns.lenses import CAPTURE_LENSES, Lens
from .objectives import get_objective, padded_inputs, run


@contextmanager
def eager_attention(lm: LoadedModel):
    """Run `lm` with transformers' eager attention (which returns differentiable weights), restored on exit."""
    before = getattr(lm.model.config, "_attn_implementation", None)
    if before != "eager":
        lm.model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before not in (None, "eager"):
            lm.model.set_attn_implementation(before)


def capture_batch_of(lm: LoadedModel, capture: Capture):
    """The one-input Batch of the capture's text on `lm`, checked to give the capture's tokens."""
    batch = next(batches(lm, [(capture.text_a, capture.text_b)], batch_size=1, truncate=True))
    if batch.token_info(0).tokens != list(capture.tokens):
        raise AttnlensError(f"the capture's tokens are not what {lm.name} makes of its text: "
                            "pass the model the capture was made with (model=...)")
    return batch


def grad_weights(capture: Capture, *, model=None, objective: str = "mlm", seed: int = 0, labels=None) -> np.ndarray:
    """alpha_ij * |d objective / d alpha_ij| per head: attention weighted by the gradient of an objective
    (attnlens.analysis.objectives) with respect to it, from the model re-run with eager attention
    (as in Chefer et al. 2021 and Hao et al. 2021's attention attribution).  # [L, H, T, T]"""
    lm = resolve_model(model)
    obj = get_objective(objective, lm)
    if not obj.gradient:
        raise AttnlensError(f"the {obj.name} objective has zero gradient at the unablated model: "
                            "use mlm, nsp or classification for grad_weights")
    batch = capture_batch_of(lm, capture)
    inputs = padded_inputs(lm, batch)
    targets = obj.prepare(lm, inputs, batch, seed, labels)
    with eager_attention(lm), torch.enable_grad():
        loss, output = run(obj, lm, inputs, targets, output_attentions=True)
        attentions = tuple(output.attentions)  # L x [1, H, T, T]
        if len(attentions) != lm.num_layers:
            raise AttnlensError(f"{lm.name} returned {len(attentions)} attention layers, expected {lm.num_layers}")
        grads = torch.autograd.grad(loss.sum(), attentions)
    att = torch.stack([a[0].detach() for a in attentions]).float()  # [L, H, T, T]
    grad = torch.stack([g[0] for g in grads]).float()  # [L, H, T, T]
    return (att * grad.abs()).cpu().numpy()


LENSES: dict[str, Lens] = {
    **CAPTURE_LENSES,
    "grad_weights": Lens("grad_weights", "L,H,T,T", "Hao et al. 2021; Chefer et al. 2021", grad_weights,
                         needs="model"),
}


def lens(capture: Capture, name: str, **options) -> np.ndarray:
    """The lens `name` (one of LENSES) of `capture`.

    weights / value_norm [L, H, T, T], rollout / flow [L, T, T], grad_weights [L, H, T, T]
    (options: model=, objective=). The error says which capture option is missing.
    """
    if not isinstance(capture, Capture):
        raise AttnlensError(f"lens takes a Capture, not {type(capture).__name__}")
    if name not in LENSES:
        raise AttnlensError(f"unknown lens {name!r}: use one of {', '.join(LENSES)}")
    try:
        return LENSES[name].fn(capture, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise AttnlensError(f"lens {name!r} takes no option {str(exc).split()[-1]}") from None
        raise
