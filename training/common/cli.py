"""The command line every training script starts from: its docstring, --data, --out and --version, and the common
training flags with the script's own defaults, every default shown in --help."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from training.common import artifacts

# The flags most training scripts share: name -> (type, help). A script passes the defaults of the ones it has.
COMMON_FLAGS: dict[str, tuple[type, str]] = {
    "epochs": (int, "upper bound on training epochs (early stopping may end sooner)"),
    "batch_size": (int, "examples per training step"),
    "learning_rate": (float, "the optimizer's initial learning rate"),
    "validation_split": (float, "share of the (shuffled) training data held out for validation and early stopping"),
    "patience": (int, "epochs without a lower val_loss before stopping (the best weights are restored)"),
    "augment": (bool, "random augmentation of the training examples"),
    "limit": (int, "use only the first N training examples (smoke runs); 0: all"),
    "seed": (int, "seed of the initial weights, shuffling, dropout and the validation split"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written (its example commands keep their lines), and "(default: ...)" after every flag
    that has a default its help does not already describe."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class TrainingParser(argparse.ArgumentParser):
    """An ArgumentParser that also checks the common flags' ranges after parsing (ValueError naming the flag)."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        check_common(parsed)
        return parsed


def training_parser(
    doc: str | None,
    data_help: str,
    *,
    data_required: bool = False,
    version_help: str = "default: next integer",
    **defaults: Any,
) -> argparse.ArgumentParser:
    """--data, --out and --version, then one flag per COMMON_FLAGS name in `defaults` with that default, e.g.
    training_parser(__doc__, "mnist.npz", epochs=EPOCHS, batch_size=BATCH_SIZE, seed=SEED)."""
    p = TrainingParser(description=doc, formatter_class=HelpFormatter)
    p.add_argument("--data", required=data_required, help=data_help)
    artifacts.add_output_args(p, version_help)
    for name, default in defaults.items():
        kind, help_text = COMMON_FLAGS[name]
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            p.add_argument(flag, type=kind, default=default, help=help_text)
    return p


def check_common(args: argparse.Namespace) -> None:
    """The ranges of the common flags a parser has (None: the script's default applies)."""
    given = {k: v for k, v in vars(args).items() if k in COMMON_FLAGS and v is not None}
    for name in ("epochs", "batch_size"):
        if name in given and given[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("patience", "limit"):
        if name in given and given[name] < 0:
            raise ValueError(f"--{name} must be at least 0")
    if "learning_rate" in given and not given["learning_rate"] > 0:
        raise ValueError("--learning-rate must be positive")
    if "validation_split" in given and not 0 < given["validation_split"] < 1:
        raise ValueError("--validation-split must be between 0 and 1")
