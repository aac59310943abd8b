"""Lenses: what a head passes on, not only where it looks. Pure functions of a Capture.

Each lens is one registry entry (`CAPTURE_LENSES`) whose function's docstring is its definition
(formula and paper). Lenses that need the model itself (grad_weights) live in the analysis layer
(attnlens.analysis.lenses), which adds them to the full registry `attnlens.LENSES`.

Shapes: L layers, H heads, T tokens.
  weights       [L, H, T, T]  the attention itself
  value_norm    [L, H, T, T]  ||alpha_ij f_h(x_j)||   (Kobayashi et al. 2020)
  rollout       [L, T, T]     attention rollout        (Abnar & Zuidema 2020)
  flow          [L, T, T]     attention flow (max-flow) (Abnar & Zuidema 2020)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import AttnlensError

# Attention flow solves L * T^2 max-flow problems on a graph of (L + 1) * T nodes and L * T^2 edges.
# Measured with scipy's maximum_flow (Dinic) for 6 layers x 12 heads (benchmarks/bench_effect.py, 2 shared
# CPU cores): 0.4 s at 16 tokens, 2.7 s at 32, 11 s at 48, 30 s at 64 (about 4x that under heavy load).
# Past FLOW_TOKEN_LIMIT it is refused.
FLOW_TOKEN_LIMIT = 64
FLOW_SCALE = 1 << 24  # capacities are integers for scipy: resolution 6e-8 per edge


@dataclass(frozen=True)
class Lens:
    """One lens: its name, shape, what the capture must carry (or the model), and the function."""

    name: str
    shape: str  # "L,H,T,T" or "L,T,T"
    paper: str
    fn: Callable  # fn(capture, **options) -> np.ndarray (model lenses: fn(capture, model=..., **options))
    needs: str = ""  # "" | "values" (capture option values=True) | "model" (re-runs the model)

    @property
    def definition(self) -> str:
        """The function's docstring: the formula."""
        return " ".join((self.fn.__doc__ or "").split())

    @property
    def per_head(self) -> bool:
        return self.shape == "L,H,T,T"


def weights(capture) -> np.ndarray:
    """alpha^{l,h}_{ij} = softmax(q_i . k_j / sqrt(d) + mask): the captured attention itself.  # [L, H, T, T]"""
    return np.asarray(capture.attentions, dtype=np.float32)


def value_norm(capture) -> np.ndarray:
    """||alpha_ij f_h(x_j)|| = alpha_ij ||f_h(x_j)|| with f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h: the size of what
    head h at query i takes from key j (Kobayashi et al. 2020, "Attention is Not Only a Weight").  # [L, H, T, T]"""
    norms = getattr(capture, "value_norms", None)
    if norms is None:
        raise AttnlensError("the value_norm lens needs the value vectors: capture with values=True "
                            "(attnlens.capture(..., values=True))")
    return np.asarray(capture.attentions, dtype=np.float32) * np.asarray(norms, dtype=np.float32)[:, :, None, :]


def residual_attention(attentions: np.ndarray) -> np.ndarray:
    """A_l = 0.5 * mean_h(attention_l) + 0.5 * I, rows renormalised to 1.  [..., L, H, T, T] -> [..., L, T, T]"""
    att = np.asarray(attentions, dtype=np.float64)
    mixed = 0.5 * att.mean(axis=-3) + 0.5 * np.eye(att.shape[-1])  # [..., L, T, T]
    return mixed / mixed.sum(axis=-1, keepdims=True)


def rollout_of(attentions: np.ndarray) -> np.ndarray:
    """Rollout of attention [..., L, H, T, T] (leading batch axes allowed; padded keys must have weight 0).
    # [..., L, T, T]"""
    mixed = residual_attention(attentions)  # [..., L, T, T]
    out = np.empty_like(mixed)
    out[..., 0, :, :] = mixed[..., 0, :, :]
    for l in range(1, mixed.shape[-3]):
        out[..., l, :, :] = mixed[..., l, :, :] @ out[..., l - 1, :, :]
    return out.astype(np.float32)


def rollout(capture) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): with
    A_l = 0.5 * mean_h(alpha_l) + 0.5 * I (rows renormalised), R_0 = A_0 and R_l = A_l R_{l-1};
    R_l[i, j] is how much of input token j reaches position i after layer l.  # [L, T, T]"""
    return rollout_of(capture.attentions)


