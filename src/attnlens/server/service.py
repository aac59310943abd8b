"""What the server does with its models: captures (kept briefly for their per-layer view
data), fill-mask predictions with the masked input's attention, two-capture comparisons and
the corpus search of one token's head behaviour (searching.ContextSearch).

Everything here is blocking model work; the app runs it on the InferenceQueue. Captures go through
each model's CaptureBatcher (batching.py), so concurrent requests share padded forward passes; the
view payloads are built on at most `limits.workers` threads at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..analysis.diff import row_distances
from ..capturing import Capture
from ..capturing import check_text as check_user_text
from ..errors import AttnlensError
from ..patterns.profile import FEATURES, head_profile
from ..pretraining.predict import mask_predictions
from ..views.payload import build_payload
from .batching import CaptureBatcher, token_limit_error
from .limits import LimitError, Limits
from .models import ServedModel
from .searching import ContextSearch


@dataclass
class StoredCapture:
    """A capture's view payload, as the page fetches it: meta + per-layer buffers."""

    id: str
    model: str
    meta: dict
    buffers: dict[str, bytes]

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def bundle(self) -> bytes:
        """Every buffer in one body, in the order of meta["buffers"] (sizes in meta["bundle"])."""
        return b"".join(self.buffers[name] for name in self.meta["buffers"])


def offer_bundle(meta: dict, buffers: dict[str, bytes], limit: int) -> None:
    """Mark a payload whose buffers add up to at most `limit` bytes as fetchable in one GET (`<capture>/buffers`):
    meta["bundle"] lists each buffer's size in meta["buffers"] order. A page then loads a short input in one round
    trip instead of ~20; a long one keeps loading layer by layer, only what its views show."""
    sizes = [len(buffers[name]) for name in meta["buffers"]]
    meta["bundle"] = {"sizes": sizes} if sum(sizes) <= limit else None


