"""Image-folder datasets: one sub-folder per class, with train/ and validation/ folders or a validation split.

    data/train/<class>/*.jpg + data/validation/<class>/*.jpg     (validation/ may also be called val/)
    data/<class>/*.jpg                                            (a stratified validation split is held out)

Class names are the folder names, sorted. Images go through app.families.image.preprocess.prepare_image, the
function the service calls too, so training and serving resize and convert identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from app.families.image.preprocess import prepare_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
VALIDATION_NAMES = ("validation", "val", "valid")


@dataclass
class Split:
    paths: list[Path]
    labels: np.ndarray  # int class indices


@dataclass
class ImageFolder:
    class_names: list[str]
    train: Split
    validation: Split


def list_class_folder(root: Path, class_names: list[str] | None = None) -> tuple[list[str], Split]:
    """Every image under root/<class>/, labelled by its folder's index in the sorted class names."""
    root = Path(root)
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    class_names = class_names or found
    if len(class_names) < 2:
        raise ValueError(f"{root} needs at least two class folders, found {found}")
    missing = sorted(set(found) ^ set(class_names))
    if missing:
        raise ValueError(f"{root} has different class folders than the training set: {missing}")
    paths, labels = [], []
    for index, name in enumerate(class_names):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"class folder {root / name} has no images")
        paths += files
        labels += [index] * len(files)
    return class_names, Split(paths, np.array(labels, dtype=np.int64))


def load_image_folder(data: Path, validation_split: float = 0.2, seed: int = 42) -> ImageFolder:
    """The dataset's file lists: train/ + validation/ when present, else a stratified split of the class folders."""
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"{data} is not a folder")
    validation_dir = next((data / n for n in VALIDATION_NAMES if (data / n).is_dir()), None)
    if (data / "train").is_dir() and validation_dir is not None:
        class_names, train = list_class_folder(data / "train")
        _, validation = list_class_folder(validation_dir, class_names)
        return ImageFolder(class_names, train, validation)
    class_names, everything = list_class_folder(data / "train" if (data / "train").is_dir() else data)
    rng = np.random.default_rng(seed)
    val_index = []
    for label in range(len(class_names)):
        members = np.flatnonzero(everything.labels == label)
        rng.shuffle(members)
        val_index += members[: max(1, round(len(members) * validation_split))].tolist()
    is_val = np.zeros(len(everything.paths), dtype=bool)
    is_val[val_index] = True

    def subset(mask: np.ndarray) -> Split:
        return Split([p for p, m in zip(everything.paths, mask, strict=True) if m], everything.labels[mask])

    return ImageFolder(class_names, subset(~is_val), subset(is_val))


def read_image(path: Path, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: decoded EXIF-upright (as the service's decode_image does), then prepare_image."""
    with Image.open(path) as image:
        image.load()
        return prepare_image(ImageOps.exif_transpose(image), size)


def load_images(paths: list[Path], size: int) -> np.ndarray:
    """All images of a split in memory, uint8 [n, size, size, 3]."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = read_image(path, size)
    return out
