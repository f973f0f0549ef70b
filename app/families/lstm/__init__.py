"""LSTM sentiment (IMDb): the tokenizer saved in its artifact, ONNX runtime."""

from app.families.family import Family
from app.families.lstm.runtime import LstmSentimentRuntime

FAMILY = Family(
    name="lstm",
    task="text-classification/sentiment",
    endpoint='POST /predict/sentiment {"model": "lstm"}',
    install="python -m training.train_lstm_sentiment  (or --data path/to/imdb)",
    runtime=LstmSentimentRuntime,
)