class CaptureStore:
    """The most recent captures' payloads (LRU, bounded by count)."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self._items: OrderedDict[str, StoredCapture] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, capture_id: str) -> StoredCapture | None:
        with self._lock:
            item = self._items.get(capture_id)
            if item is not None:
                self._items.move_to_end(capture_id)
            return item

    def put(self, item: StoredCapture) -> None:
        with self._lock:
            self._items[item.id] = item
            self._items.move_to_end(item.id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def capture_id(model: str, text_a: str, text_b: str | None) -> str:
    """A stable id for one input on one model (the same input gets the same id)."""
    key = "\x00".join([model, text_a, "\x01" if text_b is None else text_b])
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Service:
    """Captures, predictions and comparisons over the served models, within `limits`."""

    def __init__(self, models: dict[str, ServedModel], limits: Limits, searcher: ContextSearch | None = None):
        self.models = models
        self.limits = limits
        self.store = CaptureStore(limits.cached_captures)
        self.searcher = searcher
        self.batchers = {name: CaptureBatcher(served, limits.max_tokens, max_wait_s=limits.batch_wait_ms / 1000,
                                              max_inputs=limits.max_batch) for name, served in models.items()}
        self._payload_slots = threading.BoundedSemaphore(limits.workers)  # CPU work beside the model's thread

    def close(self) -> None:
        """Stop the batchers' threads (requests still waiting for one get 503)."""
        for batcher in self.batchers.values():
            batcher.close()

    # ---- inputs ----
    def model(self, name: str | None) -> ServedModel:
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise LimitError(404, f"unknown model {name!r}; this server offers: {', '.join(self.models)}")
        return self.models[name]

    def check_text(self, text_a: str, text_b: str | None) -> None:
        """This server's character limit (413), then attnlens's one check of user text (422)."""
        for which, text in (("A", text_a), ("B", text_b)):
            if text is None:
                continue
            limit = self.limits.max_chars
            if isinstance(text, str) and len(text) > limit:
                raise LimitError(413, f"sentence {which} has {len(text)} characters; the limit is {limit}")
            try:
                check_user_text(text, which)
            except AttnlensError as exc:
                raise LimitError(422, str(exc)) from None

    def _check_tokens(self, served: ServedModel, text_a: str, text_b: str | None) -> int:
        lm = served.lm
        n = len(lm.tokenizer(text_a, text_b)["input_ids"])
        error = token_limit_error(served, n, self.limits.max_tokens)
        if error is not None:
            raise error
        return n

    # ---- captures ----
    def cached(self, served: ServedModel, text_a: str, text_b: str | None) -> StoredCapture | None:
        return self.store.get(capture_id(served.name, text_a, text_b))

    def capture(self, served: ServedModel, text_a: str, text_b: str | None) -> StoredCapture:
        """Capture (or reuse) one input's payload. Blocking."""
        stored, _ = self.capture_with_data(served, text_a, text_b, keep_capture=False)
        return stored

    def capture_with_data(self, served: ServedModel, text_a: str, text_b: str | None,
                          keep_capture: bool = True) -> tuple[StoredCapture, Capture | None]:
        self.check_text(text_a, text_b)
        cid = capture_id(served.name, text_a, text_b)
        stored = self.store.get(cid)
        if stored is not None and not keep_capture:
            return stored, None
        cap = self.batchers[served.name].capture(text_a, text_b)  # checks the token limit (413)
        if stored is None:
            with self._payload_slots:
                meta, buffers = build_payload(cap)
            meta["model_name"] = served.name
            if (prediction := served.prediction(cap)) is not None:  # a fine-tuned classifier's, same forward
                meta["prediction"] = prediction
            offer_bundle(meta, buffers, self.limits.bundle_bytes)
            stored = StoredCapture(cid, served.name, meta, buffers)
            self.store.put(stored)
        return stored, cap

    # ---- fill-mask ----
    def fill_mask(self, served: ServedModel, text_a: str, text_b: str | None, position: int | None,
                  top_k: int) -> dict:
        """Top-k predictions where the input has [MASK] (or at token `position`, masked first),
        plus the masked input's capture. Blocking."""
        self.check_text(text_a, text_b)
        if not served.has_mlm:
            raise LimitError(422, f"model {served.name} has no masked-LM head, so it cannot predict masked tokens; "
                                  "serve a checkpoint with one (e.g. from `attnlens pretrain`)")
        if not 1 <= top_k <= self.limits.max_top_k:
            raise LimitError(422, f"top_k must be between 1 and {self.limits.max_top_k}")
        lm = served.lm
        tok = lm.tokenizer
        with served.lock:
            self._check_tokens(served, text_a, text_b)
            original = None
            if position is not None:
                text_a, text_b, original = mask_token_text(tok, text_a, text_b, position)
                self.check_text(text_a, text_b)
                self._check_tokens(served, text_a, text_b)
            enc = tok(text_a, text_b, return_tensors="pt")
            ids = enc["input_ids"][0]  # [T]
            positions = (ids == tok.mask_token_id).nonzero().flatten()  # [M]
            if position is not None and position not in positions.tolist():
                raise LimitError(422, f"token {position} could not be masked on its own in this input")
            if len(positions) == 0:
                raise LimitError(422, f"the input has no {tok.mask_token} token and no position to mask")
            found = mask_predictions(lm, enc, positions, top_k)
        predictions = [{"position": p.position, "candidates": [{"token": t, "probability": v} for t, v in
                                                               zip(p.tokens, p.probabilities, strict=True)]}
                       for p in found]
        masked = self.capture(served, text_a, text_b)
        return {"model": served.name, "text_a": text_a, "text_b": text_b, "masked_token": original,
                "predictions": predictions, "masked": {"id": masked.id, "meta": masked.meta}}

    # ---- corpus search ----
    def check_search(self, served: ServedModel, layer: int, head: int, k: int) -> None:
        """What a search request can be refused for before any model work (422)."""
        lm = served.lm
        if not 0 <= layer < lm.num_layers:
            raise LimitError(422, f"layer {layer} is out of range: model {served.name} has layers "
                                  f"0..{lm.num_layers - 1}")
        if not 0 <= head < lm.num_heads:
            raise LimitError(422, f"head {head} is out of range: model {served.name} has heads 0..{lm.num_heads - 1}")
        if not 1 <= k <= self.limits.max_search_k:
            raise LimitError(422, f"k must be between 1 and {self.limits.max_search_k}")

    def search(self, served: ServedModel, text_a: str, text_b: str | None, position: int, layer: int, head: int,
               mode: str, k: int) -> dict:
        """The k corpus contexts where (layer, head) behaves most like on token `position` of the input. Blocking:
        the first search of a (model, mode, layer) builds its index."""
        self.check_search(served, layer, head, k)
        if self.searcher is None:
            raise LimitError(404, "this server has no search corpus")
        _, cap = self.capture_with_data(served, text_a, text_b)
        if not 0 <= position < len(cap.tokens):
            raise LimitError(422, f"token {position} is out of range: the input has tokens 0..{len(cap.tokens) - 1}")
        if cap.special_mask[position]:
            raise LimitError(422, f"token {position} ({cap.tokens[position]}) is a special token; the search indexes "
                                  "text tokens only")
        with served.lock:
            return self.searcher.run(served, cap, layer, head, position, mode, k)

    # ---- comparison ----
    def compare(self, left: tuple[ServedModel, str, str | None], right: tuple[ServedModel, str, str | None]) -> dict:
        """Both captures and a per-head difference map (layers x heads). Blocking."""
        stored_l, cap_l = self.capture_with_data(*left)
        stored_r, cap_r = self.capture_with_data(*right)
        diff = head_difference(cap_l, cap_r)
        return {"left": {"id": stored_l.id, "meta": stored_l.meta}, "right": {"id": stored_r.id, "meta": stored_r.meta},
                **diff}


