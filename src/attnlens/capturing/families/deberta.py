"""DeBERTa-v2/v3: disentangled attention, recorded term by term.

transformers (5.x, `DisentangledSelfAttention`) scores query i on key j as

    ( q_i . k_j  +  q_i . k^r(delta_ij)  +  k_j . q^r(delta'_ij) ) / sqrt(d * f)

content->content, content->position (c2p) and position->content (p2c), where k^r / q^r are the
relative-position embeddings through the position key/query projections (the content ones when
share_att_key), delta the clamped (log-bucketed when position_buckets > 0) relative position
and f = 1 + the number of position terms in pos_att_type. The recorder keeps what each layer's
q/k projections gave (on its hidden states, and on the relative embeddings: k^r, q^r), forms
the two position terms at the model's own bucketed relative positions (its build_relative_position),
and records them as extras in logit units (already divided by sqrt(d * f)); CONTENT_SCALE holds
1 / sqrt(d * f).
"""

from __future__ import annotations

import sys

import torch

from ...errors import AttnlensError
from ..recorders import Recorded, head_output_norms, register_recorder, split_heads
from .terms import CONTENT_SCALE, ScoreTerms

C2P = "content_to_position"
P2C = "position_to_content"


def _position_term(x: torch.Tensor, pos: torch.Tensor, buckets: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x_a . pos[index[a, b]] for every a, b: x [B, H, T, D], pos [1, H, 2S, D] -> [B, H, T, T], where
    buckets = torch.unique(index, return_inverse=True) of the relative-position index [T, T].

    Only the buckets `index` uses are multiplied (at most 2T - 1 of the 2S: a short input needs few).
    """
    used, inverse = buckets  # [U], [T, T]
    scores = x @ pos[:, :, used].transpose(-1, -2)  # [B, H, T, U]
    return torch.gather(scores, -1, inverse.expand(*scores.shape[:2], *inverse.shape))


@register_recorder
class Disentangled(ScoreTerms):
    """softmax(q_c . k_c / sqrt(d f) + c2p + p2c + mask): DeBERTa-v2/v3 (exact whatever the config's
    pos_att_type, position_buckets and share_att_key)."""

    name = "disentangled"
    score_terms = (C2P, P2C)

    def hooks(self):
        if not self.spec.attention:
            raise AttnlensError(f"family {self.spec.family!r} declares no attention module for the disentangled "
                                "recorder")
        entries = [(self.spec.attention + r"\.(?:query_proj|key_proj|pos_key_proj|pos_query_proj)", self._projection),
                   (self.spec.attention, self._record_layer)]
        if self.values:
            entries += [(self.spec.value, self.collect("v")),
                        (self.spec.output, self.collect("w_o", lambda module, _output: module.weight))]
        return entries

    def _projection(self, module, inputs, output):
        """Every call of a layer's q/k projections, on its hidden states or on the relative embeddings."""
        self.store.setdefault("projections", []).append((module, inputs[0], output.detach()))

    def _positions(self, module, hidden):
        """Bucketed relative positions [T, T] of this forward, by the model's own function."""
        if "positions" not in self.store:
            model_code = sys.modules[type(module).__module__]
            positions = model_code.build_relative_position(hidden, hidden, bucket_size=module.position_buckets,
                                                           max_position=module.max_relative_positions)[0]  # [T, T]
            self.store["positions"] = positions.long()
        return self.store["positions"]

    def _buckets(self, direction: str, positions: torch.Tensor, span: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The position-embedding rows one direction's term reads ("c2p": positions + span, "p2c": -positions +
        span, clamped to the 2S rows) as torch.unique(index, return_inverse=True); the same for every layer, so
        found once per forward."""
        key = f"buckets {direction} {span}"
        if key not in self.store:
            index = (positions if direction == "c2p" else -positions) + span  # [T, T]
            self.store[key] = torch.unique(torch.clamp(index, 0, 2 * span - 1), return_inverse=True)
        return self.store[key]

    def _output(self, calls, linear, hidden, on_hidden: bool, span: int = 0):
        """What `linear` gave during this layer on the hidden states (or on the relative embeddings); computed
        here only if the layer did not call it that way."""
        for module, x, out in calls:
            if module is linear and (x is hidden) == on_hidden:
                return out
        if on_hidden:
            return linear(hidden)
        encoder = self.lm.model.base_model.encoder
        return linear(encoder.get_rel_embedding()[: 2 * span][None])  # [1, 2S, H * D]

    def _record_layer(self, module, inputs, _output):
        hidden = inputs[0]  # [B, T, hidden]: the layer's input (query_states is not used by DeBERTa's encoder)
        calls = self.store.pop("projections", [])
        n_heads = module.num_attention_heads
        q = split_heads(self._output(calls, module.query_proj, hidden, True), n_heads).float()  # [B, H, T, D]
        k = split_heads(self._output(calls, module.key_proj, hidden, True), n_heads).float()  # [B, H, T, D]
        kinds = list(module.pos_att_type)
        factor = 1 + ("c2p" in kinds) + ("p2c" in kinds)
        scale = torch.sqrt(torch.tensor(q.shape[-1], dtype=torch.float) * factor)  # as transformers computes it
        terms = {}
        if module.relative_attention:
            span = module.pos_ebd_size
            positions = self._positions(module, hidden)
            if "c2p" in kinds:
                proj = module.key_proj if module.share_att_key else module.pos_key_proj
                pos_k = split_heads(self._output(calls, proj, hidden, False, span), n_heads).float()  # [1, H, 2S, D]
                terms[C2P] = _position_term(q, pos_k, self._buckets("c2p", positions, span)) / scale  # [B, H, T, T]
            if "p2c" in kinds:
                proj = module.query_proj if module.share_att_key else module.pos_query_proj
                pos_q = split_heads(self._output(calls, proj, hidden, False, span), n_heads).float()  # [1, H, 2S, D]
                buckets = self._buckets("p2c", positions, span)  # index [T(key), T(query)]
                terms[P2C] = _position_term(k, pos_q, buckets).transpose(-1, -2) / scale  # [B, H, T, T]
        self.store.setdefault("layer", []).append((q, k, 1.0 / float(scale), terms))

    def finish(self, output, mask):
        layers = self.layers("layer")
        q = torch.stack([x[0] for x in layers], dim=1)  # [B, L, H, T, D]
        k = torch.stack([x[1] for x in layers], dim=1)  # [B, L, H, T, D]
        b, n_layers, n_heads = q.shape[:3]
        scale = torch.tensor([x[2] for x in layers], dtype=torch.float32, device=q.device)  # [L]
        extras = {CONTENT_SCALE: scale[None, :, None].expand(b, n_layers, n_heads).contiguous()}  # [B, L, H]
        for name in self.score_terms:
            if name in layers[0][3]:
                extras[name] = torch.stack([x[3][name] for x in layers], dim=1)  # [B, L, H, T, T]
        norms = None
        if self.values:
            norms = torch.stack([head_output_norms(v, w, n_heads) for v, w in
                                 zip(self.layers("v"), self.layers("w_o"))], dim=1)  # [B, L, H, T]
        return Recorded(q, k, norms, extras)
