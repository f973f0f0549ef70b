"""IMDb movie reviews (Maas et al. 2011, 25,000 train + 25,000 test, balanced) as raw text and 0/1 labels.

`load_imdb(None)` downloads and unpacks the aclImdb archive into ~/.keras/datasets. `load_imdb(path)` reads:
- a folder with train.jsonl.gz and test.jsonl.gz (one JSON object per line with `text` and `label`, 1 = positive);
- the unpacked aclImdb folder (train/pos, train/neg, test/pos, test/neg of .txt files), or its parent;
- the aclImdb_v1.tar.gz archive itself.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

from training.common.downloads import downloading

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"

Split = tuple[list[str], list[int]]


def _read_jsonl(path: Path) -> Split:
    texts, labels = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(int(row["label"]))
    return texts, labels


def _read_acl_folder(root: Path, split: str) -> Split:
    texts, labels = [], []
    for label, sub in ((0, "neg"), (1, "pos")):
        for file in sorted((root / split / sub).glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8"))
            labels.append(label)
    return texts, labels


def _unpack(archive: Path) -> Path:
    target = archive.parent
    if not (target / "aclImdb" / "test" / "pos").is_dir():
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    return target / "aclImdb"


def download() -> Path:
    import keras

    with downloading("the IMDb reviews", "--data path/to/aclImdb (or its .tar.gz)"):
        archive = Path(keras.utils.get_file("aclImdb_v1.tar.gz", URL))
    return _unpack(archive)


def load_imdb(data: str | Path | None) -> tuple[Split, Split]:
    """((train_texts, train_labels), (test_texts, test_labels))."""
    path = download() if data is None else Path(data)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        path = _unpack(path)
    if not path.exists():
        raise FileNotFoundError(f"no IMDb data at {path}")
    if (path / "train.jsonl.gz").is_file():
        return _read_jsonl(path / "train.jsonl.gz"), _read_jsonl(path / "test.jsonl.gz")
    for root in (path, path / "aclImdb"):
        if (root / "train" / "pos").is_dir():
            return _read_acl_folder(root, "train"), _read_acl_folder(root, "test")
    raise FileNotFoundError(f"{path}: expected train.jsonl.gz + test.jsonl.gz, an aclImdb folder or its .tar.gz")
