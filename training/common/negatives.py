"""Negatives for outlier exposure: images that are not digits (letters printed in many fonts or drawn with a pen in
Hershey's single-stroke fonts, noise, garments), or not garments (digits, photos of other things, noise), drawn as
users send them and put through the service's own preprocessing of the model they train, so that training sees
exactly the 28x28 inputs a request would give it.

Fonts are grouped by family (the folder under /usr/share/fonts/{truetype,opentype}); HELD_OUT families (and
Hershey's PEN_HELD_OUT) are never drawn here, so that training/calibrate.py can measure letters in fonts the model
never saw.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.common import clothing_photos
from training.common.restyle import prepared

FONT_ROOTS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
# Measured on, never trained on: DejaVu and Liberation (the first letters set) and Croscore (Arimo, Tinos,
# Cousine: Liberation 2's designs). Matplotlib's own fonts (DejaVu, STIX, Computer Modern) are never drawn either.
HELD_OUT = ("dejavu", "liberation", "croscore")
NOT_TEXT = ("D050000L", "StandardSymbols", "Math")  # dingbats and symbol fonts have no letters
# Letters that are not also digit shapes (O o I l S s Z z b g q i are left out: a printed "O" may be a zero).
LETTERS = "ABCDEFGHJKMNPQRTUVWXYacdefhjkmnprtuvwxyz"
KINDS = ("fonts", "pen", "noise", "fashion")  # for the digit model
# Hershey's single-stroke fonts (the Hershey-Fonts package), drawn with a pen: handwriting's stand-in. The held-out
# ones (two scripts and an italic pair) are never drawn here; training/calibrate.py measures them.
PEN_FONTS = ("futural", "futuram", "rowmans", "rowmand", "rowmant", "scripts", "timesr", "timesrb")
PEN_HELD_OUT = ("cursive", "scriptc", "timesi", "timesib")
GARMENT_KINDS = ("digits", "photos", "noise")  # for the fashion model


def has_letters(font: Path, alphabet: str = LETTERS) -> bool:
    """Whether the font draws every letter of the alphabet (not its "missing glyph" box: Linux Libertine's
    initials font has capitals only)."""
    face = ImageFont.truetype(str(font), 24)
    missing = bytes(face.getmask("\ue123"))  # a private-use code point: no text font has it
    return all(bytes(face.getmask(c)) != missing for c in alphabet)


def font_families(roots: tuple[Path, ...] = FONT_ROOTS) -> dict[str, list[Path]]:
    """family -> its font files (.ttf, .otf) that draw every letter, for every family the machine has (symbol
    fonts left out)."""
    families: dict[str, list[Path]] = {}
    for base in roots:
        for path in sorted([*base.glob("**/*.ttf"), *base.glob("**/*.otf")]):
            if not any(word in path.name for word in NOT_TEXT) and has_letters(path):
                families.setdefault(path.relative_to(base).parts[0], []).append(path)
    return families


def held_out(family: str, path: Path) -> bool:
    """Whether a font is of a HELD_OUT family: by its folder, or by its file's name in a flat folder of fonts (such
    as matplotlib's DejaVuSans.ttf)."""
    return any(name.lower().startswith(HELD_OUT) for name in (family, path.name))


def training_fonts(roots: tuple[Path, ...] = FONT_ROOTS) -> list[Path]:
    """The font files negatives are drawn in: every family under the roots but the held-out ones."""
    return [path for family, paths in font_families(roots).items() for path in paths if not held_out(family, path)]


