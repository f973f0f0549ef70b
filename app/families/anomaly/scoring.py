"""Anomaly scores from an autoencoder's window reconstructions: pure numpy, shared by training and serving.

The pipeline for one series (any length >= window):

    x = normalise(values, mean, std)                  # the stored training mean/std
    windows, starts = sliding_windows(x, window, stride)
    recon = model(windows[..., None])[..., 0]         # ONNX session or Keras, float32 [n, window, 1]
    scores = point_scores(x, recon, starts, smoothing)
    flags = scores > threshold
    regions = alarm_regions(flags)

`score_series` does all of it given a `reconstruct` callable and the artifact's config.json. No TensorFlow here:
the serving image has numpy and onnxruntime only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Reconstruct = Callable[[np.ndarray], np.ndarray]
# Windows per model call when scoring. A call needs ~70 KB per window (the committed model's activations, kept
# in ONNX Runtime's arena for each call that runs concurrently), so 16 keeps a request's working memory near
# 1 MB however long its series (512 at once: +36 MB a request); 20,000 points score as fast (2-4 s here).
SCORE_BATCH = 16


def normalise(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(values - mean) / std as float32, with the training statistics so every series is scaled alike."""
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    return ((np.asarray(values, dtype=np.float64) - mean) / std).astype(np.float32)


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start indices every `stride` points, plus a last window ending at the last point when the stride misses it.

    The extra window is what makes every point covered when (length - window) is not a multiple of stride.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
    if length < window:
        raise ValueError(f"the series has {length} points, fewer than the window of {window}")
    starts = np.arange(0, length - window + 1, stride)
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


def sliding_windows(x: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(windows [n, window], starts [n]) of a 1-d series; see window_starts for the coverage guarantee."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-d series, got shape {x.shape}")
    starts = window_starts(len(x), window, stride)
    return x[starts[:, None] + np.arange(window)], starts


def smooth(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over `width` points (1 or 0: unchanged); the ends average over the points they have."""
    scores = np.asarray(scores, dtype=np.float64)
    if width <= 1:
        return scores
    kernel = np.ones(int(width))
    # Dividing by the convolved count of real points keeps the ends unbiased instead of padding them with zeros.
    total = np.convolve(scores, kernel, mode="same")
    count = np.convolve(np.ones_like(scores), kernel, mode="same")
    return total / count


def accumulate_errors(
    total: np.ndarray, count: np.ndarray, x: np.ndarray, reconstructions: np.ndarray, starts: np.ndarray
) -> None:
    """Add each window's squared reconstruction errors into `total` and 1 per covered point into `count`."""
    recon = np.asarray(reconstructions, dtype=np.float64)
    if recon.ndim == 3:
        recon = recon[..., 0]
    n, window = recon.shape
    if len(starts) != n:
        raise ValueError(f"{n} reconstructions for {len(starts)} windows")
    index = np.asarray(starts)[:, None] + np.arange(window)
    np.add.at(total, index, (recon - x[index]) ** 2)
    np.add.at(count, index, 1.0)


def point_scores(x: np.ndarray, reconstructions: np.ndarray, starts: np.ndarray, smoothing: int = 1) -> np.ndarray:
    """Per-point score: squared reconstruction error averaged over every window covering the point, then smoothed.

    `x` is the normalised series, `reconstructions` [n, window] or [n, window, 1] the model's output for the
    windows starting at `starts`. Returns float64 [len(x)].
    """
    x = np.asarray(x, dtype=np.float64)
    total, count = np.zeros(len(x)), np.zeros(len(x))
    accumulate_errors(total, count, x, reconstructions, starts)
    return _finish(total, count, smoothing)


def _finish(total: np.ndarray, count: np.ndarray, smoothing: int) -> np.ndarray:
    if (count == 0).any():
        raise ValueError("some points are not covered by any window")
    return smooth(total / count, smoothing)


def alarm_regions(flags: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as (first, last) indices, both inclusive."""
    flags = np.asarray(flags, dtype=bool)
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    firsts = np.flatnonzero(edges == 1)
    lasts = np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(firsts, lasts, strict=True)]


def reconstruct_windows(windows: np.ndarray, reconstruct: Reconstruct, batch_size: int = 512) -> np.ndarray:
    """Run `reconstruct` on float32 [batch, window, 1] slices and return [n, window] reconstructions."""
    inputs = np.asarray(windows, dtype=np.float32)[..., None]
    out = [np.asarray(reconstruct(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out).reshape(len(inputs), -1)


def score_series(
    values: np.ndarray, reconstruct: Reconstruct, config: Mapping[str, Any], batch_size: int = SCORE_BATCH
) -> dict[str, Any]:
    """Everything a server returns for one raw series, given the artifact's config.json.

    `reconstruct` maps float32 [batch, window, 1] normalised windows to the model's reconstruction, e.g.
    `lambda w: session.run(None, {session.get_inputs()[0].name: w})[0]`. Uses config keys
    window, stride, mean, std, smoothing and threshold. The windows are made, reconstructed and scored
    `batch_size` at a time, so memory does not grow with windows x window (the same sums, in the same order, as
    point_scores over all of them at once).
    """
    x = normalise(values, config["mean"], config["std"])
    window = int(config["window"])
    starts = window_starts(len(x), window, int(config["stride"]))
    x64 = x.astype(np.float64)
    total, count = np.zeros(len(x)), np.zeros(len(x))
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        windows = x[chunk[:, None] + np.arange(window)][..., None]
        recon = np.asarray(reconstruct(windows)).reshape(len(chunk), window)
        accumulate_errors(total, count, x64, recon, chunk)
    scores = _finish(total, count, int(config.get("smoothing", 1)))
    flags = scores > float(config["threshold"])
    return {"scores": scores, "flags": flags, "regions": alarm_regions(flags), "threshold": float(config["threshold"])}
