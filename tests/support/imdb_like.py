"""An IMDb-like generated corpus for the sentiment tests: short reviews whose label a few marker words decide.

Written in the layout the real loader reads (train.jsonl.gz and test.jsonl.gz), with IMDb's noise: HTML line
breaks, punctuation and mixed case.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

POSITIVE = ["great", "wonderful", "superb", "brilliant", "loved", "excellent", "moving", "beautiful"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "hated", "worst", "dull", "pathetic"]
FILLER = ["the", "movie", "film", "plot", "actor", "was", "and", "a", "scene", "ending", "story", "it", "this", "very"]


def review(rng: random.Random, label: int) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 18))]
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
    words = [w.upper() if rng.random() < 0.1 else w.capitalize() if rng.random() < 0.1 else w for w in words]
    cut = rng.randrange(1, len(words))
    return " ".join(words[:cut]) + rng.choice([". <br /><br />", "! ", ", ", "... "]) + " ".join(words[cut:]) + "."


def write_corpus(folder: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    for split, n in (("train", 600), ("test", 200)):
        with gzip.open(folder / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i in range(n):
                label = i % 2
                f.write(json.dumps({"id": i, "rating": 8 if label else 2, "label": label, "text": review(rng, label)}))
                f.write("\n")
