"""Sliding-window inference against a hand-written loop over windows (protocols.md section 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from benchmarks.evaluate.inference import predict_mask, sliding_window, window_starts


def _net(out_channels: int, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv3d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, out_channels, 3, padding=1)]
    return nn.Sequential(*layers).eval()


def _reference(net: nn.Module, volume: np.ndarray, window: tuple, strides: tuple) -> np.ndarray:
    """One window at a time, as the UA-MT lineage's test utility does."""
    image = volume if volume.ndim == 4 else volume[None]
    shape = image.shape[1:]
    pads = [((max(w - s, 0)) // 2, max(w - s, 0) - max(w - s, 0) // 2) for s, w in zip(shape, window)]
    image = np.pad(image, [(0, 0), *pads])
    padded = image.shape[1:]
    n = [math.ceil((s - w) / st) + 1 for s, w, st in zip(padded, window, strides)]
    score, count = None, np.zeros(padded, np.float32)
    for i in range(n[0]):
        xs = min(strides[0] * i, padded[0] - window[0])
        for j in range(n[1]):
            ys = min(strides[1] * j, padded[1] - window[1])
            for k in range(n[2]):
                zs = min(strides[2] * k, padded[2] - window[2])
                patch = image[:, xs : xs + window[0], ys : ys + window[1], zs : zs + window[2]]
                with torch.no_grad():
                    logits = net(torch.from_numpy(patch[None]).float())
                probs = (torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1))[0].numpy()
                if score is None:
                    score = np.zeros((probs.shape[0], *padded), np.float32)
                score[:, xs : xs + window[0], ys : ys + window[1], zs : zs + window[2]] += probs
                count[xs : xs + window[0], ys : ys + window[1], zs : zs + window[2]] += 1
    score /= count
    return score[(slice(None), *(slice(before, before + s) for (before, _), s in zip(pads, shape)))]


@pytest.mark.parametrize(
    ("shape", "window", "strides"),
    [((21, 17, 14), (8, 8, 6), (5, 5, 3)), ((20, 9, 13), (8, 12, 8), (6, 6, 4)), ((5, 7, 3), (8, 8, 6), (4, 4, 2))],
)
def test_matches_window_loop(shape: tuple, window: tuple, strides: tuple) -> None:
    volume = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    net = _net(2)
    probs = sliding_window(net, volume, window, strides)
    assert probs.shape == (2, *shape) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, _reference(net, volume, window, strides), atol=1e-6)
    np.testing.assert_allclose(sliding_window(net, volume, window, strides, batch_size=4), probs, atol=1e-5)


def test_multichannel_input() -> None:
    volume = np.random.default_rng(1).standard_normal((2, 12, 10, 9)).astype(np.float32)
    net = _net(3, in_channels=2)
    probs = sliding_window(net, torch.from_numpy(volume), (8, 8, 8), (3, 3, 3), batch_size=3)
    np.testing.assert_allclose(probs, _reference(net, volume, (8, 8, 8), (3, 3, 3)), atol=1e-6)


def test_single_channel_head_gives_background_and_foreground() -> None:
    volume = np.random.default_rng(2).standard_normal((14, 11, 9)).astype(np.float32)
    net = _net(1)
    probs = sliding_window(net, volume, (8, 8, 6), (4, 4, 3))
    p = _reference(net, volume, (8, 8, 6), (4, 4, 3))[0]
    np.testing.assert_allclose(probs[1], p, atol=1e-6)
    np.testing.assert_array_equal(probs[0], 1 - probs[1])
    np.testing.assert_array_equal(predict_mask(probs), probs[1] > 0.5)


def test_la_window_count() -> None:
    calls = []

    def counting(x: Tensor) -> Tensor:
        calls.append(x.shape[0])
        return torch.zeros(x.shape[0], 2, *x.shape[2:])

    probs = sliding_window(counting, np.zeros((183, 140, 88), np.float32), (112, 112, 80), (18, 18, 4), batch_size=9)
    assert sum(calls) == 45 and calls == [9] * 5
    assert window_starts(183, 112, 18) == [0, 18, 36, 54, 71]
    assert window_starts(88, 80, 4) == [0, 4, 8]
    np.testing.assert_array_equal(probs, 0.5)


def test_bad_predict_output() -> None:
    with pytest.raises(ValueError, match="predict returned"):
        sliding_window(lambda x: x[:, :, :-1], np.zeros((8, 8, 8), np.float32), (4, 4, 4), (4, 4, 4))


def test_predict_mask_ties_go_to_background() -> None:
    probs = np.array([[0.5, 0.4, 0.6], [0.5, 0.6, 0.4]], np.float32).reshape(2, 3, 1, 1)
    np.testing.assert_array_equal(predict_mask(probs).ravel(), [False, True, False])
