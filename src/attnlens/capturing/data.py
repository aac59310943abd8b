"""The Capture: what one forward pass of one input showed, as plain numpy data.

Every consumer (views, pattern scores, explanations, the server) is a pure function of
a Capture, so it can be tested without a model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import AttnlensError
from ..io import atomic_open

# name -> fn(capture, **options): the notebook views, registered by attnlens.views (a layer above)
_VIEWERS: dict[str, Callable] = {}


def register_viewer(name: str, fn: Callable) -> None:
    """Make `Capture.<name>_view()` call `fn(capture, **options)` (used by attnlens.views)."""
    _VIEWERS[name] = fn


_ARRAYS = ("token_ids", "segment_ids", "word_ids", "special_mask", "attentions")
_OPTIONAL = ("queries", "keys", "value_norms", "logits")  # saved only when present (no q/k: the eager fallback)
_EXTRA = "extra/"  # prefix of the family-specific arrays in the .npz


def _bands(raw) -> list[tuple[int | None, int | None]] | None:
    """A saved header's bands ([[lo, hi], ...] or null) as a list of (lo, hi) tuples."""
    if raw is None:
        return None
    try:
        return [(None if lo is None else int(lo), None if hi is None else int(hi)) for lo, hi in raw]
    except (TypeError, ValueError):
        raise AttnlensError("the capture file's bands are not a list of [lo, hi] offsets") from None


class _Attentions:
    """`Capture.attentions`: the stored array, or computed on first access by the capture's
    `attention_recipe` (the recorder's own recomputation from the recorded q/k) and kept."""

    def __get__(self, obj, owner=None):
        if obj is None:
            raise AttributeError("attentions")  # no default: the dataclass field stays required
        value = obj.__dict__.get("_attentions")
        if value is None and obj.__dict__.get("attention_recipe") is not None:
            value = obj.__dict__["_attentions"] = obj.attention_recipe()  # [L, H, T, T]
            obj.attention_recipe = None
        return value

    def __set__(self, obj, value):
        obj.__dict__["_attentions"] = value


