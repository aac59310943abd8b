"""One forward pass with the family's recorder installed: what attention is made of, as numpy.

Attention is recomputed from what the hooks recorded (the same whatever attention backend,
sdpa or eager, runs the model), only when it is asked for: `Forward.attentions()` for a whole
batch, or lazily per input through `Capture.attention_recipe`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from .hooks import hooks
from .loading import LoadedModel
from .recorders import Recorder, attention_from_qk, recorder_for, split_heads
from .scratch import fresh_arrays

__all__ = ["Forward", "attention_from_qk", "forward_attention", "model_inputs", "split_heads"]


@functools.lru_cache(maxsize=None)
def _forward_input_names(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def model_inputs(module, batch: dict, device) -> dict:
    """The tensors of `batch` that `module.forward` accepts (DistilBERT takes no token_type_ids), on `device`."""
    accepted = _forward_input_names(type(module))
    return {k: v.to(device) for k, v in batch.items() if k in accepted}


def _numpy(x):
    return None if x is None else x.cpu().numpy()


def _tensor(x):
    return None if x is None else torch.from_numpy(x)


@dataclass
class Forward:
    """What one forward of a right-padded batch recorded, as float32 numpy arrays.

    queries / keys [B, L, H, T, D] (None for families without q/k), mask [B, T] (1 = real token),
    value_norms [B, L, H, T] or None, extras name -> [B, L, H, T, ...], logits [B, C] or [B, T, C]
    (a classifier's head output: sequence or token classification) or None.
    """

    recorder: Recorder
    queries: np.ndarray | None
    keys: np.ndarray | None
    mask: np.ndarray
    value_norms: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    _attentions: np.ndarray | None = None
    logits: np.ndarray | None = None

    def attentions(self) -> np.ndarray:
        """[B, L, H, T, T], recomputed from the recorded tensors on first call (padding keys get 0).

        Inside `reused_scratch()` (a corpus pass) it lives in the pass's reused buffer: valid until the next batch's.
        """
        if self._attentions is None:
            self._attentions = self.recompute(self.queries, self.keys, self.mask, self.extras, reuse=True)
        return self._attentions

    def recompute(self, queries, keys, mask, extras, *, reuse: bool = False) -> np.ndarray:
        """The recorder's attention of numpy q/k/extras ([B, ...]; mask [B, T] or None) as numpy; in fresh memory
        unless `reuse` (then in the reused scratch buffer, inside `reused_scratch()`)."""
        with torch.inference_mode(), contextlib.nullcontext() if reuse else fresh_arrays():
            attn = self.recorder.attention(_tensor(queries), _tensor(keys), _tensor(mask),
                                           {name: torch.from_numpy(x) for name, x in extras.items()})
        return attn.numpy()


_LOCKS: "weakref.WeakKeyDictionary[object, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _model_lock(model) -> threading.Lock:
    """One lock per model: hooks (and a recorder's backend switch) are per model, so two threads'
    forwards through one model would record each other's tensors; they take turns instead."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(model, threading.Lock())


def forward_attention(lm: LoadedModel, batch: dict, *, values: bool = False) -> Forward:
    """Forward one right-padded batch through `lm`'s recorder (see capturing.recorders).

    The encoder alone runs (a masked-LM head's vocabulary logits are not needed), except for a classifier
    (`lm.has_classifier_head`): its small head runs in the same pass and its logits are kept (Forward.logits).
    """
    recorder = recorder_for(lm, values=values)
    classifier = lm.has_classifier_head
    module = lm.model if classifier else lm.model.base_model
    inputs = model_inputs(module, batch, lm.device)
    mask = batch["attention_mask"].to(lm.device)  # [B, T]
    with _model_lock(lm.model), torch.inference_mode(), recorder.running(), hooks(lm.model, recorder.hooks()):
        output = module(**inputs, **recorder.forward_kwargs())
        recorded = recorder.finish(output, mask)
    recorder.store.clear()  # the hooked tensors are no longer needed; the recorder may live on in captures
    logits = output.logits.float() if classifier else None  # [B, C] or [B, T, C]
    return Forward(recorder, _numpy(recorded.queries), _numpy(recorded.keys), mask.cpu().numpy(),
                   _numpy(recorded.value_norms), {name: _numpy(x) for name, x in recorded.extras.items()},
                   _numpy(recorded.attentions), _numpy(logits))
