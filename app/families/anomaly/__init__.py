"""Autoencoder anomaly scores for a series: scoring shared with training, ONNX runtime."""

from app.families.anomaly.runtime import AnomalyRuntime
from app.families.family import Family

FAMILY = Family(
    name="anomaly",
    task="anomaly-detection/timeseries",
    endpoint="POST /predict/anomaly",
    install="python -m training.train_anomaly  (or --data path/to/NAB)",
    runtime=AnomalyRuntime,
)