@dataclass
class Capture:
    """Attention and per-head query/key vectors of one input (only its real tokens).

    Shapes (L layers, H heads, T tokens, D = d_head):
      tokens        list[str]  [T]      WordPiece tokens, specials included
      token_ids     int64      [T]
      segment_ids   int64      [T]      0 = sentence A, 1 = sentence B; a special token
                                        belongs to the sentence before it ([CLS] to A)
      word_ids      int64      [T]      index of the word a piece belongs to, -1 for specials
      special_mask  bool       [T]      True for [CLS], [SEP] and other special tokens
      attentions    float32    [L, H, T, T]  rows (queries) sum to 1 over keys; computed on first
                                        access from q/k when the capture came with an attention_recipe
      queries       float32    [L, H, T, D]  or None: a family without an entry (attention taken
      keys          float32    [L, H, T, D]  from the model itself; see `require_qk`)
      value_norms   float32    [L, H, T] or None   ||f_h(x_j)||, what head h passes on from token j
                                        (captured with values=True; Kobayashi et al. 2020)
      extras        name -> float32 [L, H, T, ...]  family-specific score terms (token axes from the third)
      causal        bool                a decoder's capture: no token attends to a later one
      bands         list[(lo, hi)] [L] or None   each layer's allowed key offsets j - i in [lo, hi] (None:
                                        unbounded on that side; causal: (None, 0), a sliding window: (-w, w));
                                        None when the family's recorder does not know its mask
      logits        float32    [C] or [T, C] or None   a fine-tuned classifier's output in the same forward
                                        (sequence / token classification; see finetuning.predict)
    """

    tokens: list[str]
    token_ids: np.ndarray
    segment_ids: np.ndarray
    word_ids: np.ndarray
    special_mask: np.ndarray
    attentions: np.ndarray = _Attentions()
    queries: np.ndarray | None
    keys: np.ndarray | None
    text_a: str = ""
    text_b: str | None = None
    model_name: str = ""
    meta: dict = field(default_factory=dict)
    value_norms: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    causal: bool = False
    logits: np.ndarray | None = None
    bands: list[tuple[int | None, int | None]] | None = None
    attention_recipe: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    # ---- shape helpers -------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def d_head(self) -> int:
        """Width of a head's q/k (0 when the capture has none)."""
        return 0 if self.queries is None else int(self.queries.shape[-1])

    @property
    def has_qk(self) -> bool:
        return self.queries is not None and self.keys is not None

    def require_qk(self, feature: str) -> None:
        """A one-line error when `feature` needs per-head q/k and this capture has none."""
        if not self.has_qk:
            name = f" of {self.model_name}" if self.model_name else ""
            raise AttnlensError(f"{feature} needs per-head queries/keys; this capture{name} has only the model's own "
                                "attention (its family has no entry in the architecture table)")

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    def check_layer_head(self, layer: int, head: int) -> None:
        """Raise a clear error when (layer, head) is outside this capture."""
        if not 0 <= layer < self.num_layers:
            raise AttnlensError(f"layer {layer} is out of range: the model has layers 0..{self.num_layers - 1}")
        if not 0 <= head < self.num_heads:
            raise AttnlensError(f"head {head} is out of range: the model has heads 0..{self.num_heads - 1}")

    # ---- persistence ---------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write to a compressed .npz (no pickle); written atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        header = {
            "format": "attnlens.capture/1",
            "tokens": self.tokens,
            "text_a": self.text_a,
            "text_b": self.text_b,
            "model_name": self.model_name,
            "meta": self.meta,
            "causal": self.causal,
            "bands": None if self.bands is None else [[None if x is None else int(x) for x in band]
                                                      for band in self.bands],
        }
        arrays = {name: getattr(self, name) for name in (*_ARRAYS, *_OPTIONAL) if getattr(self, name) is not None}
        arrays.update({_EXTRA + name: value for name, value in self.extras.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            np.savez_compressed(fh, header=np.array(json.dumps(header)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Capture":
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise AttnlensError(f"no capture file at {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {name: data[name] for name in _ARRAYS}
                arrays.update({name: data[name] if name in data.files else None for name in _OPTIONAL})
                extras = {name[len(_EXTRA):]: data[name] for name in data.files if name.startswith(_EXTRA)}
        except (OSError, ValueError, KeyError) as exc:
            raise AttnlensError(f"{path} is not an attnlens capture file ({type(exc).__name__})") from None
        if header.get("format") != "attnlens.capture/1":
            raise AttnlensError(f"{path} is not an attnlens capture file")
        return cls(
            tokens=list(header["tokens"]),
            text_a=header["text_a"],
            text_b=header["text_b"],
            model_name=header["model_name"],
            meta=header.get("meta", {}),
            causal=bool(header.get("causal", False)),
            bands=_bands(header.get("bands")),
            extras=extras,
            **arrays,
        )

    # ---- views (thin: the work is in attnlens.views, which registers itself) ----------
    def _view(self, name: str, **kwargs):
        if name not in _VIEWERS:
            raise AttnlensError("the views are not loaded: import attnlens.views")
        return _VIEWERS[name](self, **kwargs)

    def head_view(self, layer: int | None = None, **kwargs):
        """Jupyter widget: the head view (needs the `jupyter` extra)."""
        return self._view("head", layer=layer, **kwargs)

    def model_view(self, **kwargs):
        """Jupyter widget: every layer x head as a thumbnail (needs the `jupyter` extra)."""
        return self._view("model", **kwargs)

    def neuron_view(self, layer: int = 0, head: int = 0, **kwargs):
        """Jupyter widget: q, k, q x k, q.k and softmax of one head (needs the `jupyter` extra)."""
        return self._view("neuron", layer=layer, head=head, **kwargs)
