"""A study's report: results.csv, summary.csv (mean ± sd per setting), history.csv, README.md (table, command,
reading) and PNG plots with error bars over the seeds."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.experiments.studies import Study  # noqa: E402

DPI = 90
READING = "## Reading"
SPREAD = "mean ± sample standard deviation over the seeds; accuracy spreads in points"
ONE_SEED = "one seed: differences of a few tenths of a point are within seed noise"
READING_TODO = f"{READING}\n\nNot written yet: look at the numbers and plots above, then say here what they show.\n"

# Markdown table columns: (header, results.csv column, format); measurement columns only where measured.
COLUMNS = [
    ("epochs run", "epochs_run", "{:.0f}"),
    ("best val_loss epoch", "best_epoch", "{:.0f}"),
    ("train acc", "train_accuracy", "{:.2%}"),
    ("val acc", "val_accuracy", "{:.2%}"),
    ("test acc", "test_accuracy", "{:.2%}"),
    ("test loss", "test_loss", "{:.3f}"),
    ("seconds", "seconds", "{:.0f}"),
]
MEASURE_COLUMNS = {
    "gradient_noise": [
        ("grad variance at init", "grad_var_init", "{:.3g}"),
        ("B x variance at init", "trace_sigma_init", "{:.3g}"),
        ("grad variance at end", "grad_var_end", "{:.3g}"),
        ("noise scale B_simple at end", "noise_scale_end", "{:.3g}"),
    ],
    "layer_gradients": [
        ("first layer grad norm, init", "first_grad_init", "{:.2g}"),
        ("last layer grad norm, init", "last_grad_init", "{:.2g}"),
        ("first layer grad norm, end", "first_grad_end", "{:.2g}"),
        ("last layer grad norm, end", "last_grad_end", "{:.2g}"),
    ],
}


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def add_derived(study: Study, runs: list[dict]) -> None:
    """Columns computed from the measurements: tr(Sigma) = B x variance; first/last layer gradient norms."""
    for run in runs:
        row = run["row"]
        if study.measure == "gradient_noise":
            row["trace_sigma_init"] = row["batch_size"] * row["grad_var_init"]
        if study.measure == "layer_gradients":
            for when in ("init", "end"):
                norms = [e["grad_norm"] for e in run["layer_gradients"] if e["when"] == when]
                row[f"first_grad_{when}"], row[f"last_grad_{when}"] = norms[0], norms[-1]


def columns(study: Study) -> list[tuple[str, str, str]]:
    return COLUMNS + MEASURE_COLUMNS.get(study.measure or "", [])


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(study: Study, rows: list[dict]) -> list[dict]:
    """One row per setting, in grid order: its number of seeds, then <column>_mean and <column>_sd over the seeds
    for every column of the Markdown table (summary.csv holds exactly these rows)."""
    out = []
    for label in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == label]
        summary: dict = {"setting": label, "seeds": len(mine)}
        for _, key, _ in columns(study):
            summary[f"{key}_mean"], summary[f"{key}_sd"] = mean_sd([float(r[key]) for r in mine])
        out.append(summary)
    return out


def cell(summary: dict, key: str, fmt: str) -> str:
    text = fmt.format(summary[f"{key}_mean"])
    if summary["seeds"] > 1:
        sd = summary[f"{key}_sd"]
        text += " ± " + (f"{100 * sd:.2f}" if "%" in fmt else fmt.format(sd))
    return text


def table(study: Study, summaries: list[dict]) -> str:
    cols = columns(study)
    lines = ["| setting | " + " | ".join(h for h, _, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for summary in summaries:
        lines.append(f"| {summary['setting']} | " + " | ".join(cell(summary, k, fmt) for _, k, fmt in cols) + " |")
    return "\n".join(lines)


def previous_reading(readme: Path) -> str:
    """The '## Reading' section of an existing README (written by a person): kept when the report is regenerated."""
    if not readme.exists():
        return READING_TODO
    text = readme.read_text()
    start = text.find(f"\n{READING}\n")
    if start < 0:
        return READING_TODO
    end = text.find("\n## ", start + len(READING) + 2)
    return text[start + 1 : end + 1 if end >= 0 else None].rstrip() + "\n"


def write(
    study: Study, runs: list[dict], out: Path, *, command: str, data: str, seeds: list[int], seconds: float
) -> None:
    add_derived(study, runs)
    rows = [run["row"] for run in runs]
    summaries = summarize(study, rows)
    write_csv(out / "results.csv", rows)
    write_csv(out / "summary.csv", summaries)
    write_csv(out / "history.csv", [e for run in runs for e in run["history"]])
    plots = {"curves.png": "loss and accuracy per epoch", "accuracy.png": "final accuracy per setting"}
    curves_plot(runs, out / "curves.png")
    accuracy_plot(study, rows, out / "accuracy.png")
    if study.measure == "gradient_noise":
        gradient_noise_plot(rows, out / "gradient_noise.png")
        plots["gradient_noise.png"] = "minibatch gradient variance and noise scale per batch size"
    if study.measure == "layer_gradients":
        write_csv(out / "layer_gradients.csv", [e for run in runs for e in run["layer_gradients"]])
        layer_gradients_plot(runs, out / "layer_gradients.png")
        plots["layer_gradients.png"] = "gradient norm per layer, at initialisation and after training"

    settings = "\n".join(
        f"  - {label}: {', '.join(f'{k}={v}' for k, v in s.items() if k != 'label')}"
        for s in study.settings
        for label in [s["label"]]
    )
    base = ", ".join(f"{k}={v}" for k, v in study.base.items()) or "the Config defaults in studies.py"
    readme = out / "README.md"
    reading = previous_reading(readme)
    text = f"""# Study: {study.name}

