"""Fashion-MNIST (10 kinds of garment): photo-to-item preprocessing shared with training, ONNX runtime.

Served by POST /predict/image?model=fashion (the image-classification task's route)."""

from app.families.family import Family
from app.families.fashion.runtime import FashionRuntime

FAMILY = Family(
    name="fashion",
    task="image-classification",
    endpoint="POST /predict/image?model=fashion",
    install="pip install -e '.[train]', then python -m training.train_fashion  "
    "(or --data /usr/share/datasets/fashion-mnist)",
    trainer="training.train_fashion",
    runtime=FashionRuntime,
)
