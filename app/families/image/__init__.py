"""Transfer learning (MobileNetV2 on an image folder): preprocessing shared with training, ONNX runtime."""

from app.families.family import Family
from app.families.image.runtime import TransferRuntime

FAMILY = Family(
    name="image",
    task="image-classification",
    endpoint="POST /predict/image",
    install="pip install -e '.[train]', then python -m training.train_transfer --data path/to/image-folder",
    trainer="training.train_transfer",
    headline="validation_accuracy",
    runtime=TransferRuntime,
)
