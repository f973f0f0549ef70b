"""The model families DeepServe knows, with how to install each: shown when one is not installed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    task: str
    endpoint: str
    install: str


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "digit",
            "image-classification/digit",
            "POST /predict/digit",
            "python -m training.train_digit  (or --data path/to/mnist.npz)",
        ),
        Family(
            "image",
            "image-classification/transfer",
            "POST /predict/image",
            "python -m training.train_transfer --data path/to/image-folder",
        ),
        Family(
            "lstm",
            "text-classification/sentiment",
            'POST /predict/sentiment {"model": "lstm"}',
            "python -m training.train_lstm_sentiment  (or --data path/to/imdb)",
        ),
        Family(
            "distilbert",
            "text-classification/sentiment",
            'POST /predict/sentiment {"model": "distilbert"}',
            "python -m training.train_distilbert  (downloads distilbert-base-uncased-finetuned-sst-2-english)",
        ),
        Family(
            "anomaly",
            "anomaly-detection/timeseries",
            "POST /predict/anomaly",
            "python -m training.train_anomaly  (or --data path/to/NAB)",
        ),
    ]
}
