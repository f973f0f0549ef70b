"""The digit CNN (MNIST): MNIST-style preprocessing shared with training, ONNX runtime."""

from app.families.digit.runtime import DigitRuntime
from app.families.family import Family

FAMILY = Family(
    name="digit",
    task="image-classification/digit",
    endpoint="POST /predict/digit",
    install="pip install -e '.[train]', then python -m training.train_digit  (or --data path/to/mnist.npz)",
    trainer="training.train_digit",
    runtime=DigitRuntime,
)
