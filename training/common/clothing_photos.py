"""Real photos of clothes as Fashion-MNIST examples: an image folder (one folder a class, e.g. the CC0 "clothing
dataset small" by Alexey Grigorev) mapped onto Fashion-MNIST's classes, with a fixed held-out part.

The folder's classes that have a Fashion-MNIST counterpart are kept (shorts count as "Trouser", skirts as "Dress",
shoes as whichever of "Sandal", "Sneaker", "Ankle boot" the model says: a photo of a shoe says which one it is less
often than its folder does); the others (hats) are left out. Which part a photo belongs to depends only on its file
name, so the held-out part stays held out on any machine and as the folder grows.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

# folder name -> the Fashion-MNIST classes counted right (indices into app.families.fashion.preprocess.CLASSES);
# the first is the training label
CLASS_MAP: dict[str, tuple[int, ...]] = {
    "t-shirt": (0,),
    "pants": (1,),
    "shorts": (1,),
    "longsleeve": (2,),
    "dress": (3,),
    "skirt": (3,),
    "outwear": (4,),
    "shirt": (6,),
    "shoes": (7, 5, 9),
}
PARTS = ("train", "validation", "held-out")
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def part_of(path: Path) -> str:
    """ "held-out" for a fifth of the file names, "validation" for another fifth, "train" for the rest."""
    bucket = zlib.crc32(path.name.encode()) % 5
    return PARTS[2] if bucket == 0 else PARTS[1] if bucket == 1 else PARTS[0]


def photo_files(folder: str | Path, part: str | None = None) -> list[tuple[Path, str]]:
    """(path, class folder) of every photo under folder/<class>/ whose class maps onto Fashion-MNIST, sorted; only
    those of `part` when given."""
    found = []
    for class_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir() and p.name in CLASS_MAP):
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in EXTENSIONS and (part is None or part_of(path) == part):
                found.append((path, class_dir.name))
    return found


def correct(predicted: np.ndarray, classes: list[str]) -> np.ndarray:
    """Whether each predicted Fashion-MNIST class index counts as right for its photo's class folder."""
    return np.array([int(p) in CLASS_MAP[c] for p, c in zip(predicted, classes, strict=True)])


def load_part(folder: str | Path, part: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The photos of one part made into model inputs by the service's own preprocessing (float32 (n, 28, 28, 1)),
    their training labels and their class folders. A photo the service would refuse (blank) is left out."""
    from PIL import Image

    from app.errors import ServeError
    from app.families.fashion.preprocess import prepare_item

    inputs, classes = [], []
    for path, class_name in photo_files(folder, part):
        try:
            with Image.open(path) as image:
                inputs.append(prepare_item(image))
        except ServeError:
            continue
        classes.append(class_name)
    labels = np.array([CLASS_MAP[c][0] for c in classes], dtype=np.int64)
    return (np.stack(inputs) if inputs else np.zeros((0, 28, 28, 1), np.float32)), labels, classes


def augmented(x: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """`copies` variants of each prepared photo, as photos of the same garment differ: shifted up to 2 pixels,
    mirrored half the time, dimmed up to 30%."""
    out = np.repeat(x, copies, axis=0)
    shifts = rng.integers(-2, 3, (len(out), 2))
    for i, (dy, dx) in enumerate(shifts):
        out[i] = np.roll(out[i], (int(dy), int(dx)), axis=(0, 1))
    mirrored = rng.random(len(out)) < 0.5
    out[mirrored] = out[mirrored][:, :, ::-1]
    return out * rng.uniform(0.7, 1.0, (len(out), 1, 1, 1)).astype(np.float32)


def accuracy(predicted: np.ndarray, classes: list[str]) -> dict[str, float | int | dict[str, float]]:
    """Share right overall and per class folder."""
    right = correct(predicted, classes)
    names = np.array(classes)
    return {
        "accuracy": round(float(right.mean()), 4) if len(right) else 0.0,
        "photos": len(right),
        "per_class": {c: round(float(right[names == c].mean()), 4) for c in sorted(set(classes))},
    }
