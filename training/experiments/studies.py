"""The studies: one declarative grid each. A setting is a few `Config` fields changed from the study's base.

To add a study, add a `Study` to STUDIES; the runner, the CSV, the Markdown table and the plots follow from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
ARCHITECTURES = ("cnn", "plain", "residual")
MEASURES = ("gradient_noise", "layer_gradients")
SGD_MOMENTUM = {"optimizer": "momentum", "learning_rate": 0.01, "momentum": 0.9}


@dataclass(frozen=True)
class Config:
    """Everything that defines one training run besides the data and the seed."""

    arch: str = "cnn"  # "cnn": the digit CNN of training/train_digit.py; "plain"/"residual": the depth study's CNNs
    depth: int = 20  # conv layers in the body of "plain"/"residual" (ignored by "cnn")
    dropout: float = 0.0  # rate of a Dropout before each Dense layer of "cnn"
    l2: float = 0.0  # L2 penalty on every kernel (added to the loss: l2 * sum(w**2))
    optimizer: str = "adam"  # one of OPTIMIZERS; "momentum" is SGD with Nesterov off
    learning_rate: float = 1e-3
    momentum: float = 0.0  # "momentum" only
    weight_decay: float = 0.0  # "adamw" only: decoupled weight decay per step, times the learning rate
    batch_size: int = 128
    patience: int = 0  # epochs without a better val_loss before early stopping restores the best weights; 0: off
    epochs: int = 6

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, not {self.arch!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.batch_size < 1 or self.epochs < 1 or self.patience < 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"invalid config {self}")


CONFIG_FIELDS = tuple(f.name for f in fields(Config))


@dataclass(frozen=True)
class Study:
    name: str
    question: str
    vary: str  # the column the settings are told apart by in tables and on plot axes
    settings: tuple[dict[str, Any], ...]  # each: "label" plus the Config fields it changes from `base`
    base: dict[str, Any] = field(default_factory=dict)  # Config fields every setting of this study shares
    epochs: int = 6  # default epochs; --epochs overrides it
    measure: str | None = None  # extra measurement, one of MEASURES

    def configs(self, epochs: int | None = None) -> list[tuple[str, Config]]:
        """(label, Config) per setting; checks every field name, so a typo in a grid fails before training."""
        out = []
        for setting in self.settings:
            overrides = {k: v for k, v in setting.items() if k != "label"}
            out.append((setting["label"], Config(**{**self.base, **overrides, "epochs": epochs or self.epochs})))
        return out


def sweep(name: str, values: list[Any], label: str = "{name}={value}") -> tuple[dict[str, Any], ...]:
    """One setting per value of one Config field."""
    return tuple({"label": label.format(name=name, value=v), name: v} for v in values)


STUDIES: dict[str, Study] = {
    s.name: s
    for s in [
        Study(
            name="early_stopping",
            question="Where does early stopping stop, and what does it cost or save against training to the end?",
            vary="patience",
            settings=({"label": "no early stopping", "patience": 0}, *sweep("patience", [1, 3, 5])),
            epochs=20,
        ),
        Study(
            name="dropout",
            question="Does dropout before the dense layers narrow the train-validation gap, and at what rate?",
            vary="dropout",
            settings=sweep("dropout", [0.0, 0.1, 0.25, 0.5]),
            epochs=10,
        ),
        Study(
            name="l2",
            question="How strong an L2 penalty on the kernels helps before it underfits?",
            vary="l2",
            settings=sweep("l2", [0.0, 1e-4, 1e-3, 1e-2]),
            epochs=10,
        ),
        Study(
            name="optimizer",
            question="SGD, SGD with momentum, Adam and AdamW at their usual learning rates, same epochs.",
            vary="optimizer",
            settings=(
                {"label": "SGD lr=0.01", "optimizer": "sgd", "learning_rate": 0.01},
                {"label": "SGD+momentum 0.9 lr=0.01", **SGD_MOMENTUM},
                {"label": "Adam lr=0.001", "optimizer": "adam", "learning_rate": 1e-3},
                {"label": "AdamW lr=0.001 wd=0.01", "optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 0.01},
            ),
        ),
        Study(
            name="batch_size",
            question="Accuracy per batch size at a fixed learning rate and epochs; how noisy is each size's gradient?",
            vary="batch_size",
            settings=sweep("batch_size", [16, 64, 256, 1024]),
            measure="gradient_noise",
        ),
        Study(
            name="depth",
            question="A deep plain CNN against the same depth with residual connections: do gradients reach it?",
            vary="arch",
            settings=(
                {"label": "plain 4", "arch": "plain", "depth": 4},
                {"label": "residual 4", "arch": "residual", "depth": 4},
                {"label": "plain 20", "arch": "plain", "depth": 20},
                {"label": "residual 20", "arch": "residual", "depth": 20},
                # Adam rescales each parameter's step by its gradient's size, which hides vanishing gradients;
                # SGD with momentum steps in proportion to the gradient, so it shows what they cost.
                {"label": "plain 20 SGD+momentum", "arch": "plain", "depth": 20, **SGD_MOMENTUM},
                {"label": "residual 20 SGD+momentum", "arch": "residual", "depth": 20, **SGD_MOMENTUM},
            ),
            epochs=3,
            measure="layer_gradients",
        ),
    ]
}
