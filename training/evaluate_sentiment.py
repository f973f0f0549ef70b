"""Score a served sentiment model on the same sets as every other: SST-2 validation, IMDb test, the negation set.

    python -m training.evaluate_sentiment --model lstm --sst2 ../shared/data/sst2 --imdb ../shared/data/imdb --record
    python -m training.evaluate_sentiment --model minilm ... --url http://127.0.0.1:8000   # through the service

Without --url the model runs in this process through its runtime (app/families), exactly as the service runs it;
with --url every text goes through POST /predict/sentiment (32 per request). --record writes each set's accuracy
and size (`<set>_accuracy`, `<set>_examples`) and this command into the model's metrics.json and manifest entry,
which GET /models shows, so the sentiment models can be compared on the same texts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.manifest import ManifestEntry, read_manifest, save_entry
from training.common import artifacts

NEGATION = Path(__file__).resolve().parents[1] / "tests" / "data" / "negation.tsv"
REQUEST_TEXTS = 32  # the service's default max_texts


def load_sets(args: argparse.Namespace) -> dict[str, tuple[list[str], list[int]]]:
    from training.common.imdb_data import load_imdb
    from training.common.sst2_data import load_sst2, read_tsv

    sets = {}
    if args.sst2:
        sets["sst2_validation"] = load_sst2(args.sst2)[1]
    if args.imdb:
        texts, labels = load_imdb(args.imdb)[1]
        rows = np.random.default_rng(0).permutation(len(texts))[: args.imdb_limit or None]
        sets["imdb_test"] = ([texts[i] for i in rows], [labels[i] for i in rows])
    sets["negation"] = read_tsv(args.negation)
    return sets


def entry_of(models_dir: Path, name: str, version: str | None) -> ManifestEntry:
    """The served version of `name`, or `version` (a candidate scored before it is promoted)."""
    manifest = read_manifest(models_dir)
    if version is None:
        return manifest.served()[name]
    for entry in manifest.versions(name):
        if entry.version == version:
            return entry
    raise ValueError(f"{name} has no version {version!r}: {[e.version for e in manifest.versions(name)]}")


def in_process(entry: ManifestEntry, models_dir: Path) -> Callable[[list[str]], list[dict]]:
    from app.config import Settings
    from app.families import open_runtime

    runtime = open_runtime(entry, Settings(models_dir=models_dir))
    return lambda texts: [result.model_dump() for result in runtime.predict(texts)]


def over_http(url: str, name: str, version: str | None) -> Callable[[list[str]], list[dict]]:
    import httpx

    client = httpx.Client(base_url=url, timeout=120, headers={"X-Model-Version": version} if version else None)

    def predict(texts: list[str]) -> list[dict]:
        r = client.post("/predict/sentiment", json={"texts": texts, "model": name})
        r.raise_for_status()
        if version is not None and r.json()["model"]["version"] != version:
            raise RuntimeError(f"asked for {name} v{version}, answered by {r.json()['model']}")
        return r.json()["results"]

    return predict


def accuracy(predict: Callable[[list[str]], list[dict]], texts: list[str], labels: list[int]) -> float:
    """Share of texts whose label is right, asked REQUEST_TEXTS at a time in order of length (little padding)."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    right = 0
    for start in range(0, len(order), REQUEST_TEXTS):
        rows = order[start : start + REQUEST_TEXTS]
        results = predict([texts[i] for i in rows])
        right += sum((r["label"] == "POSITIVE") == bool(labels[i]) for r, i in zip(results, rows, strict=True))
    return right / len(texts)


def record(models_dir: Path, entry: ManifestEntry, found: dict, command: str) -> None:
    metrics_file = Path(models_dir) / entry.path / entry.files.get("metrics", "metrics.json")
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    found = found | {"evaluation_command": command}
    artifacts.write_json(metrics_file, metrics | found)
    save_entry(models_dir, entry.model_copy(update={"metrics": entry.metrics | found}))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model name in the manifest (lstm, minilm, ...)")
    p.add_argument("--models-dir", type=Path, default=artifacts.MODELS_DIR)
    p.add_argument("--sst2", help="SST-2 folder (validation.tsv or dev.tsv)")
    p.add_argument("--imdb", help="IMDb folder (test.jsonl.gz or aclImdb)")
    p.add_argument("--imdb-limit", type=int, default=0, help="IMDb test reviews (a seeded sample), 0 = all 25,000")
    p.add_argument("--negation", type=Path, default=NEGATION, help="TSV of short sentences with negation/contrast")
    p.add_argument("--url", help="score through this running service instead of in this process")
    p.add_argument("--version", help="score this version instead of the served one (over HTTP: X-Model-Version)")
    p.add_argument("--record", action="store_true", help="write the accuracies into metrics.json and the manifest")
    args = p.parse_args(argv)
    entry = entry_of(args.models_dir, args.model, args.version)
    predict = over_http(args.url, args.model, args.version) if args.url else in_process(entry, args.models_dir)
    found: dict = {"evaluated_via": "http" if args.url else "in-process"}
    for name, (texts, labels) in load_sets(args).items():
        t0 = time.time()
        found[f"{name}_accuracy"] = round(accuracy(predict, texts, labels), 5)
        found[f"{name}_examples"] = len(texts)
        print(f"{args.model} {name}: {found[f'{name}_accuracy']:.4f} on {len(texts)} ({time.time() - t0:.0f} s)")
    if args.record:
        command = artifacts.training_command("training.evaluate_sentiment", argv)
        record(args.models_dir, entry, found, command)
    return found


if __name__ == "__main__":
    main()
