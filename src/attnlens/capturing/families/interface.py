"""The `interface` recorder: what transformers' attention function receives (GPT-2, Llama, Qwen2, ModernBERT).

These families compute q/k inside their attention modules (fused projections, rotary positions
applied after the projection, key/value heads shared by groups of query heads) and hand them to
`ALL_ATTENTION_FUNCTIONS[config._attn_implementation]`, with a mask built by masking_utils for
that same implementation name. For one forward the recorder switches the model to its own
implementation name, IMPLEMENTATION: its attention function records the query and key states as
the attention uses them (post-rotary; keys repeated per query group, so q/k are per query head),
the scaling and the model's own mask (padding + causal + sliding window, built explicitly by the
registered mask function), then delegates to sdpa, so the model's output is unchanged. The
implementation is switched back afterwards, whatever happens.

Recomputation: softmax(q . k / sqrt(d) + band mask). A non-standard scaling s (GPT-2's
scale_attn_by_inverse_layer_idx) is folded into the recorded queries (q * s * sqrt(d)), so every
consumer's q . k / sqrt(d) stays the score. Each layer's mask is summarised as a band of allowed
offsets (key - query in [-left, right]; causal: right = 0; ModernBERT's local layers: |offset| <=
window / 2; None: unbounded) plus the padding keys; finish() checks that this band rebuilds the
model's mask exactly for the whole padded batch (an error otherwise), so `attention()` is exact
for the batch and for one unpadded input (mask None).
"""

from __future__ import annotations

import functools
import inspect
import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ...errors import AttnlensError
from ..arch import find_modules
from ..recorders import Recorded, Recorder, head_output_norms, layer_scores, register_recorder
from ..scratch import scratch

IMPLEMENTATION = "attnlens_record"  # the attention / mask implementation name the model runs under while recorded
_ACTIVE: dict[int, InterfaceQK] = {}  # id(attention module) -> the recorder of the forward it belongs to


@dataclass(frozen=True)
class Band:
    """Keys a query may see: key - query in [-left, right] (None = unbounded on that side)."""

    left: int | None
    right: int | None

    def allowed(self, t: int, device) -> torch.Tensor:
        """[T, T] bool: query row i may attend to key column j."""
        offset = torch.arange(t, device=device)[None, :] - torch.arange(t, device=device)[:, None]  # [T, T] = j - i
        ok = torch.ones((t, t), dtype=torch.bool, device=device)
        if self.left is not None:
            ok &= offset >= -self.left
        if self.right is not None:
            ok &= offset <= self.right
        return ok


def band_of(visible: torch.Tensor) -> Band:
    """The narrowest band containing every visible cell of `visible` [B, T, T] (a side reaching T - 1 is None)."""
    t = visible.shape[-1]
    offset = torch.arange(t, device=visible.device)[None, :] - torch.arange(t, device=visible.device)[:, None]
    seen = offset.expand_as(visible)[visible]  # offsets of every visible cell
    if seen.numel() == 0:
        raise AttnlensError("the model's attention mask hides every key from every query")
    left, right = int(-seen.min()), int(seen.max())
    return Band(None if left >= t - 1 else left, None if right >= t - 1 else right)


def _visible(mask, batch: int, t: int, device) -> torch.Tensor:
    """The model's 4-D attention mask as [B, T, T] bool (True = the key takes part); None = all visible."""
    if mask is None:
        return torch.ones((batch, t, t), dtype=torch.bool, device=device)
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != (t, t):
        raise AttnlensError(f"the model's attention mask has shape {tuple(mask.shape)}, not [B, 1, {t}, {t}]; "
                            "attnlens cannot recompute it")
    if mask.dtype != torch.bool:  # an additive float mask: 0 where visible, a very negative number elsewhere
        low = mask <= torch.finfo(mask.dtype).min / 2
        if not bool(((mask == 0) | low).all()):
            raise AttnlensError("the model's attention mask adds a bias that is neither 0 nor -inf; "
                                "attnlens cannot recompute its attention")
        mask = ~low
    return mask[:, 0].expand(batch, t, t)


@functools.lru_cache(maxsize=None)
def register_implementation() -> str:
    """Register IMPLEMENTATION's attention and mask functions with transformers (once)."""
    from transformers import AttentionInterface  # noqa: PLC0415  (heavy: transformers loads lazily)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: PLC0415  (same)
    from transformers.masking_utils import AttentionMaskInterface, eager_mask  # noqa: PLC0415  (same)

    def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
        """Record what the attention receives (when a recorder listens to `module`), then run sdpa on it."""
        recorder = _ACTIVE.get(id(module))
        if recorder is not None:
            recorder.record(query, key, value, attention_mask, scaling, kwargs)
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)

    def mask(*args, **kwargs):
        """The model's mask, always materialised: 0 where a key takes part, the dtype's minimum elsewhere (as
        eager attention gets it, so a query that sees no key at all gets a uniform row, not NaN)."""
        kwargs["allow_is_bidirectional_skip"] = False
        return eager_mask(*args, **kwargs)

    AttentionInterface.register(IMPLEMENTATION, attention)
    AttentionMaskInterface.register(IMPLEMENTATION, mask)
    return IMPLEMENTATION


def _output_weight(module) -> torch.Tensor:
    """W_O as [hidden, H * D]: a Linear's weight, or the transpose of GPT-2's Conv1D weight ([in, out])."""
    return module.weight if isinstance(module, torch.nn.Linear) else module.weight.t()


