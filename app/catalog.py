"""The model families DeepServe knows, with how to install each: shown when one is not installed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    task: str
    endpoint: str
    install: str


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "digit",
            "image-classification/digit",
            "POST /predict/digit",
            "python -m training.train_digit  (or --data path/to/mnist.npz)",
        ),
    ]
}
