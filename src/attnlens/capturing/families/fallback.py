"""The route for any model without an ArchSpec entry: its own eager `output_attentions`.

The attention is the model's own (exact by definition), taken with the model switched to
eager attention for the forward when it runs another backend (sdpa returns no weights), and
switched back afterwards. Nothing else is recorded, so the features that need per-head q/k
(the neuron view, explanations, value lenses) are not available; `warn_no_qk` says so once.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch

from ...errors import AttnlensError
from ..arch import FALLBACK_RECORDER
from ..recorders import Recorded, Recorder, register_recorder

NEEDS_QK = "the neuron view, explanations and value lenses"
_warned: set[str] = set()
log = logging.getLogger("attnlens")


def warn_no_qk(family: str) -> None:
    """Say once per family that its captures hold attention only, and what that leaves out."""
    if family in _warned:
        return
    _warned.add(family)
    log.warning("attnlens: %r has no entry in the architecture table; its captures hold the model's own attention "
                "(exact) but no per-head queries/keys, so %s are not available for it", family, NEEDS_QK)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@register_recorder
class ModelAttentions(Recorder):
    """The model's own attention weights (`output_attentions=True`, eager attention); no q/k."""

    name = FALLBACK_RECORDER
    gives_qk = False

    def hooks(self):
        if self.values:
            raise AttnlensError(f"values=True needs the value projections, which the {self.spec.family!r} models "
                                "(no entry in the architecture table) do not declare")
        warn_no_qk(self.spec.family)
        return []

    def forward_kwargs(self):
        return {"output_attentions": True}

    @contextmanager
    def running(self):
        model = self.lm.model
        before = getattr(model.config, "_attn_implementation", None)
        switch = before not in (None, "eager") and model._can_set_attn_implementation()
        if switch:
            model.set_attn_implementation("eager")
        try:
            yield
        except (AttnlensError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the model's own code: the user needs one line
            raise AttnlensError(f"the {self.spec.family!r} model could not run with output_attentions "
                                f"(eager attention): {_first_line(exc)}") from None
        finally:
            if switch:
                model.set_attn_implementation(before)

    def finish(self, output, mask):
        weights = getattr(output, "attentions", None)
        if not weights or any(w is None for w in weights):
            raise AttnlensError(f"the {self.spec.family!r} model returns no attention weights (output_attentions), "
                                "so attnlens cannot capture it")
        shapes = {tuple(w.shape) for w in weights}
        t = mask.shape[1]
        if len(shapes) != 1 or next(iter(shapes))[-2:] != (t, t):
            raise AttnlensError(f"the {self.spec.family!r} model's attention weights are not token x token for every "
                                f"layer (shapes {sorted(shapes)}), so attnlens cannot capture it")
        attentions = torch.stack([w.detach().float() for w in weights], dim=1)  # [B, L, H, T, T]
        attentions.masked_fill_(~mask.bool()[:, None, None, None, :], 0.0)  # padding keys get 0, as recomputed ones
        return Recorded(None, None, attentions=attentions)

    def attention(self, queries, keys, mask, extras):
        raise AttnlensError(f"the {self.spec.family!r} captures take their attention from the model; "
                            "there are no q/k to recompute it from")
