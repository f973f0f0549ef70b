"""What a classifier's answer says beside its label: whether the input looks like the data the model was trained on
(`in_distribution`, the `ood_score` behind it and, when not, `ood_reason`), and a confidence that means what it
says (temperature scaling).

A softmax classifier answers every input with some class, often at 90%+ for inputs it has never seen the like of
(a photo of a cat is an "8"). Each family measures its inputs with a few cheap checks (numbers its preprocessing or
its model call already give; no second model call) and the artifact's model.json holds, under
`metrics["ood"]`, what in-distribution inputs look like to each check and the threshold that flags about 1% of
held-out in-distribution data; `metrics["calibration"]` holds the temperature fitted on held-out data and the
expected calibration error (ECE) before and after. training/calibrate.py computes both and writes them; GET
/models shows them. An artifact without them answers `in_distribution: null` (not checked) and raw confidences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from app.errors import OutOfDistribution


class OodFields(BaseModel):
    """The fields every classifier answer carries (app/families/ood.py)."""

    in_distribution: bool | None = Field(
        None,
        description="False: the input does not look like what the model was trained on, so its label means little "
        "(e.g. a photo sent to the digit model). null: this artifact has no out-of-distribution thresholds.",
    )
    ood_score: float | None = Field(
        None,
        description="How far the input is from the training data, in units of the artifact's thresholds: above "
        "1.0 is flagged (in_distribution false). About 1% of held-out in-distribution inputs score above 1.",
    )
    ood_reason: str | None = Field(None, description="Why the input was flagged (only when in_distribution is false).")


@dataclass(frozen=True)
class Verdict:
    in_distribution: bool | None = None
    ood_score: float | None = None
    ood_reason: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"in_distribution": self.in_distribution, "ood_score": self.ood_score, "ood_reason": self.ood_reason}


UNCHECKED = Verdict()


@dataclass(frozen=True)
class Check:
    """One measurement of the input with its threshold: a scalar score as given, or a vector of statistics scored
    by its Mahalanobis distance from the nearest of a few groups of in-distribution data (`means`, `precisions`:
    e.g. digits drawn with a crisp pen, a soft one, sent tiny; or the model's features of each class. One Gaussian
    over all of them would be so wide that photos fit in it)."""

    name: str
    threshold: float
    reason: str
    means: np.ndarray | None = None  # (groups, d)
    precisions: np.ndarray | None = None  # (groups, d, d)

    @classmethod
    def of(cls, name: str, spec: Mapping[str, Any]) -> Check:
        if "means" not in spec:
            return cls(name, float(spec["threshold"]), str(spec["reason"]))
        means = np.asarray(spec["means"], dtype=np.float64)
        precisions = np.asarray(spec["precisions"], dtype=np.float64)
        return cls(name, float(spec["threshold"]), str(spec["reason"]), means, precisions)

    def score(self, values: np.ndarray) -> np.ndarray:
        """Raw scores, one per row of `values` ((n,) scalars, or (n, d) statistics when the check has means).
        Every group's distance in one batched matrix product (~4 us for one input and 8 groups of 6 statistics,
        ~8 us for 10 groups of 64 features)."""
        if self.means is None or self.precisions is None:
            return np.asarray(values, dtype=np.float64)
        centred = np.asarray(values, dtype=np.float64)[None, :, :] - self.means[:, None, :]  # (groups, n, d)
        return (np.matmul(centred, self.precisions) * centred).sum(axis=2).min(axis=0)


def mahalanobis_fit(values: np.ndarray, groups: np.ndarray, ridge: float = 0.0) -> dict[str, Any]:
    """Each group's mean and precision (pseudo-inverse covariance, with `ridge` added to its diagonal: a direction
    the group never varies in, such as a feature its members never use, then still counts) of in-distribution
    statistics, as model.json stores them."""
    values = np.asarray(values, dtype=np.float64)
    parts = [values[groups == g] for g in np.unique(groups)]
    eye = np.eye(values.shape[1])
    return {
        "means": [part.mean(0).tolist() for part in parts],
        "precisions": [np.linalg.pinv(np.cov(part.T) + ridge * eye).tolist() for part in parts],
    }


class Gate:
    """The artifact's checks: an input is in distribution when every check's score is within its threshold.
    `ood_score` is the largest score / threshold, so 1.0 is the line for every model and every check."""

    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any], stored: Any = None) -> Gate | None:
        """The checks model.json lists; a check's means and precisions too large for it (a model's features) are
        in the npz file `stored` (arrays named "<check>.means", "<check>.precisions", as store_checks writes)."""
        spec = metrics.get("ood")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("checks"), Mapping):
            return None
        arrays: dict[str, np.ndarray] = {}
        if stored is not None:
            with np.load(stored) as data:
                arrays = {key: data[key] for key in data.files}
        checks = []
        for name, check in spec["checks"].items():
            extra = {part: arrays[f"{name}.{part}"] for part in ("means", "precisions") if f"{name}.{part}" in arrays}
            checks.append(Check.of(name, {**check, **extra}))
        return cls(checks)

    def verdicts(self, measured: Mapping[str, np.ndarray]) -> list[Verdict]:
        """One verdict per input from each check's measurements (`measured[check.name]`, one row per input)."""
        ratios = [(check.score(measured[check.name]) / check.threshold).tolist() for check in self.checks]
        verdicts = []
        for scores in zip(*ratios, strict=True):
            over = [i for i, v in enumerate(scores) if not v <= 1.0]  # NaN is over too
            if not over:
                verdicts.append(Verdict(True, round(max(scores), 4)))
                continue
            measurable = all(v == v for v in scores)  # no NaN: a score to show
            score = round(max(scores), 4) if measurable else None
            verdicts.append(Verdict(False, score, self.checks[max(over, key=lambda i: scores[i])].reason))
        return verdicts


