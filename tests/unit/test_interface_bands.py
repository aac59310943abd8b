"""The interface recorder's mask summary: a band of allowed key - query offsets, inferred from the model's mask."""

from __future__ import annotations

import pytest
import torch

from attnlens import AttnlensError
from attnlens.capturing.families.interface import Band, _visible, band_of

T = 7


def offsets():
    return torch.arange(T)[None, :] - torch.arange(T)[:, None]  # [T, T]: key - query


@pytest.mark.parametrize("band, rule", [
    (Band(None, None), lambda d: torch.ones_like(d, dtype=torch.bool)),  # bidirectional
    (Band(None, 0), lambda d: d <= 0),  # causal
    (Band(2, 2), lambda d: d.abs() <= 2),  # a local window (ModernBERT: local_attention 4)
    (Band(3, 0), lambda d: (d <= 0) & (d > -4)),  # causal sliding window of 4 (Qwen2, Mistral)
])
def test_band_round_trips_through_its_mask(band, rule):
    mask = rule(offsets())
    assert torch.equal(band.allowed(T, "cpu"), mask)
    assert band_of(mask[None]) == band


def test_a_window_wider_than_the_input_is_unbounded():
    assert band_of((offsets().abs() <= T + 5)[None]) == Band(None, None)  # valid for any shorter input too
    assert band_of((offsets() <= 0)[None]) == Band(None, 0)


def test_padding_rows_do_not_widen_the_band():
    causal = offsets() <= 0
    real = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    visible = causal[None] & real[:, None, :]  # [B, T, T]: padding keys hidden, as the model masks them
    assert band_of(visible) == Band(None, 0)


def test_additive_float_masks_are_read_and_odd_biases_refused():
    causal = offsets() <= 0
    additive = torch.where(causal, 0.0, torch.finfo(torch.float32).min)[None, None]  # [1, 1, T, T], as eager gets it
    assert torch.equal(_visible(additive, 1, T, "cpu"), causal[None])
    with pytest.raises(AttnlensError, match="neither 0 nor -inf"):
        _visible(additive + 0.5, 1, T, "cpu")
    with pytest.raises(AttnlensError, match="hides every key"):
        band_of(torch.zeros((1, T, T), dtype=torch.bool))
