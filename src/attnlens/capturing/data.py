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


_ARRAYS = ("token_ids", "segment_ids", "word_ids", "special_mask", "attentions", "queries", "keys")


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
      attentions    float32    [L, H, T, T]  rows (queries) sum to 1 over keys
      queries       float32    [L, H, T, D]
      keys          float32    [L, H, T, D]
    """

    tokens: list[str]
    token_ids: np.ndarray
    segment_ids: np.ndarray
    word_ids: np.ndarray
    special_mask: np.ndarray
    attentions: np.ndarray
    queries: np.ndarray
    keys: np.ndarray
    text_a: str = ""
    text_b: str | None = None
    model_name: str = ""
    meta: dict = field(default_factory=dict)

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
        return int(self.queries.shape[-1])

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
        }
        arrays = {name: getattr(self, name) for name in _ARRAYS}
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