{study.question}

```bash
{command}
```

- Data: {data}.
- Seeds: {", ".join(map(str, seeds))} ({SPREAD if len(seeds) > 1 else ONE_SEED}).
- Base: {base}; settings (everything else as in `Config`, training/experiments/studies.py):
{settings}
- Time: {seconds:.0f} s for the whole study on this machine (2 CPU cores shared with other work).
- Files: `results.csv` (one row per setting and seed, every config field), `summary.csv` (per setting: mean and
  sd over the seeds of each table column), `history.csv` (per epoch){
        ", `layer_gradients.csv`" if study.measure == "layer_gradients" else ""
    }.

{table(study, summaries)}

{chr(10).join(f"![{what}]({name})" for name, what in plots.items())}

{reading}"""
    readme.write_text(text)


def by_setting(runs: list[dict]) -> dict[str, list[dict]]:
    """The runs of each setting (one per seed), settings in grid order."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["row"]["setting"], []).append(run)
    return groups


def per_epoch(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs 1 to the longest run's last, and the mean and sd of `key` over the seeds that ran each epoch (runs
    that stop early leave the later epochs to the seeds that went on)."""
    longest = max(len(run["history"]) for run in runs)
    stats = np.array(
        [mean_sd([run["history"][i][key] for run in runs if len(run["history"]) > i]) for i in range(longest)]
    )
    return np.arange(1, longest + 1), stats[:, 0], stats[:, 1]


def curves_plot(runs: list[dict], path: Path) -> None:
    """Train (dashed) and validation (solid) loss and accuracy per epoch: means over the seeds, the validation mean
    in a band of ± one sd. For runs that stop early, a dotted vertical line marks the epoch each seed stopped at and
    a dot its best epoch (on its own validation curve), whose weights it restores."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, mine) in enumerate(by_setting(runs).items()):
        for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
            epochs, mean, _ = per_epoch(mine, key)
            ax.plot(epochs, mean, "--", color=f"C{i}", alpha=0.7)
            epochs, mean, sd = per_epoch(mine, f"val_{key}")
            ax.plot(epochs, mean, "-", color=f"C{i}", label=label)
            if len(mine) > 1:
                ax.fill_between(epochs, mean - sd, mean + sd, color=f"C{i}", alpha=0.2, linewidth=0)
            for run in mine:
                row = run["row"]
                if row["patience"]:  # runs that stopped early: where they stopped, and the epoch they restored
                    best = row["best_epoch"]
                    ax.plot([best], [run["history"][best - 1][f"val_{key}"]], "o", color=f"C{i}", markersize=6)
                    ax.axvline(row["epochs_run"], color=f"C{i}", linestyle=":", linewidth=1.5)
    seeds = len({run["row"]["seed"] for run in runs})
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        stops = any(run["row"]["patience"] for run in runs)
        title = f"{key}: train dashed, validation solid" + (", dotted: stopped" if stops else "")
        ax.set_title(title + (f"\nmean of {seeds} seeds, band ± sd" if seeds > 1 else ""), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def accuracy_plot(study: Study, rows: list[dict], path: Path) -> None:
    """Final train, validation and test accuracy per setting: a line through the seed means with error bars of ± one
    sd, and a dot per seed."""
    labels = list(dict.fromkeys(r["setting"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4))
    for i, (key, name) in enumerate(
        [("train_accuracy", "train"), ("val_accuracy", "validation"), ("test_accuracy", "test")]
    ):
        per = [[r[key] for r in rows if r["setting"] == label] for label in labels]
        stats = np.array([mean_sd(values) for values in per])
        ax.errorbar(range(len(labels)), stats[:, 0], yerr=stats[:, 1], fmt="-", capsize=4, color=f"C{i}", label=name)
        for j, values in enumerate(per):
            ax.plot([j] * len(values), values, "o", color=f"C{i}", markersize=3, alpha=0.6)
    ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
    ax.set_ylabel("accuracy")
    seeds = len({r["seed"] for r in rows})
    ax.set_title(f"{study.name}: final accuracy per setting" + (f" (mean ± sd of {seeds} seeds)" if seeds > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def gradient_noise_plot(rows: list[dict], path: Path) -> None:
    """Minibatch gradient variance and noise scale per batch size: seed means with error bars of ± one sd."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sizes = np.array(sorted({r["batch_size"] for r in rows}))

    def stats(key: str) -> np.ndarray:
        return np.array([mean_sd([r[key] for r in rows if r["batch_size"] == b]) for b in sizes])

    for i, when in enumerate(("init", "end")):
        variance = stats(f"grad_var_{when}")
        label = f"measured, {'at initialisation' if when == 'init' else 'after training'}"
        axes[0].errorbar(sizes, variance[:, 0], yerr=variance[:, 1], fmt="o-", capsize=3, color=f"C{i}", label=label)
        if when == "init":
            axes[0].plot(
                sizes, variance[0, 0] * sizes[0] / sizes, ":", color="gray", label="1/B from the smallest batch"
            )
    axes[0].set_title("variance of a minibatch gradient, E|g_B - G|^2")
    scale = stats("noise_scale_end")
    axes[1].errorbar(sizes, scale[:, 0], yerr=scale[:, 1], fmt="o-", capsize=3, color="C1")
    axes[1].set_title("noise scale B_simple = tr(Sigma) / |G|^2, after training")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def layer_gradients_plot(runs: list[dict], path: Path) -> None:
    """Gradient norm of each layer's kernel, input (left) to output (right): dots at initialisation, crosses after
    training, seed means with error bars of ± one sd; one panel per depth, so the x axis names the same layers for
    every line in it."""
    groups = by_setting(runs)
    depths = list(dict.fromkeys(len(mine[0]["layer_gradients"]) // 2 for mine in groups.values()))
    fig, axes = plt.subplots(1, len(depths), figsize=(4 + 3.5 * len(depths), 4.5), squeeze=False, sharey=True)
    for i, (setting, mine) in enumerate(groups.items()):
        ax = axes[0][depths.index(len(mine[0]["layer_gradients"]) // 2)]
        for when, style in (("init", "o-"), ("end", "x--")):
            layers = [e["layer"] for e in mine[0]["layer_gradients"] if e["when"] == when]
            norms = [[e["grad_norm"] for e in run["layer_gradients"] if e["when"] == when] for run in mine]
            stats = np.array([mean_sd(list(per_layer)) for per_layer in zip(*norms, strict=True)])
            label = f"{setting}, {'initialisation' if when == 'init' else 'after training'}"
            ax.errorbar(layers, stats[:, 0], yerr=stats[:, 1], fmt=style, capsize=2, color=f"C{i}", label=label)
    for ax in axes[0]:
        ax.tick_params(axis="x", labelrotation=70, labelsize=7)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("|dL/d kernel| on 256 training images")
    fig.suptitle("gradient norm per layer, input (left) to output (right)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