def mask_token_text(tokenizer, text_a: str, text_b: str | None, position: int) -> tuple[str, str | None, str]:
    """The input with token `position` replaced by the mask token (through its character span),
    and that token. The re-encoded input must differ from the original at that token only."""
    enc = tokenizer(text_a, text_b, return_offsets_mapping=True)
    ids = enc["input_ids"]
    if not 0 <= position < len(ids):
        raise LimitError(422, f"token {position} is out of range: the input has tokens 0..{len(ids) - 1}")
    seq = enc.sequence_ids()[position]
    if seq is None:
        raise LimitError(422, f"token {position} ({tokenizer.convert_ids_to_tokens(ids[position])}) is a special token")
    start, end = enc["offset_mapping"][position]
    text = text_a if seq == 0 else text_b
    masked = text[:start] + tokenizer.mask_token + text[end:]
    new_a, new_b = (masked, text_b) if seq == 0 else (text_a, masked)
    expected = list(ids)
    expected[position] = tokenizer.mask_token_id
    if list(tokenizer(new_a, new_b)["input_ids"]) != expected:
        raise LimitError(422, f"token {position} cannot be masked on its own (masking it changes the other tokens)")
    return new_a, new_b, tokenizer.convert_ids_to_tokens(ids[position])


def head_difference(left: Capture, right: Capture) -> dict:
    """A layers x heads map of how differently each head attends in two captures.

    Same tokens (same input on two models, or the same model twice): per head, the mean
    over queries of the total variation distance 0.5 * sum_k |a - b| (0 = identical, 1 = disjoint).
    Different tokens (two inputs): per head, the mean absolute difference of the head's
    profile (patterns.profile.head_profile; also in [0, 1]). A feature no query of an input
    defines (e.g. "previous" in a one-word input) counts as no attention on it.
    Only the layers and heads both models have are compared.
    """
    n_layers = min(left.num_layers, right.num_layers)
    n_heads = min(left.num_heads, right.num_heads)
    a = left.attentions[:n_layers, :n_heads]  # [L, H, T, T]
    b = right.attentions[:n_layers, :n_heads]
    aligned = list(left.tokens) == list(right.tokens)
    if aligned:
        values = row_distances(a, b).mean(-1)  # [L, H] (attnlens diff's distance)
        measure = "total variation distance, mean over queries"
    else:
        profile_l = np.nan_to_num(head_profile(left)[:n_layers, :n_heads], nan=0.0)  # [L, H, K]
        profile_r = np.nan_to_num(head_profile(right)[:n_layers, :n_heads], nan=0.0)  # [L, H, K]
        values = np.abs(profile_l - profile_r).mean(-1)  # [L, H]
        measure = "mean absolute difference of head profiles (" + ", ".join(FEATURES) + ")"
    causal = [side for side, cap in (("left", left), ("right", right)) if cap.causal]
    if len(causal) == 1:  # an encoder against a decoder: the decoder's mask is part of the difference
        measure += (f"; the {causal[0]} model is causal (a decoder): its queries put no weight on later tokens, "
                    "which is part of the difference")
    return {"aligned": aligned, "measure": measure, "layers": n_layers, "heads": n_heads,
            "map": [[round(float(v), 5) for v in row] for row in values]}
