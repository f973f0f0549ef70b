"""MNIST loading: Keras' download for users with internet, or a local `mnist.npz` / four IDX `.gz` files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from training.common.downloads import downloading

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

Split = tuple[np.ndarray, np.ndarray]


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or not): magic 0x0000 + dtype code 0x08 (uint8) + ndim, then big-endian dims."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file (magic {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {shape} values, found {array.size}")
    return array.reshape(shape)


def load_mnist(data: str | Path | None = None) -> tuple[Split, Split]:
    """((x_train, y_train), (x_test, y_test)) as uint8 28x28 images and integer labels.

    `data` is None (download with Keras, cached in ~/.keras/datasets), a `.npz` file with Keras' keys,
    or a folder holding `mnist.npz` or the four canonical IDX `.gz` files.
    """
    if data is None:
        import keras

        with downloading("MNIST", "--data path/to/mnist.npz (or a folder with the IDX .gz files)"):
            return keras.datasets.mnist.load_data()
    path = Path(data)
    if path.is_dir() and (path / "mnist.npz").exists():
        path = path / "mnist.npz"
    if path.is_file():
        with np.load(path) as f:
            return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
    if path.is_dir():
        missing = [name for name in IDX_FILES.values() if not (path / name).exists()]
        if missing:
            raise FileNotFoundError(f"{path} has neither mnist.npz nor the IDX files {missing}")
        arrays = {key: read_idx(path / name) for key, name in IDX_FILES.items()}
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    raise FileNotFoundError(f"MNIST data not found at {path}")
