"""Reused scratch memory for corpus passes: the batch-sized arrays are taken from buffers that live
for the whole pass instead of being allocated and freed for every batch.

Why: a corpus pass needs, per batch, arrays as large as the attention itself ([B, L, H, T, T] float32,
tens of MB) in shapes that change with each batch's length. Taken from buffers that live for the whole
pass, they are never freed into the heap between batches (where blocks of changing sizes fragment it:
see analysis/heap.py) and their pages are faulted in once, not once per batch.

Outside `reused_scratch()` every request is a fresh array, so a capture never shares memory with
anything. Inside it, the array under a name is overwritten by the next request for that name:
only a pass that is done with a batch's arrays before it asks for the next batch's may use it
(`analysis.run.score_pairs` does).
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np
import torch

GROWTH = 1.25  # a buffer that must grow takes 25% more than asked, so a run of rising lengths grows it rarely

_BUFFERS: contextvars.ContextVar["dict[tuple, torch.Tensor] | None"] = contextvars.ContextVar("scratch", default=None)


@contextlib.contextmanager
def _buffers(value: "dict | None"):
    token = _BUFFERS.set(value)
    try:
        yield
    finally:
        _BUFFERS.reset(token)


def reused_scratch():
    """Within this block (this thread or task), `scratch()` hands out reused buffers."""
    return _buffers({})


def fresh_arrays():
    """Within this block `scratch()` hands out fresh arrays, even inside `reused_scratch()` (for arrays that
    outlive the batch, such as a capture's)."""
    return _buffers(None)


def scratch(name: str, shape, dtype: torch.dtype = torch.float32, device="cpu") -> torch.Tensor:
    """An uninitialised tensor of `shape`: fresh outside `reused_scratch()`, else the memory of the buffer
    `name` (one per dtype and device)."""
    buffers = _BUFFERS.get()
    if buffers is None:
        return torch.empty(shape, dtype=dtype, device=device)
    size, key = math.prod(shape), (name, dtype, torch.device(device))
    buffer = buffers.get(key)
    if buffer is None or buffer.numel() < size:
        buffers.pop(key, None)  # free the smaller one before taking the larger
        buffer = buffers[key] = torch.empty(math.ceil(size * GROWTH), dtype=dtype, device=device)
    return buffer[:size].view(shape)


def scratch_like(name: str, array: np.ndarray) -> np.ndarray:
    """`scratch` for a numpy array of `array`'s shape and dtype (float32 or float64)."""
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[array.dtype]
    return scratch(name, array.shape, dtype).numpy()
