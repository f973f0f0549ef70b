"""DistilBERT sentiment: int8 ONNX with the tokenizers package (no PyTorch when serving)."""

from app.families.distilbert.runtime import DistilBertRuntime
from app.families.family import Family

FAMILY = Family(
    name="distilbert",
    task="text-classification/sentiment",
    endpoint='POST /predict/sentiment {"model": "distilbert"}',
    install="pip install -e '.[distilbert]', then python -m training.train_transformer --sst2 download "
    "--imdb download  (fine-tunes distilbert-base-uncased from the Hugging Face Hub)",
    trainer="training.train_transformer",
    extra="distilbert",
    headline="sst2_validation_accuracy",  # what promotion compares (both versions scored on SST-2 validation)
    runtime=DistilBertRuntime,
)