def letter(font: Path, text: str, rng: np.random.Generator) -> Image.Image:
    """One printed letter as a user might send it: any size, a margin or none, slanted a little, bold or thin,
    blurred or crisp, dark on light or light on dark, sometimes on grainy paper or shrunk to a few pixels."""
    size = int(rng.integers(24, 110))
    face = ImageFont.truetype(str(font), size)
    stroke = int(rng.integers(0, max(1, size // 18) + 1)) if rng.random() < 0.3 else 0
    left, top, right, bottom = face.getbbox(text, stroke_width=stroke)
    margin = int(rng.integers(0, size // 2 + 1))
    canvas = Image.new("L", (right - left + 2 * margin + 1, bottom - top + 2 * margin + 1), 255)
    ImageDraw.Draw(canvas).text(
        (margin - left, margin - top), text, font=face, fill=int(rng.integers(0, 90)), stroke_width=stroke
    )
    image = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.MinFilter(3))  # a thicker pen (dark ink grows)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    if rng.random() < 0.15:  # sent tiny: 12-24 pixels on its long side
        side = int(rng.integers(12, 25))
        scale = side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    values = np.asarray(image, dtype=np.float64)
    if rng.random() < 0.25:  # grainy paper
        values = values + rng.normal(0, rng.uniform(2, 10), values.shape)
    if rng.random() < 0.4:  # light ink on dark, as a canvas export or MNIST itself
        values = 255 - values
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))


def letters(n: int, rng: np.random.Generator, fonts: list[Path], alphabet: str = LETTERS) -> list[Image.Image]:
    """n printed letters, each in a random font of `fonts` and a random letter of `alphabet`."""
    return [
        letter(fonts[int(rng.integers(len(fonts)))], alphabet[int(rng.integers(len(alphabet)))], rng) for _ in range(n)
    ]


@cache
def hershey(font: str) -> Any:
    """One of the Hershey-Fonts package's fonts, loaded once."""
    from HersheyFonts import HersheyFonts

    face = HersheyFonts()
    face.load_default_font(font)
    return face


def pen_letter(font: str, text: str, rng: np.random.Generator) -> Image.Image:
    """A character of a Hershey single-stroke font as a hand with a pen might draw it: each stroke jittered, the
    whole slanted and turned a little, a round pen thin to marker, dark on light or light on dark (as a canvas
    export), sometimes blurred or sent small."""
    strokes = np.array(list(hershey(font).lines_for_text(text)), dtype=np.float64)  # (segments, 2 ends, x y)
    if not len(strokes):
        raise ValueError(f"Hershey font {font!r} has no strokes for {text!r}")
    slant, turn = float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.25, 0.25))
    x, y = strokes[..., 0] + slant * strokes[..., 1], strokes[..., 1]
    x, y = np.cos(turn) * x - np.sin(turn) * y, np.sin(turn) * x + np.cos(turn) * y
    side, fill = 200, 140
    low = np.array([x.min(), y.min()])
    scale = fill / max(float(x.max() - low[0]), float(y.max() - low[1]), 1e-6)
    x = (x - low[0]) * scale + (side - (x.max() - low[0]) * scale) / 2 + rng.normal(0, 1.5, x.shape)
    y = (y - low[1]) * scale + (side - (y.max() - low[1]) * scale) / 2 + rng.normal(0, 1.5, y.shape)  # y points down
    image = Image.new("L", (side, side), 255)
    pen, width = ImageDraw.Draw(image), int(rng.integers(8, 24))
    ink = int(rng.integers(0, 60))
    for (x0, x1), (y0, y1) in zip(x, y, strict=True):
        pen.line([(x0, y0), (x1, y1)], fill=ink, width=width)
        for cx, cy in ((x0, y0), (x1, y1)):  # round ends and joints
            pen.ellipse((cx - width / 2, cy - width / 2, cx + width / 2, cy + width / 2), fill=ink)
    if rng.random() < 0.6:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    if rng.random() < 0.15:
        small = int(rng.integers(16, 29))
        image = image.resize((small, small), Image.Resampling.BOX)
    return Image.fromarray(255 - np.asarray(image)) if rng.random() < 0.4 else image


def pen_letters(
    n: int, rng: np.random.Generator, fonts: tuple[str, ...] = PEN_FONTS, alphabet: str = LETTERS
) -> list[Image.Image]:
    """n pen-drawn characters, each in a random Hershey font of `fonts` and a random character of `alphabet`."""
    return [
        pen_letter(fonts[int(rng.integers(len(fonts)))], alphabet[int(rng.integers(len(alphabet)))], rng)
        for _ in range(n)
    ]


