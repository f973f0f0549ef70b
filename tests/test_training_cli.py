"""The command line the training scripts share (training/common/cli.py): defaults in --help, common checks."""

from __future__ import annotations

import re

import pytest

from training import train_digit, train_fashion, train_lstm_sentiment, train_transfer

SCRIPTS = [train_digit, train_fashion, train_lstm_sentiment, train_transfer]
REQUIRED = {train_transfer: ["--data", "images"]}


def flag_help(help_text: str, flag: str) -> str:
    """The help of one flag: from its name to the next flag's line."""
    match = re.search(rf"^  {flag}\b(.*?)(?=^  -|\Z)", help_text, re.M | re.S)
    assert match, flag
    return " ".join(match.group(1).split())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_help_shows_the_scripts_own_defaults(script, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage:") and script.__doc__.splitlines()[0] in text
    for flag, default in {"--epochs": script.EPOCHS, "--batch-size": script.BATCH_SIZE, "--seed": script.SEED}.items():
        assert flag_help(text, flag).endswith(f"(default: {default})"), flag
    assert flag_help(text, "--learning-rate").endswith(f"(default: {script.LEARNING_RATE})")
    assert flag_help(text, "--out").endswith("(default: models)")
    assert "(default: None)" not in text and "(default: False)" not in text  # no default to show: none shown


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_parsed_defaults_are_the_constants_at_the_top_of_the_script(script) -> None:
    args = script.parse_args(REQUIRED.get(script, []))
    assert (args.epochs, args.batch_size, args.learning_rate) == (
        script.EPOCHS,
        script.BATCH_SIZE,
        script.LEARNING_RATE,
    )
    assert (args.validation_split, args.patience, args.seed) == (script.VALIDATION_SPLIT, script.PATIENCE, script.SEED)
    assert (args.out.name, args.version) == ("models", None)


def test_script_flags_show_their_defaults_too(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        train_transfer.parse_args(["--help"])
    text = capsys.readouterr().out
    assert flag_help(text, "--image-size").endswith(f"(default: {train_transfer.IMAGE_SIZE})")
    assert flag_help(text, "--data").startswith("DATA image folder")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--validation-split", "1"], "--validation-split must be between 0 and 1"),
        (["--validation-split", "0"], "--validation-split must be between 0 and 1"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--patience", "-1"], "--patience must be at least 0"),
        (["--limit", "-5"], "--limit must be at least 0"),
        (["--learning-rate", "0"], "--learning-rate must be positive"),
    ],
)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_common_flags_out_of_range_are_value_errors(script, argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        script.parse_args([*REQUIRED.get(script, []), *argv])


def test_transfer_requires_its_data_folder(capsys) -> None:
    with pytest.raises(SystemExit):
        train_transfer.parse_args([])
    assert "--data" in capsys.readouterr().err
