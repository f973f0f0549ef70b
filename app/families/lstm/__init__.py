"""LSTM sentiment (IMDb): the tokenizer saved in its artifact, ONNX runtime."""

from app.families.family import Family
from app.families.lstm.runtime import LstmSentimentRuntime

FAMILY = Family(
    name="lstm",
    task="text-classification/sentiment",
    endpoint='POST /predict/sentiment {"model": "lstm"}',
    install="pip install -e '.[train]', then python -m training.train_lstm_sentiment  (or --data path/to/imdb)",
    trainer="training.train_lstm_sentiment",
    runtime=LstmSentimentRuntime,
)
