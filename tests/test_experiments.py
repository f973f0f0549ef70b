"""training/experiments: each kind of study runs end to end on tiny grids of real handwritten digits (scikit-learn's,
upscaled to 28x28) and writes its CSV, Markdown and PNG report."""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from training.experiments import models, report, runner, tracking
from training.experiments.studies import CONFIG_FIELDS, STUDIES, Config, Study

TINY = ["--train-limit", "300", "--val-limit", "100", "--test-limit", "200", "--epochs", "1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def run(monkeypatch: pytest.MonkeyPatch, study: Study, data: Path, out: Path, *extra: str) -> Path:
    """Run `study` through the command line in place of the grid of the same name."""
    monkeypatch.setitem(STUDIES, study.name, study)
    [folder] = runner.main([study.name, "--data", str(data), "--out", str(out), *TINY, *extra])
    return folder


def assert_report(folder: Path, study: Study, seeds: int = 1) -> list[dict[str, str]]:
    rows = read_csv(folder / "results.csv")
    labels = [s["label"] for s in study.settings]
    assert [r["setting"] for r in rows] == [label for label in labels for _ in range(seeds)]
    for column in (*CONFIG_FIELDS, "seed", "epochs_run", "train_accuracy", "val_accuracy", "test_accuracy", "seconds"):
        assert column in rows[0], column
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in rows)
    history = read_csv(folder / "history.csv")
    assert {"epoch", "loss", "val_loss", "accuracy", "val_accuracy"} <= set(history[0])
    assert len(history) == sum(int(r["epochs_run"]) for r in rows)
    readme = (folder / "README.md").read_text()
    assert f"python -m training.experiments {study.name} --data" in readme
    assert "300 training and 100 validation images" in readme and "200 test images" in readme
    table = [line for line in readme.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| setting | epochs run |") and len(table) == 1 + len(labels)
    assert [line.split(" | ")[0][2:] for line in table[1:]] == labels
    for png in ("curves.png", "accuracy.png"):
        assert (folder / png).read_bytes()[:8] == PNG_MAGIC
        assert f"]({png})" in readme
    assert "## Reading" in readme
    return rows


@pytest.mark.slow
def test_a_sweep_writes_one_row_per_setting_and_seed_and_a_table_with_the_spread(
    monkeypatch, tmp_path, small_mnist_npz
):
    study = replace(STUDIES["dropout"], settings=STUDIES["dropout"].settings[::3])  # 0.0 and 0.5
    folder = run(monkeypatch, study, small_mnist_npz, tmp_path, "--seeds", "0", "1")
    rows = assert_report(folder, study, seeds=2)
    assert [float(r["dropout"]) for r in rows] == [0.0, 0.0, 0.5, 0.5]
    assert [r["seed"] for r in rows] == ["0", "1", "0", "1"]
    assert " ± " in (folder / "README.md").read_text()
    summary = read_csv(folder / "summary.csv")
    assert [(r["setting"], r["seeds"]) for r in summary] == [("dropout=0.0", "2"), ("dropout=0.5", "2")]
    for setting, pair in zip(summary, (rows[:2], rows[2:]), strict=True):
        accuracies = [float(r["test_accuracy"]) for r in pair]
        assert float(setting["test_accuracy_mean"]) == pytest.approx(sum(accuracies) / 2)
        assert float(setting["test_accuracy_sd"]) == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2**0.5)


@pytest.mark.slow
def test_early_stopping_stops_and_restores_the_best_epoch(monkeypatch, tmp_path, small_mnist_npz):
    study = replace(STUDIES["early_stopping"], settings=STUDIES["early_stopping"].settings[:2], epochs=8)
    folder = run(monkeypatch, study, small_mnist_npz, tmp_path, "--epochs", "8")
    no_stop, patience_1 = assert_report(folder, study)
    assert no_stop["epochs_run"] == "8"
    assert int(patience_1["epochs_run"]) <= 8
    assert int(patience_1["best_epoch"]) >= int(patience_1["epochs_run"]) - 1  # patience 1: stops one epoch after


