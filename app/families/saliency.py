"""Saliency maps in numpy, from layers run forward and backward exactly: gradient x input over the whole network,
or Grad-CAM at one layer from that layer's activations (which the artifact's explain.onnx returns).

Gradient x input (Shrikumar et al. 2016): each input pixel's value times the gradient of the class's score (its
logit, before the softmax) with respect to it, summed over channels, positive part: what the pixel as drawn adds
to the class's score, to first order. Grad-CAM (Selvaraju et al. 2017): weigh each channel k of a layer's
activations A by the mean gradient of the class's score with respect to A_k, sum, keep the positive part.
The head holds only layers whose gradient is exact and cheap here: stride-1 convolutions, max pooling (the
gradient goes to each window's first maximum, as TensorFlow's does), per-channel affine (folded batch norm),
ReLU, flatten, global average pooling and dense layers. `training/common/explain_export.py` writes it from the
Keras model, `training/common/explain_from_onnx.py` from model.onnx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _pad(a: np.ndarray, kernel: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """`same` padding as TensorFlow places it (the extra row and column after)."""
    top, left = (kernel[0] - 1) // 2, (kernel[1] - 1) // 2
    return np.pad(a, ((top, kernel[0] - 1 - top), (left, kernel[1] - 1 - left), (0, 0))), (top, left)


@dataclass
class Layer:
    kind: str
    params: dict
    weights: dict[str, np.ndarray]

    def forward(self, a: np.ndarray, saved: dict) -> np.ndarray:
        """This layer's output; what `backward` needs goes into `saved` (a Head is shared by threads)."""
        saved["input"] = a
        if self.kind == "conv":
            kernel = self.weights["kernel"]
            padded = _pad(a, kernel.shape[:2])[0] if self.params["padding"] == "same" else a
            rows, cols = padded.shape[0] - kernel.shape[0] + 1, padded.shape[1] - kernel.shape[1] + 1
            z = np.zeros((rows, cols, kernel.shape[3]), a.dtype) + self.weights.get("bias", 0.0)
            for i in range(kernel.shape[0]):
                for j in range(kernel.shape[1]):
                    z += padded[i : i + rows, j : j + cols] @ kernel[i, j]
            return self._activate(z, saved)
        if self.kind == "maxpool":
            windows = self._windows(a)
            saved["argmax"] = windows.argmax(axis=2)
            return windows.max(axis=2)
        if self.kind == "affine":
            return a * self.weights["scale"] + self.weights["offset"]
        if self.kind == "relu":
            return np.maximum(a, 0)
        if self.kind == "flatten":
            return a.reshape(-1)
        if self.kind == "gap":
            return a.mean(axis=(0, 1))
        if self.kind == "dense":
            return self._activate(a @ self.weights["kernel"] + self.weights["bias"], saved)
        raise ValueError(f"unknown head layer {self.kind!r}")

    def _activate(self, z: np.ndarray, saved: dict) -> np.ndarray:
        saved["z"] = z
        activation = self.params.get("activation", "linear")
        return np.maximum(z, 0) if activation == "relu" else z  # softmax: the logits, Head applies it

    def _windows(self, a: np.ndarray) -> np.ndarray:
        (ph, pw), c = self.params["size"], a.shape[2]
        rows, cols = a.shape[0] // ph, a.shape[1] // pw
        cut = a[: rows * ph, : cols * pw].reshape(rows, ph, cols, pw, c)
        return cut.transpose(0, 2, 1, 3, 4).reshape(rows, cols, ph * pw, c)

    def backward(self, g: np.ndarray, saved: dict) -> np.ndarray:
        """The gradient with respect to this layer's input, given the one with respect to its output."""
        a = saved["input"]
        if self.kind in ("conv", "dense") and self.params.get("activation") == "relu":
            g = g * (saved["z"] > 0)
        if self.kind == "conv":
            kernel = self.weights["kernel"]
            same = self.params["padding"] == "same"
            padded, (top, left) = _pad(a, kernel.shape[:2]) if same else (a, (0, 0))
            rows, cols = g.shape[:2]
            out = np.zeros(padded.shape, g.dtype)
            for i in range(kernel.shape[0]):
                for j in range(kernel.shape[1]):
                    out[i : i + rows, j : j + cols] += g @ kernel[i, j].T
            return out[top : top + a.shape[0], left : left + a.shape[1]]
        if self.kind == "maxpool":
            (ph, pw), (rows, cols, c) = self.params["size"], g.shape
            picked = (np.arange(ph * pw)[None, None, :, None] == saved["argmax"][:, :, None, :]) * g[:, :, None, :]
            out = np.zeros(a.shape, g.dtype)
            out[: rows * ph, : cols * pw] = (
                picked.reshape(rows, cols, ph, pw, c).transpose(0, 2, 1, 3, 4).reshape(rows * ph, cols * pw, c)
            )
            return out
        if self.kind == "affine":
            return g * self.weights["scale"]
        if self.kind == "relu":
            return g * (a > 0)
        if self.kind == "flatten":
            return g.reshape(a.shape)
        if self.kind == "gap":
            return np.broadcast_to(g / (a.shape[0] * a.shape[1]), a.shape).astype(g.dtype)
        return g @ self.weights["kernel"].T  # dense


