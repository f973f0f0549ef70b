"""MiniLM sentiment: MiniLM-L6-H384 fine-tuned on SST-2 and IMDb, int8 ONNX with the tokenizers package."""

from app.families.family import Family
from app.families.minilm.runtime import MiniLMRuntime

FAMILY = Family(
    name="minilm",
    task="text-classification/sentiment",
    endpoint='POST /predict/sentiment {"model": "minilm"}',
    install="pip install -e '.[distilbert]' && python -m training.train_transformer --base minilm "
    "--sst2 download --imdb download",
    headline="sst2_validation_accuracy",  # what promotion compares (both versions scored on SST-2 validation)
    runtime=MiniLMRuntime,
)