@pytest.mark.slow
def test_batch_size_study_measures_gradient_noise_falling_with_batch_size(monkeypatch, tmp_path, small_mnist_npz):
    study = replace(
        STUDIES["batch_size"], settings=({"label": "B=4", "batch_size": 4}, {"label": "B=128", "batch_size": 128})
    )
    folder = run(monkeypatch, study, small_mnist_npz, tmp_path)
    small, large = assert_report(folder, study)
    for row in (small, large):
        for when in ("init", "end"):
            assert float(row[f"grad_var_{when}"]) > 0 and float(row[f"noise_scale_{when}"]) > 0
    # Same seed, same initial weights: a 32x larger batch has a much less noisy gradient (1/B in expectation).
    assert float(small["grad_var_init"]) > 4 * float(large["grad_var_init"])
    assert (folder / "gradient_noise.png").read_bytes()[:8] == PNG_MAGIC
    assert "noise scale B_simple" in (folder / "README.md").read_text()


@pytest.mark.slow
def test_depth_study_records_one_gradient_norm_per_layer(monkeypatch, tmp_path, small_mnist_npz):
    settings = (
        {"label": "plain 2", "arch": "plain", "depth": 2},
        {"label": "residual 6", "arch": "residual", "depth": 6},
    )
    study = replace(STUDIES["depth"], settings=settings)
    folder = run(monkeypatch, study, small_mnist_npz, tmp_path)
    assert_report(folder, study)
    norms = read_csv(folder / "layer_gradients.csv")
    for label, layers in (
        ("plain 2", ["stem", "conv01", "conv02"]),
        ("residual 6", ["stem"] + [f"conv0{i}" for i in range(1, 7)]),
    ):
        for when in ("init", "end"):
            mine = [r for r in norms if r["setting"] == label and r["when"] == when]
            assert [r["layer"] for r in mine] == [*layers, "probabilities"]
            assert all(float(r["grad_norm"]) > 0 for r in mine)
    assert (folder / "layer_gradients.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_a_rerun_keeps_the_reading_written_by_hand(monkeypatch, tmp_path, small_mnist_npz):
    study = replace(STUDIES["l2"], settings=STUDIES["l2"].settings[:1])
    folder = run(monkeypatch, study, small_mnist_npz, tmp_path)
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("Not written yet", "L2 did nothing here.\n\n## Later\n\nmore"))
    run(monkeypatch, study, small_mnist_npz, tmp_path)
    text = readme.read_text()
    assert "L2 did nothing here." in text and "Not written yet" not in text and "## Later" not in text


def seeded_run(setting: str, patience: int, seed: int, test_accuracy: float, val_losses: list[float]) -> dict:
    """A run as runner.run_setting returns it, with the given test accuracy and validation loss per epoch."""
    history = [
        {"setting": setting, "seed": seed, "epoch": i + 1, "loss": v / 2, "accuracy": 0.9, "val_loss": v,
         "val_accuracy": 0.9}
        for i, v in enumerate(val_losses)
    ]  # fmt: skip
    row = {"study": "early_stopping", "setting": setting, "seed": seed, **asdict(Config(patience=patience))}
    row |= {"epochs_run": len(val_losses), "best_epoch": val_losses.index(min(val_losses)) + 1, "seconds": 10 + seed}
    row |= {"train_accuracy": 0.99, "val_accuracy": 0.98, "test_accuracy": test_accuracy, "test_loss": 0.05}
    return {"row": row, "history": history, "layer_gradients": []}


