"""DistilBERT sentiment: the shared transformer runtime, under the manifest name its artifacts carry."""

from app.families.transformer_runtime import TransformerSentimentRuntime


class DistilBertRuntime(TransformerSentimentRuntime):
    kind = "distilbert-onnx"