def flow_graph(mixed: np.ndarray):
    """The layered attention graph as a CSR matrix of integer capacities.

    Node l * T + t is token t after layer l - 1 (l = 0: the input embeddings); the edge from key j at
    level l to query i at level l + 1 has capacity A_l[i, j] (scaled by FLOW_SCALE). mixed: [L, T, T].
    """
    from scipy.sparse import csr_matrix  # noqa: PLC0415  (scipy is optional: only the flow lens needs it)

    n_layers, t, _ = mixed.shape
    cap = np.rint(mixed * FLOW_SCALE).astype(np.int64)  # [L, T, T]
    layer, query, key = np.nonzero(cap > 0)
    rows = layer * t + key  # from key j at level l
    cols = (layer + 1) * t + query  # to query i at level l + 1
    size = (n_layers + 1) * t
    return csr_matrix((cap[layer, query, key].astype(np.int32), (rows, cols)), shape=(size, size))


def flow(capture, *, max_tokens: int = FLOW_TOKEN_LIMIT) -> np.ndarray:
    """Attention flow (Abnar & Zuidema 2020): F_l[i, j] = the maximum flow from input token j to position i
    after layer l through the layered graph whose edge from key j (level l) to query i (level l + 1) has
    capacity A_l[i, j] = (0.5 * mean_h(alpha_l) + 0.5 * I)[i, j] (rows renormalised). Real max-flow
    (scipy.sparse.csgraph.maximum_flow, Dinic): L * T^2 problems; refused past `max_tokens`.  # [L, T, T]"""
    return flow_of(capture.attentions, max_tokens=max_tokens)


def flow_of(attentions: np.ndarray, *, max_tokens: int = FLOW_TOKEN_LIMIT) -> np.ndarray:
    """Attention flow of one input's attention [L, H, T, T] (see `flow`).  # [L, T, T]"""
    n_layers, t = attentions.shape[0], attentions.shape[-1]
    if t > max_tokens:
        raise AttnlensError(f"the flow lens solves {n_layers} x {t}^2 max-flow problems; "
                            f"{t} tokens is past its limit of {max_tokens} (pass max_tokens= to raise it, "
                            "or use the rollout lens)")
    try:
        from scipy.sparse.csgraph import maximum_flow  # noqa: PLC0415  (optional: only this lens needs scipy)
    except ImportError:
        raise AttnlensError("the flow lens needs scipy: pip install scipy") from None
    graph = flow_graph(residual_attention(attentions))
    out = np.zeros((n_layers, t, t), dtype=np.float64)  # [L, T, T]
    for l in range(n_layers):
        for i in range(t):
            sink = (l + 1) * t + i
            for j in range(t):
                out[l, i, j] = maximum_flow(graph, j, sink).flow_value
    return (out / FLOW_SCALE).astype(np.float32)


_REGISTRY = (
    Lens("weights", "L,H,T,T", "", weights),
    Lens("value_norm", "L,H,T,T", "Kobayashi et al. 2020", value_norm, needs="values"),
    Lens("rollout", "L,T,T", "Abnar & Zuidema 2020", rollout),
    Lens("flow", "L,T,T", "Abnar & Zuidema 2020", flow),
)
CAPTURE_LENSES: dict[str, Lens] = {lens.name: lens for lens in _REGISTRY}



def scoring_maps(name: str, attentions: np.ndarray, value_norms: np.ndarray | None = None,
                 lengths=None) -> np.ndarray:
    """The capture-only lens `name` of a right-padded batch as attention-like maps the patterns can score:
    each row renormalised to sum to 1 over keys (value_norm: the share of the norm each key contributes);
    rollout / flow, which have no heads, repeated over the heads.

    attentions [B, L, H, T, T]; value_norms [B, L, H, T] (value_norm only); lengths [B] real tokens (flow only).
    Returns [B, L, H, T, T] float32.
    """
    if name not in CAPTURE_LENSES:
        raise AttnlensError(f"unknown lens {name!r} for pattern scores: use one of {', '.join(CAPTURE_LENSES)}")
    if name == "weights":
        return attentions
    att = np.asarray(attentions, dtype=np.float32)
    if name == "value_norm":
        if value_norms is None:
            raise AttnlensError("scoring under the value_norm lens needs the value vectors (values=True)")
        maps = att * np.asarray(value_norms, dtype=np.float32)[..., None, :]  # [B, L, H, T, T]
    elif name == "rollout":
        maps = np.broadcast_to(rollout_of(att)[:, :, None], att.shape)  # [B, L, H, T, T]
    else:
        maps = np.zeros(att.shape[:2] + att.shape[-2:], dtype=np.float32)  # [B, L, T, T]
        for b, n in enumerate(lengths if lengths is not None else [att.shape[-1]] * att.shape[0]):
            maps[b, :, :n, :n] = flow_of(att[b, :, :, :n, :n])
        maps = np.broadcast_to(maps[:, :, None], att.shape)  # [B, L, H, T, T]
    total = maps.sum(axis=-1, keepdims=True)  # [B, L, H, T, 1]
    return np.divide(maps, total, out=np.zeros(maps.shape, dtype=np.float32), where=total > 0)
