"""Autoencoder anomaly scores for a series: scoring shared with training, ONNX runtime."""

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