@register_recorder
class InterfaceQK(Recorder):
    """q/k, scaling and mask as transformers' attention function receives them; attention recomputed exactly."""

    name = "interface"

    def __init__(self, lm, *, values: bool = False):
        super().__init__(lm, values=values)
        self.bands: list[Band] = []  # per layer, set by finish()
        self.scalings: list[float] = []  # per layer: the factor q . k was multiplied by
        self.kv_groups: list[int] = []  # per layer: query heads per key/value head (1 = no grouping)

    @contextmanager
    def running(self):
        """Run the forward under IMPLEMENTATION with this recorder listening; restore the model afterwards."""
        register_implementation()
        if not self.spec.attention:
            raise AttnlensError(f"family {self.spec.family!r} declares no attention modules (ArchSpec.attention)")
        model = self.lm.model
        modules = [id(m) for _name, m in find_modules(model, self.spec.attention)]
        configs = {id(c): c for c in (getattr(m, "config", None) for m in model.modules())
                   if hasattr(c, "_attn_implementation_internal")}  # the model's config and any sub-model's
        before = {key: c._attn_implementation_internal for key, c in configs.items()}
        try:
            for key in modules:
                _ACTIVE[key] = self
            for c in configs.values():
                c._attn_implementation_internal = IMPLEMENTATION
            yield
        finally:
            for key, c in configs.items():
                c._attn_implementation_internal = before[key]
            for key in modules:
                if _ACTIVE.get(key) is self:
                    del _ACTIVE[key]

    def hooks(self):
        if not self.values:
            return []
        if not self.spec.output:
            raise AttnlensError(f"family {self.spec.family!r} declares no output projection: "
                                "values=True is not available for it")
        return [(self.spec.output, self.collect("w_o", lambda module, _output: _output_weight(module)))]

    def forward_kwargs(self):
        return {"use_cache": False} if "use_cache" in _forward_parameters(type(self.lm.model.base_model)) else {}

    def record(self, query, key, value, mask, scaling, kwargs: dict) -> None:
        """One layer's call of the attention function: q [B, H, T, D], k/v [B, H_kv, T, D], mask [B, 1, T, T]."""
        if kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
            raise AttnlensError(f"the {self.spec.family!r} attention adds a position bias or a softcap to q . k; "
                                "the interface recorder cannot recompute it")
        groups = query.shape[1] // key.shape[1]
        d = query.shape[-1]
        scale = 1.0 / math.sqrt(d) if scaling is None else float(scaling)
        q = query.detach().float()
        if not math.isclose(scale * math.sqrt(d), 1.0, rel_tol=1e-7):
            q = q * (scale * math.sqrt(d))  # fold a non-standard scaling into q: q . k / sqrt(d) is the score
        self.store.setdefault("q", []).append(q)  # [B, H, T, D]
        self.store.setdefault("k", []).append(_per_query_head(key.detach().float(), groups))  # [B, H, T, D]
        self.store.setdefault("mask", []).append(mask)  # shared by the layers of one kind: no copy
        self.scalings.append(scale)
        self.kv_groups.append(groups)
        if self.values:
            self.store.setdefault("v", []).append(_per_query_head(value.detach().float(), groups))  # [B, H, T, D]

    def finish(self, output, mask):
        q = torch.stack(self.layers("q"), dim=1)  # [B, L, H, T, D]
        k = torch.stack(self.layers("k"), dim=1)  # [B, L, H, T, D]
        b, _, _, t, _ = q.shape
        real = mask.bool()  # [B, T]
        bands: dict[int, Band] = {}  # one per distinct mask tensor (the layers of one kind share it)
        for layer_mask in self.layers("mask"):
            if id(layer_mask) not in bands:
                visible = _visible(layer_mask, b, t, real.device)  # [B, T, T]
                band = band_of(visible)
                if not torch.equal(visible, band.allowed(t, real.device)[None] & real[:, None, :]):
                    raise AttnlensError(f"the {self.spec.family!r} attention mask is not padding plus a causal / "
                                        "sliding-window band; attnlens cannot recompute its attention")
                bands[id(layer_mask)] = band
            self.bands.append(bands[id(layer_mask)])
        norms = None
        if self.values:
            n_heads = q.shape[2]
            norms = torch.stack([head_output_norms(v.transpose(1, 2).reshape(b, t, -1), w, n_heads)
                                 for v, w in zip(self.layers("v"), self.layers("w_o"))], dim=1)  # [B, L, H, T]
        return Recorded(q, k, norms)

    def attention(self, queries, keys, mask, extras):
        b, n_layers, n_heads, t, d = queries.shape
        real = (torch.ones((b, t), dtype=torch.bool, device=queries.device) if mask is None
                else mask.bool())  # [B, T]
        attn = scratch("attention", (b, n_layers, n_heads, t, t), device=queries.device)  # [B, L, H, T, T]
        for layer in range(n_layers):  # one layer at a time keeps the temporaries small
            allowed = self.bands[layer].allowed(t, queries.device)[None] & real[:, None, :]  # [B, T, T]
            scores = layer_scores(queries[:, layer], keys[:, layer])  # [B, H, T, T]
            scores.mul_(1.0 / math.sqrt(d)).masked_fill_(~allowed[:, None], float("-inf"))
            torch.softmax(scores, dim=-1, out=attn[:, layer])
            attn[:, layer].masked_fill_(~allowed.any(-1)[:, None, :, None], 0.0)
        return attn  # a (padding) query that may see no key at all (a local window past the text) gets 0s


def _per_query_head(states: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, H_kv, T, D] -> [B, H_kv * groups, T, D]: each key/value head repeated for its group of query heads."""
    if groups == 1:
        return states
    b, h_kv, t, d = states.shape
    return states[:, :, None].expand(b, h_kv, groups, t, d).reshape(b, h_kv * groups, t, d)


@functools.lru_cache(maxsize=None)
def _forward_parameters(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)
