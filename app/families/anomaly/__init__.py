"""Anomaly detection for a series: the per-series nearest-context detector (the default, any series; its artifact
is its settings) and the autoencoder trained on NAB nyc_taxi (scoring shared with training, ONNX runtime)."""

from app.families.anomaly.context_runtime import NearestContextRuntime
from app.families.anomaly.runtime import AnomalyRuntime
from app.families.family import Family

FAMILY = Family(
    name="anomaly",
    task="anomaly-detection/timeseries",
    endpoint="POST /predict/anomaly",
    install="pip install -e '.[train]', then python -m training.train_anomaly  (or --data path/to/NAB)",
    trainer="training.train_anomaly",
    headline="windows_detected",
    runtime=AnomalyRuntime,
)

NEAREST_CONTEXT = Family(
    name="nearest_context",
    task="anomaly-detection/timeseries",
    endpoint="POST /predict/anomaly, POST /anomaly/streams/{id}/points",
    install="restore models/nearest_context (its settings, chosen by python -m bench.anomaly_defaults)",
    headline="nab_standard",
    runtime=NearestContextRuntime,
)
