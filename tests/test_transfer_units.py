"""Unit tests: the image-folder loader, the shared resize/convert step, and the TFLite importer's conversions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.families.image.preprocess import prepare_image, to_rgb
from tests.support.transfer_images import CLASSES, make_image_folder
from training.common.image_folder import load_image_folder, load_images
from training.mobilenet_tflite_import import (
    conv_kernel_to_keras,
    depthwise_kernel_to_keras,
    dequantize,
    folded_bn_weights,
)


def test_train_and_validation_folders(tmp_path: Path) -> None:
    data = load_image_folder(make_image_folder(tmp_path, per_class=3, validation_per_class=2))
    assert data.class_names == list(CLASSES)
    assert len(data.train.paths) == 6 and data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(data.validation.paths) == 4 and data.validation.labels.tolist() == [0, 0, 1, 1]
    assert all(p.parent.name == CLASSES[y] for p, y in zip(data.train.paths, data.train.labels, strict=True))
    images = load_images(data.validation.paths, 32)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8


def test_class_folders_get_a_stratified_split(tmp_path: Path) -> None:
    make_image_folder(tmp_path, per_class=10, validation_per_class=0)
    data = load_image_folder(tmp_path / "train", validation_split=0.2, seed=1)
    assert np.bincount(data.validation.labels).tolist() == [2, 2]
    assert np.bincount(data.train.labels).tolist() == [8, 8]
    assert not set(data.train.paths) & set(data.validation.paths)


def test_loader_errors(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    with pytest.raises(ValueError, match="at least two class folders"):
        load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no images"):
        load_image_folder(tmp_path)
    make_image_folder(tmp_path / "d", per_class=2, validation_per_class=1)
    (tmp_path / "d" / "validation" / "extra").mkdir()
    with pytest.raises(ValueError, match="different class folders"):
        load_image_folder(tmp_path / "d")


def test_prepare_image_converts_every_mode_the_same_way() -> None:
    rgba = Image.new("RGBA", (50, 30), (255, 0, 0, 0))  # fully transparent red -> white
    assert (prepare_image(rgba, 16) == 255).all()
    half = np.asarray(to_rgb(Image.new("RGBA", (4, 4), (0, 0, 0, 128))))
    assert 120 <= half[0, 0, 0] <= 135  # black at 50% on white
    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert (prepare_image(sixteen, 8) == 255).all()
    out = prepare_image(Image.new("L", (300, 100), 77), 24)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8 and (out == 77).all()


def test_dequantize_per_tensor_and_per_channel() -> None:
    q = np.array([[0, 128, 255], [10, 20, 30]], dtype=np.uint8)
    assert np.allclose(dequantize(q, np.array([0.5]), np.array([128])), (q.astype(float) - 128) * 0.5)
    per_channel = dequantize(q.astype(np.int8), np.array([0.1, 2.0]), np.array([0, 0]), axis=0)
    assert np.allclose(per_channel[0], q.astype(np.int8)[0] * 0.1) and np.allclose(per_channel[1], q[1] * 2.0)
    depthwise = dequantize(np.ones((1, 1, 1, 3), np.int8), np.array([1.0, 2.0, 3.0]), np.zeros(3), axis=3)
    assert depthwise.ravel().tolist() == [1.0, 2.0, 3.0]


def conv_reference(x: np.ndarray, kernel_ohwi: np.ndarray) -> np.ndarray:
    """'valid' convolution written against TFLite's [out, h, w, in] layout."""
    o, kh, kw, _ = kernel_ohwi.shape
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    y = np.zeros((x.shape[0], h, w, o), np.float32)
    for i in range(h):
        for j in range(w):
            y[:, i, j, :] = np.einsum("bhwc,ohwc->bo", x[:, i : i + kh, j : j + kw, :], kernel_ohwi)
    return y


def depthwise_reference(x: np.ndarray, kernel_1hwc: np.ndarray) -> np.ndarray:
    _, kh, kw, _ = kernel_1hwc.shape
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    y = np.zeros((x.shape[0], h, w, x.shape[3]), np.float32)
    for i in range(h):
        for j in range(w):
            y[:, i, j, :] = np.einsum("bhwc,hwc->bc", x[:, i : i + kh, j : j + kw, :], kernel_1hwc[0])
    return y


def test_kernel_layouts_compute_the_same_convolution() -> None:
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
    tflite_conv = rng.normal(size=(4, 3, 2, 3)).astype(np.float32)  # [out, h, w, in], non-square on purpose
    conv = keras.layers.Conv2D(4, (3, 2), use_bias=False)
    conv.build(x.shape)
    conv.set_weights([conv_kernel_to_keras(tflite_conv)])
    assert np.allclose(np.asarray(conv(x)), conv_reference(x, tflite_conv), atol=1e-5)

    tflite_depthwise = rng.normal(size=(1, 3, 2, 3)).astype(np.float32)  # [1, h, w, channels]
    depthwise = keras.layers.DepthwiseConv2D((3, 2), use_bias=False)
    depthwise.build(x.shape)
    depthwise.set_weights([depthwise_kernel_to_keras(tflite_depthwise)])
    assert np.allclose(np.asarray(depthwise(x)), depthwise_reference(x, tflite_depthwise), atol=1e-5)


def test_folded_batch_norm_adds_the_bias() -> None:
    import keras

    bias = np.array([0.5, -2.0, 3.0], np.float32)
    bn = keras.layers.BatchNormalization(epsilon=1e-3)
    bn.build((None, 3))
    bn.set_weights(folded_bn_weights(bias, 1e-3))
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    assert np.allclose(np.asarray(bn(x, training=False)), x + bias, atol=1e-6)