def store_checks(path: Any, checks: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the checks' means and precisions (float32) into the npz file `path`, for Gate.from_metrics."""
    arrays: dict[str, Any] = {
        f"{name}.{part}": np.asarray(check[part], np.float32) for name, check in checks.items() for part in check
    }
    np.savez_compressed(path, **arrays)


def temperature(metrics: Mapping[str, Any]) -> float:
    """The artifact's fitted temperature (1.0, no change, when it has none)."""
    spec = metrics.get("calibration")
    value = spec.get("temperature") if isinstance(spec, Mapping) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def temper(probabilities: np.ndarray, t: float) -> np.ndarray:
    """softmax(logits / t) from softmax(logits): log p differs from the logits by a constant per row, which the
    softmax cancels, so p ** (1 / t), normalised, is it. Rows of (n, classes); the largest p is >= 1 / classes,
    so nothing underflows that matters."""
    if t == 1.0:
        return probabilities
    scaled = np.power(probabilities, 1.0 / t, dtype=probabilities.dtype)  # exp(log p / t), exactly 0 for p = 0
    return scaled / scaled.sum(axis=-1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the mean gap between confidence and accuracy over equal-width confidence bins, weighted by their size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(float(correct[inside].mean()) - float(confidence[inside].mean()))
    return float(total)


def refusing(answer: Any, reject: bool, where: list[str]) -> Any:
    """The answer (one, or a list of results), or with `reject` (the request's reject_ood) a 422
    out_of_distribution when an input was flagged; `where` names each input (e.g. "file", "texts[2]")."""
    if reject:
        answers = answer if isinstance(answer, list) else [answer]
        if all(isinstance(a, Verdict | OodFields) for a in answers):
            refuse_flagged(answers, where)
    return answer


def refuse_flagged(verdicts: Sequence[Verdict | OodFields], where: list[str]) -> None:
    """With `reject_ood`: raise 422 out_of_distribution when any input was flagged (`where` names each input)."""
    flagged = [
        {"input": name, "ood_score": v.ood_score, "reason": v.ood_reason}
        for name, v in zip(where, verdicts, strict=True)
        if v.in_distribution is False
    ]
    if flagged:
        first, more = flagged[0], f" (and {len(flagged) - 1} more)" if len(flagged) > 1 else ""
        raise OutOfDistribution(
            f"Input '{first['input']}'{more} does not look like what the model was trained on ({first['reason']}); "
            "send without reject_ood to get its answer anyway.",
            {"flagged": flagged},
        )


def ink_statistics(batch: np.ndarray, enlarged: bool = False) -> np.ndarray:
    """(n, 5) statistics of prepared square images (light on black, 0..1) that tell a drawn stroke from a photo, a
    texture or noise after the same preprocessing: ink per pixel, the share of pixels with any ink and with
    strong ink (> 0.5), the share of the inked pixels that are mid-grey (0.1 .. 0.9), and edge length per unit of
    ink (strokes are thin: much edge for their ink; blobs and photos are not). With `enlarged`, (n, 7): also two
    that tell a tiny image the preprocessing enlarged (linear between its pixels) from a photo shrunk into the same
    box, which the first five cannot: the second differences per unit of edge (~1.0 enlarged, ~1.4 a photo) and
    the share of the inked points where the second difference is zero (a third or more enlarged from 8x8, ~0 for a
    photo). Whole-array reductions, image by image (a batch is a few images): ~10 us for one (~20 us enlarged),
    where per-row reductions over a batch cost ~30 us."""
    n, side = len(batch), batch.shape[1]
    out = np.empty((n, 7 if enlarged else 5))
    for i, image in enumerate(batch.reshape(n, -1)):
        pixels = image.size
        mass = float(image.sum()) + 1e-6
        inked = int(np.count_nonzero(image))
        across = image[1:] - image[:-1]  # a row's last pixel and the next row's first are both margin
        down = image[side:] - image[:-side]
        if enlarged:
            out[i, 5:] = bends(image, across, down, side)
        edges = float(np.abs(across, out=across).sum()) + float(np.abs(down, out=down).sum())
        mid = int(np.count_nonzero(image > 0.1)) - int(np.count_nonzero(image >= 0.9))
        out[i, :5] = (
            mass / pixels,
            inked / pixels,
            np.count_nonzero(image > 0.5) / pixels,
            mid / max(inked, 1),
            edges / mass,
        )
        if enlarged:
            out[i, 5] /= edges + 1e-6
    return out


def bends(image: np.ndarray, across: np.ndarray, down: np.ndarray, side: int) -> tuple[float, float]:
    """The total second difference of a flattened image (across and down: its first differences), and the share
    of the points inside the ink (ink on both sides) where it is zero."""
    curves_across, curves_down = across[1:] - across[:-1], down[side:] - down[:-side]
    inside_across = (image[:-2] > 0) & (image[2:] > 0)
    inside_down = (image[: -2 * side] > 0) & (image[2 * side :] > 0)
    inside = int(np.count_nonzero(inside_across)) + int(np.count_nonzero(inside_down))
    flat = int(np.count_nonzero(inside_across & (np.abs(curves_across) < 1e-4)))
    flat += int(np.count_nonzero(inside_down & (np.abs(curves_down) < 1e-4)))
    total = float(np.abs(curves_across).sum()) + float(np.abs(curves_down).sum())
    return total, flat / max(inside, 1)


class Subspaces:
    """Per class, the mean and the main directions (PCA) of the training inputs the model gives that class: an
    input far from its predicted class's subspace (a digit sent to the fashion model is a "Trouser" that looks like
    no trouser) has a large residual. The artifact's `ood` file (npz: centres (classes, d), bases (classes, k, d));
    one matrix-vector product per input."""

    def __init__(self, centres: np.ndarray, bases: np.ndarray) -> None:
        self.centres, self.bases = centres.astype(np.float32), bases.astype(np.float32)

    @classmethod
    def load(cls, path: Any) -> Subspaces:
        with np.load(path) as data:
            return cls(data["centres"], data["bases"])

    @classmethod
    def fit(cls, x: np.ndarray, classes: np.ndarray, k: int) -> Subspaces:
        flat = x.reshape(len(x), -1).astype(np.float64)
        centres, bases = [], []
        for c in range(int(classes.max()) + 1):
            members = flat[classes == c]
            centre = members.mean(axis=0)
            _, _, vt = np.linalg.svd(members - centre, full_matrices=False)
            centres.append(centre)
            bases.append(vt[:k])
        return cls(np.stack(centres), np.stack(bases))

    def save(self, path: Any) -> None:
        np.savez_compressed(path, centres=self.centres, bases=self.bases)

    def residual(self, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Squared distance of each input from its class's subspace."""
        centred = x.reshape(len(x), -1) - self.centres[classes]
        projected = np.matmul(self.bases[classes], centred[:, :, None])[..., 0]
        return (centred * centred).sum(axis=1) - (projected * projected).sum(axis=1)
