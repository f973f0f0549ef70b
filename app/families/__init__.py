"""Every model family the service knows: one package each, registered here with one line.

A family's package holds its Family (name, task, endpoint, install command, runtime), its runtime and the
preprocessing it shares with training. Nothing here imports the web layer.
"""

from __future__ import annotations

from app.config import Settings
from app.families import anomaly, digit, distilbert, fashion, image, lstm, minilm
from app.families.family import Family
from app.families.runtime import Runtime
from app.manifest import ManifestEntry

# The first registered family of a task that is ready is that task's default model (minilm, distilbert, then lstm;
# nearest_context, then the anomaly autoencoder).
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in [
        digit.FAMILY,
        image.FAMILY,
        fashion.FAMILY,
        minilm.FAMILY,
        distilbert.FAMILY,
        lstm.FAMILY,
        anomaly.NEAREST_CONTEXT,
        anomaly.FAMILY,
    ]
}
# A task whose requests without a model name always go to one model, ready or not (its answer says how to install
# it): another family's labels would surprise its clients. Other tasks take their first ready family.
FIXED_DEFAULTS = {"image-classification": "image"}
RUNTIMES: dict[str, type[Runtime]] = {family.runtime.kind: family.runtime for family in FAMILIES.values()}


def open_runtime(entry: ManifestEntry, settings: Settings) -> Runtime:
    """The runtime for a manifest entry, its artifact loaded from settings.models_dir (ValueError for a runtime
    no family serves; the runtime's own error for a missing or corrupt file). The registry warms it up; benchmarks
    and evaluation scripts use it as it is."""
    runtime_cls = RUNTIMES.get(entry.runtime)
    if runtime_cls is None:
        raise ValueError(f"unknown runtime '{entry.runtime}' (known: {sorted(RUNTIMES)})")
    runtime = runtime_cls(entry, settings.models_dir / entry.path, settings)
    runtime.load()
    return runtime
