"""Transfer learning (MobileNetV2 on an image folder): preprocessing shared with training, ONNX runtime."""

from app.families.family import Family
from app.families.image.runtime import ImageRuntime

FAMILY = Family(
    name="image",
    task="image-classification",
    endpoint="POST /predict/image",
    install="python -m training.train_transfer --data path/to/image-folder",
    runtime=ImageRuntime,
)
