"""Faithfulness of explanations: hiding what an explanation points at must hurt the prediction more than hiding
as much at random (deletion, as in Petsiuk et al. 2018's RISE evaluation, at one fraction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.config import Settings
from app.core.registry import ModelRegistry
from app.families.explain_images import ImageExplainer
from app.families.images import ImageRuntime


def loaded(models_dir: Path, name: str) -> ImageRuntime:
    """The served runtime of `name` in models_dir, loaded as the service loads it."""
    registry = ModelRegistry(Settings(models_dir=models_dir, models=[name]))
    registry.load_all()
    runtime = registry.runtime(name)
    assert isinstance(runtime, ImageRuntime)
    return runtime


def ink(x: np.ndarray) -> np.ndarray:
    """(n, rows, columns) masks of the ink: the pixels above half the brightest of their (preprocessed) image."""
    image = x[..., 0]
    return image > 0.5 * image.max(axis=(1, 2), keepdims=True)


def hide_pixels(
    explainer: ImageExplainer, x: np.ndarray, fraction: float = 0.2, seed: int = 0, among_ink: bool = False
) -> tuple[float, float, np.ndarray]:
    """Mean probability of each input's predicted class after setting the `fraction` most-attributed pixels to 0,
    and after setting as many random pixels to 0; and the maps (n, rows, columns). With `among_ink`, both are
    chosen among the ink pixels only (does the map rank the strokes, beyond pointing at them?)."""
    probabilities, targets, maps = explainer.heatmaps(x, [None] * len(x))
    rng = np.random.default_rng(seed)
    pixels = x.shape[1] * x.shape[2]
    masks = ink(x).reshape(len(x), pixels) if among_ink else np.ones((len(x), pixels), bool)
    top, random = x.copy(), x.copy()
    for i, heat in enumerate(maps):
        candidates = np.flatnonzero(masks[i])
        k = int(fraction * len(candidates))
        top[i].reshape(pixels, -1)[candidates[np.argsort(-heat.ravel()[candidates], kind="stable")[:k]]] = 0
        random[i].reshape(pixels, -1)[rng.choice(candidates, k, replace=False)] = 0
    rows = np.arange(len(x))
    after_top = explainer.heatmaps(top, targets)[0][rows, targets]
    after_random = explainer.heatmaps(random, targets)[0][rows, targets]
    return float(after_top.mean()), float(after_random.mean()), maps


def mass_near_ink(maps: np.ndarray, x: np.ndarray, reach: int) -> tuple[float, float]:
    """(mean share of each map's mass within `reach` pixels of the ink (`ink`), mean share of the image that region
    covers)."""
    shares, areas = [], []
    for heat, near in zip(maps, ink(x), strict=True):
        for _ in range(reach):  # grow by one pixel, 8-connected
            padded = np.pad(near, 1)
            near = np.any([padded[1 + dy : 1 + dy + near.shape[0], 1 + dx : 1 + dx + near.shape[1]]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)  # fmt: skip
        shares.append(float(heat[near].sum() / max(float(heat.sum()), 1e-9)))
        areas.append(float(near.mean()))
    return float(np.mean(shares)), float(np.mean(areas))
