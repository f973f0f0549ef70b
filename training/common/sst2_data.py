"""SST-2 (Stanford Sentiment Treebank, binary; Socher et al. 2013): short lower-cased phrases and 0/1 labels.

`load_sst2(None)` downloads GLUE's SST-2.zip (67,349 training phrases, 872 dev sentences) into
~/.keras/datasets. `load_sst2(path)` reads a folder with train.tsv and validation.tsv (or GLUE's dev.tsv) --
tab-separated `sentence` and `label` (1 = positive) with a header line -- or that folder's SST-2.zip.
../shared/data/sst2 holds GLUE's training phrases split 60,614 train / 6,735 validation.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

from training.common.downloads import downloading

URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"

Split = tuple[list[str], list[int]]


def read_tsv(path: Path) -> Split:
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts.append(row["sentence"].strip())
            labels.append(int(row["label"]))
    return texts, labels


def download() -> Path:
    import keras

    with downloading("SST-2", "--sst2 path/to/SST-2 (train.tsv, validation.tsv)"):
        return unpack(Path(keras.utils.get_file("SST-2.zip", URL)))


def unpack(archive: Path) -> Path:
    target = archive.parent / "SST-2"
    if not (target / "train.tsv").is_file():
        with zipfile.ZipFile(archive) as z:
            z.extractall(archive.parent)
    return target


def load_sst2(data: str | Path | None) -> tuple[Split, Split]:
    """((train_texts, train_labels), (validation_texts, validation_labels))."""
    path = download() if data is None else Path(data)
    if path.is_file() and path.suffix == ".zip":
        path = unpack(path)
    for root in (path, path / "SST-2"):
        for validation in ("validation.tsv", "dev.tsv"):
            if (root / "train.tsv").is_file() and (root / validation).is_file():
                return read_tsv(root / "train.tsv"), read_tsv(root / validation)
    raise FileNotFoundError(f"{path}: expected train.tsv and validation.tsv (or dev.tsv), or GLUE's SST-2.zip")