def test_a_multi_seed_report_gives_each_setting_its_mean_and_sample_sd_over_the_seeds(tmp_path):
    study = replace(STUDIES["early_stopping"], settings=STUDIES["early_stopping"].settings[:2])
    runs = [
        seeded_run("no early stopping", 0, 0, 0.97, [0.3, 0.2, 0.25, 0.3]),
        seeded_run("no early stopping", 0, 1, 0.98, [0.3, 0.2, 0.25, 0.3]),
        seeded_run("no early stopping", 0, 2, 0.99, [0.3, 0.2, 0.25, 0.3]),
        seeded_run("patience=1", 1, 0, 0.95, [0.3, 0.2, 0.25]),  # seeds stopping at different epochs
        seeded_run("patience=1", 1, 1, 0.96, [0.3, 0.35]),
        seeded_run("patience=1", 1, 2, 0.98, [0.3, 0.2, 0.1, 0.15]),
    ]
    report.write(
        study, runs, tmp_path, command="python -m training.experiments", data="tiny", seeds=[0, 1, 2], seconds=1
    )
    summary = read_csv(tmp_path / "summary.csv")
    assert [(r["setting"], r["seeds"]) for r in summary] == [("no early stopping", "3"), ("patience=1", "3")]
    assert float(summary[0]["test_accuracy_mean"]) == pytest.approx(0.98)
    assert float(summary[0]["test_accuracy_sd"]) == pytest.approx(0.01)  # sample sd (n - 1), not 0.0082
    assert float(summary[1]["test_accuracy_mean"]) == pytest.approx(0.9633333, abs=1e-6)
    assert float(summary[1]["test_accuracy_sd"]) == pytest.approx(0.0152753, abs=1e-6)
    assert float(summary[1]["epochs_run_mean"]) == pytest.approx(3) and float(summary[1]["seconds_sd"]) == 1
    readme = (tmp_path / "README.md").read_text()
    assert (
        "| no early stopping | 4 ± 0 | 2 ± 0 | 99.00% ± 0.00 | 98.00% ± 0.00 | 98.00% ± 1.00 | 0.050 ± 0.000 |"
        in readme
    )
    assert "| patience=1 | 3 ± 1 | 2 ± 1 |" in readme and "96.33% ± 1.53" in readme
    assert "Seeds: 0, 1, 2 (mean ± sample standard deviation" in readme
    for png in ("curves.png", "accuracy.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC


def test_a_one_seed_report_shows_no_spread(tmp_path):
    study = replace(STUDIES["early_stopping"], settings=STUDIES["early_stopping"].settings[:1])
    runs = [seeded_run("no early stopping", 0, 0, 0.97, [0.3, 0.2])]
    report.write(study, runs, tmp_path, command="python -m training.experiments", data="tiny", seeds=[0], seconds=1)
    [summary] = read_csv(tmp_path / "summary.csv")
    assert (summary["seeds"], float(summary["test_accuracy_sd"])) == ("1", 0.0)
    assert (
        "| no early stopping | 2 | 2 | 99.00% | 98.00% | 97.00% | 0.050 | 10 |" in (tmp_path / "README.md").read_text()
    )


def test_every_grid_builds_valid_configs():
    for study in STUDIES.values():
        configs = study.configs()
        assert len(configs) == len(study.settings) >= 2
        assert all(config.epochs == study.epochs for _, config in configs)
    with pytest.raises(TypeError):
        Study("typo", "?", "dropout", ({"label": "x", "drop_out": 0.5},)).configs()
    with pytest.raises(ValueError, match="optimizer"):
        Config(optimizer="rmsprop")


def test_the_study_cnn_is_the_digit_cnn_and_residual_adds_no_parameters():
    from training.train_digit import build_model

    assert models.build(Config()).count_params() == build_model().count_params() == 93_322
    assert models.build(Config(dropout=0.5, l2=1e-3)).count_params() == 93_322
    plain, residual = models.build(Config(arch="plain", depth=6)), models.build(Config(arch="residual", depth=6))
    assert plain.count_params() == residual.count_params()
    assert len(models.weight_layers(plain)) == len(models.weight_layers(residual)) == 6 + 2
    with pytest.raises(ValueError, match="even"):
        models.build(Config(arch="residual", depth=5))


def test_mlflow_flag_without_mlflow_fails_at_once_saying_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(SystemExit, match="pip install mlflow-skinny"):
        runner.main(["dropout", "--mlflow", "--data", str(tmp_path / "never-read.npz")])


def test_mlflow_flag_logs_every_run_to_a_local_file_store(monkeypatch, tmp_path, small_mnist_npz):
    mlflow = pytest.importorskip("mlflow", reason="optional: pip install -e '.[tracking]'")
    study = replace(STUDIES["optimizer"], settings=STUDIES["optimizer"].settings[:2])
    uri = (tmp_path / "mlruns").as_uri()
    run(monkeypatch, study, small_mnist_npz, tmp_path / "out", "--mlflow", "--mlflow-uri", uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("deepserve-optimizer")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(
        ["SGD lr=0.01 seed 0", "SGD+momentum 0.9 lr=0.01 seed 0", "report"]
    )
    trained = next(r for r in runs if r.info.run_name == "SGD lr=0.01 seed 0")
    assert trained.data.params["optimizer"] == "sgd" and "final_test_accuracy" in trained.data.metrics
    assert len(client.get_metric_history(trained.info.run_id, "val_loss")) == 1
    assert tracking.INSTALL_HINT.startswith("--mlflow needs MLflow")