GRADIENT_X_INPUT, GRAD_CAM = "gradient-x-input", "grad-cam"


class Head:
    """The layers after the layer the map is taken at (the input for gradient x input), the method, and where
    that layer's cells sit on the model's input."""

    def __init__(
        self, layers: list[Layer], scale: list[float], offset: list[float], layer: str = "", method: str = GRAD_CAM
    ) -> None:
        if method not in (GRADIENT_X_INPUT, GRAD_CAM):
            raise ValueError(f"unknown saliency method {method!r}")
        self.layers, self.scale, self.offset = layers, scale, offset
        self.layer = layer  # the layer's name in the Keras model ("input" for gradient x input)
        self.method = method

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["spec"]))
            arrays = {key: data[key] for key in data.files if key != "spec"}
        layers = [
            Layer(p["kind"], p, {k.split("/")[1]: v for k, v in arrays.items() if k.split("/")[0] == str(n)})
            for n, p in enumerate(meta["layers"])
        ]
        return cls(layers, meta["scale"], meta["offset"], meta.get("layer", ""), meta.get("method", GRAD_CAM))

    def forward(self, activations: np.ndarray, saved: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probabilities) of one example from its activations (rows, columns, channels); `saved` gets
        one dict per layer for the backward pass."""
        x = activations  # float32 from the model; float64 stays float64 (a finite-difference check)
        for layer in self.layers:
            state: dict = {}
            x = layer.forward(x, state)
            if saved is not None:
                saved.append(state)
        e = np.exp(x - x.max())
        return x, e / e.sum()

    def gradient(self, activations: np.ndarray, target: int) -> np.ndarray:
        """The gradient of class `target`'s logit with respect to the activations (the head's input)."""
        saved: list[dict] = []
        logits, _ = self.forward(activations, saved)
        g = np.zeros_like(logits)
        g[target] = 1.0
        for layer, state in zip(reversed(self.layers), reversed(saved), strict=True):
            g = layer.backward(g, state)
        return g

    def saliency(self, activations: np.ndarray, target: int) -> np.ndarray:
        """The map (rows, columns of the activations), >= 0, for class `target`, by the head's method."""
        g = self.gradient(activations, target)
        if self.method == GRAD_CAM:
            g = g.mean(axis=(0, 1))  # one weight per channel
        return np.maximum((activations * g).sum(axis=-1), 0.0).astype(np.float32)

    def on_input(self, cam: np.ndarray, height: int, width: int) -> np.ndarray:
        """The map over the model's input (height x width), bilinear between the cells' centres."""
        rows = interpolation(np.arange(height), cam.shape[0], self.scale[0], self.offset[0])
        cols = interpolation(np.arange(width), cam.shape[1], self.scale[1], self.offset[1])
        return (rows @ cam @ cols.T).astype(np.float32)


def interpolation(positions: np.ndarray, cells: int, scale: float, offset: float) -> np.ndarray:
    """(len(positions), cells) weights of linear interpolation at pixel `positions` between cells centred at
    scale * i + offset (constant beyond the first and last centre)."""
    where = (np.asarray(positions, dtype=np.float64) - offset) / scale
    return np.stack([np.interp(where, np.arange(cells), np.eye(cells)[i]) for i in range(cells)], axis=1)