def pen_digits(n: int, rng: np.random.Generator, fonts: tuple[str, ...] = PEN_FONTS) -> tuple[np.ndarray, np.ndarray]:
    """n digits drawn with the pen of pen_letter, in the training Hershey fonts, prepared as requests, and their
    labels: positives in the very style of the pen-drawn negatives, so that the model tells them apart by shape."""
    labels = rng.integers(0, 10, n)
    images = [pen_letter(fonts[int(rng.integers(len(fonts)))], str(d), rng) for d in labels]
    x, kept = prepared(images)
    return x, labels[kept]


def noise(n: int, rng: np.random.Generator) -> list[Image.Image]:
    """Grey noise (uniform, Gaussian, or blurred into blobs), 8 to 200 pixels square."""
    images = []
    for i in range(n):
        side = int(rng.integers(8, 200))
        values = rng.integers(0, 256, (side, side)) if i % 3 == 0 else rng.normal(128, 50, (side, side))
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
        if i % 3 == 2:
            image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 4))))
        images.append(image)
    return images


def either_way(items: np.ndarray, rng: np.random.Generator) -> list[Image.Image]:
    """MNIST-format training images (never a test part: Fashion-MNIST items for the digit model, MNIST digits for
    the fashion model), as they are or dark on light."""
    return [Image.fromarray(a if rng.random() < 0.5 else 255 - a) for a in items]


CROP_SCALES = (0.15, 1.0)  # a crop's side, as a share of the photo's short side: a patch of grass to most of it
LOAD_SIDE = 512  # photos are shrunk to this many pixels on their long side once (wallpapers are 5120 wide)


def photo_files(folder: Path) -> list[Path]:
    """The photos under a folder (searched recursively), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in clothing_photos.EXTENSIONS)


def load_photo(path: Path) -> Image.Image:
    """A photo in RGB, at most LOAD_SIDE pixels on its long side."""
    with Image.open(path) as opened:
        opened.draft("RGB", (LOAD_SIDE, LOAD_SIDE))  # JPEG: decode at a fraction of the size
        photo = opened.convert("RGB")
    photo.thumbnail((LOAD_SIDE, LOAD_SIDE))
    return photo


def photos(folders: Path | list[Path], n: int, rng: np.random.Generator) -> list[Image.Image]:
    """n photos of other things, in equal shares among the folders (each searched recursively, so that a folder of
    a dozen wallpapers counts as much as one of a thousand cats): each folder's share is crops() of its photos."""
    folders = [folders] if isinstance(folders, Path) else folders
    images = []
    for f, folder in enumerate(folders):
        files = photo_files(folder)
        if not files:
            raise ValueError(f"negatives 'photos' found no photos under {folder}")
        images += crops(files, n // len(folders) + (n % len(folders) if f == len(folders) - 1 else 0), rng)
    return images


def crops(files: list[Path], n: int, rng: np.random.Generator) -> list[Image.Image]:
    """n images from the photo files: each photo whole once, in a shuffled order, then random square crops of them
    at many scales (CROP_SCALES: a patch of background, part of an animal or a chair, most of a landscape). Each
    file is read once; each image is at most the fashion preprocessing's WORK_SIZE on its long side (as it would
    shrink it)."""
    from app.families.fashion.preprocess import WORK_SIZE

    uses = np.bincount(np.resize(rng.permutation(len(files)), n), minlength=len(files))
    images = []
    for i in np.flatnonzero(uses):
        photo = load_photo(files[i])
        for use in range(int(uses[i])):
            image = photo.copy()
            if use:
                side = max(8, int(min(photo.size) * rng.uniform(*CROP_SCALES)))
                left, top = int(rng.integers(0, photo.width - side + 1)), int(rng.integers(0, photo.height - side + 1))
                image = photo.crop((left, top, left + side, top + side))
            image.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX)
            images.append(image)
    return images


def for_garments(
    kinds: list[str],
    count: int,
    seed: int,
    digit_items: np.ndarray | None = None,
    photo_folder: Path | list[Path] | None = None,
) -> np.ndarray:
    """About `count` prepared negatives for the fashion model, in equal shares among the `kinds` asked (among
    GARMENT_KINDS): MNIST training digits (digit_items, uint8 (n, 28, 28)), photos of other things (photo_folder, one
    folder or several: e.g. the cat photos of cats_and_dogs/train and wallpapers; dogs and the sources in
    training/calibrate.py's unseen_photos stay unseen for calibrate's measurement) and noise."""
    from app.families.fashion.preprocess import prepare_item

    unknown = set(kinds) - set(GARMENT_KINDS)
    if unknown:
        raise ValueError(f"unknown negatives {sorted(unknown)}: choose among {', '.join(GARMENT_KINDS)}")
    rng = np.random.default_rng(seed)
    share = count // len(kinds)
    images: list[Image.Image] = []
    if "digits" in kinds:
        if digit_items is None:
            raise ValueError("negatives 'digits' needs MNIST training images (--digits-data)")
        images += either_way(digit_items[rng.choice(len(digit_items), share)], rng)
    if "photos" in kinds:
        if not photo_folder:
            raise ValueError("negatives 'photos' needs a folder of photos of things that are not garments")
        images += photos(photo_folder, share, rng)
    if "noise" in kinds:
        images += noise(share, rng)
    return prepared(images, prepare_item)[0]


DIGIT_SHARES = {"fonts": 0.6, "pen": 0.3, "noise": 0.1, "fashion": 0.3}  # each kind's weight unless one is given


def digit_shares(kinds: list[str]) -> dict[str, float]:
    """The weight of each kind asked, "kind" (DIGIT_SHARES') or "kind:weight" (e.g. "pen:0.6")."""
    weights = {}
    for item in kinds:
        kind, _, weight = item.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown negatives {[kind]}: choose among {', '.join(KINDS)}")
        try:
            weights[kind] = float(weight) if weight else DIGIT_SHARES[kind]
        except ValueError:
            raise ValueError(f"negatives {item!r}: the weight after ':' must be a number") from None
        if not weights[kind] > 0:
            raise ValueError(f"negatives {item!r}: the weight must be positive")
    return weights


def for_digits(
    kinds: list[str],
    count: int,
    seed: int,
    fashion_items: np.ndarray | None = None,
    font_roots: tuple[Path, ...] = FONT_ROOTS,
) -> np.ndarray:
    """About `count` prepared negatives for the digit model (the few the preprocessing refuses, as blank, are left
    out): 60% letters printed in the fonts under font_roots but the held-out families, 30% letters drawn with a pen
    in Hershey's single-stroke PEN_FONTS, 10% noise, 30% Fashion-MNIST training items (fashion_items, uint8 (n, 28,
    28)), in proportion among the `kinds` asked ("kind:weight" sets a kind's weight: digit_shares)."""
    weights = digit_shares(kinds)
    kinds = list(weights)
    rng = np.random.default_rng(seed)
    total = sum(weights.values())
    images: list[Image.Image] = []
    if "noise" in kinds:
        images += noise(int(count * weights["noise"] / total), rng)
    if "fashion" in kinds:
        if fashion_items is None:
            raise ValueError("negatives 'fashion' needs Fashion-MNIST training images (--fashion-data)")
        take = rng.choice(len(fashion_items), min(len(fashion_items), int(count * weights["fashion"] / total)))
        images += either_way(fashion_items[take], rng)
    if "pen" in kinds:
        images += pen_letters(int(count * weights["pen"] / total) if "fonts" in kinds else count - len(images), rng)
    if "fonts" in kinds:
        fonts = training_fonts(font_roots)
        if not fonts:
            raise ValueError(
                f"negatives 'fonts' found no fonts outside {HELD_OUT} under {', '.join(map(str, font_roots))}"
            )
        images += letters(count - len(images), rng, fonts)
    return prepared(images)[0]
