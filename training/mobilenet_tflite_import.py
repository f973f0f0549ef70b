"""Turn an int8/uint8 ImageNet MobileNetV2 TFLite file into float Keras MobileNetV2 weights (.weights.h5).

    python -m training.mobilenet_tflite_import ../shared/data/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite \
        --out ~/.cache/deepserve/mobilenet_v2_1.0_224_imagenet.weights.h5

Users with internet get the same network from `keras.applications.MobileNetV2(weights="imagenet")`; this is
for machines that only have the TFLite build. What the import does:

- dequantises every weight, per tensor (TF1 slim: uint8, one scale, non-zero zero point) or per output channel
  (TF2 post-training quantisation: int8): w = (q - zero_point) * scale; biases are int32 with zero point 0;
- TFLite folded batch norm into each conv's kernel and bias, so every Keras BatchNormalization becomes the
  identity plus the folded bias: gamma = 1, beta = bias, moving_mean = 0, moving_variance = 1 - epsilon;
- reorders kernels: conv [out, h, w, in] -> Keras [h, w, in, out]; depthwise [1, h, w, c] -> [h, w, c, 1];
- maps the 1001-class head (index 0 = background) onto Keras' 1000-class `predictions` Dense layer.

The 52 convolutions are matched in graph order, which is the same in both builds and in Keras.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_TFLITE = Path("../shared/data/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite")
DEFAULT_OUT = Path("~/.cache/deepserve/mobilenet_v2_1.0_224_imagenet.weights.h5").expanduser()
BN_EPSILON = 1e-3  # Keras MobileNetV2's BatchNormalization epsilon


@dataclass
class TfliteConv:
    """One dequantised TFLite convolution: kernel in TFLite layout, float bias, and its op kind."""

    op: str  # "CONV_2D" or "DEPTHWISE_CONV_2D"
    name: str
    kernel: np.ndarray  # CONV_2D [out, h, w, in]; DEPTHWISE_CONV_2D [1, h, w, channels]
    bias: np.ndarray  # [out]


def dequantize(q: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int = 0) -> np.ndarray:
    """(q - zero_point) * scale, with one scale for the tensor or one per slice along `axis`."""
    q = q.astype(np.float64)
    scales = np.asarray(scales, dtype=np.float64)
    zero_points = np.asarray(zero_points, dtype=np.float64)
    if scales.size == 0:  # not quantised: already float
        return q.astype(np.float32)
    if scales.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return ((q - zero_points) * scales).astype(np.float32)


def conv_kernel_to_keras(kernel: np.ndarray) -> np.ndarray:
    """TFLite CONV_2D [out, h, w, in] -> Keras Conv2D [h, w, in, out]."""
    return np.transpose(kernel, (1, 2, 3, 0))


def depthwise_kernel_to_keras(kernel: np.ndarray) -> np.ndarray:
    """TFLite DEPTHWISE_CONV_2D [1, h, w, channels] (multiplier 1) -> Keras DepthwiseConv2D [h, w, channels, 1]."""
    if kernel.shape[0] != 1:
        raise ValueError(f"expected a depthwise kernel [1, h, w, c], got {kernel.shape}")
    return np.transpose(kernel, (1, 2, 3, 0))


def folded_bn_weights(bias: np.ndarray, epsilon: float = BN_EPSILON) -> list[np.ndarray]:
    """BatchNormalization weights [gamma, beta, moving_mean, moving_variance] that compute x + bias."""
    n = bias.shape[0]
    return [
        np.ones(n, np.float32),
        bias.astype(np.float32),
        np.zeros(n, np.float32),
        np.full(n, 1.0 - epsilon, np.float32),
    ]


def tflite_interpreter(path: Path, preserve_all_tensors: bool = False, delegates: bool = False):
    """A TFLite interpreter; without the XNNPACK delegate (default) every op and constant tensor stays visible."""
    try:
        import tensorflow as tf

        interpreter_cls, resolver = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    except AttributeError:  # TensorFlow without tf.lite: the LiteRT package has the same interpreter.
        from ai_edge_litert import interpreter as litert

        interpreter_cls, resolver = litert.Interpreter, litert.OpResolverType
    interpreter = interpreter_cls(
        model_path=str(path),
        experimental_op_resolver_type=resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=preserve_all_tensors,
    )
    interpreter.allocate_tensors()
    return interpreter


def read_tflite_convs(path: Path) -> list[TfliteConv]:
    """Every CONV_2D / DEPTHWISE_CONV_2D in graph order, dequantised to float32."""
    interpreter = tflite_interpreter(path)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}

    def tensor(index: int) -> np.ndarray:
        q = details[index]["quantization_parameters"]
        return dequantize(interpreter.get_tensor(index), q["scales"], q["zero_points"], q["quantized_dimension"])

    convs = []
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            _, w, b = op["inputs"][:3]
            convs.append(TfliteConv(op["op_name"], details[w]["name"], tensor(w), tensor(b)))
    return convs


def keras_conv_layers(model) -> list:
    """Keras MobileNetV2's convolutions (and the Dense head) in graph order."""
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def assign(model, convs: list[TfliteConv]) -> None:
    """Copy dequantised TFLite convolutions into a Keras MobileNetV2 (include_top=True, 1000 classes)."""
    import keras

    layers = keras_conv_layers(model)
    if len(convs) != len(layers):
        raise ValueError(f"TFLite has {len(convs)} convolutions, Keras MobileNetV2 has {len(layers)} to fill")
    by_name = {layer.name: layer for layer in model.layers}
    for layer, conv in zip(layers, convs, strict=True):
        if isinstance(layer, keras.layers.Dense):
            if conv.op != "CONV_2D" or conv.kernel.shape[0] != layer.units + 1:
                raise ValueError(f"head {conv.name} {conv.kernel.shape} does not fit {layer.name} ({layer.units})")
            # 1001 ImageNet classes with background at 0 -> Keras' 1000.
            layer.set_weights([conv.kernel[1:, 0, 0, :].T, conv.bias[1:]])
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            if conv.op != "DEPTHWISE_CONV_2D":
                raise ValueError(f"{layer.name} is depthwise, TFLite {conv.name} is {conv.op}")
            kernel = depthwise_kernel_to_keras(conv.kernel)
        else:
            if conv.op != "CONV_2D":
                raise ValueError(f"{layer.name} is a conv, TFLite {conv.name} is {conv.op}")
            kernel = conv_kernel_to_keras(conv.kernel)
        expected = tuple(layer.get_weights()[0].shape)
        if kernel.shape != expected:
            raise ValueError(f"{conv.name} {kernel.shape} does not fit {layer.name} {expected}")
        layer.set_weights([kernel])
        bn = by_name[_bn_name(layer.name)]
        bn.set_weights(folded_bn_weights(conv.bias, bn.epsilon))


def _bn_name(conv_name: str) -> str:
    """Keras MobileNetV2 names each conv's batch norm after it: Conv1 -> bn_Conv1, block_1_expand -> ..._BN."""
    return "bn_Conv1" if conv_name == "Conv1" else ("Conv_1_bn" if conv_name == "Conv_1" else f"{conv_name}_BN")


def import_tflite(tflite_path: Path, out: Path | None = None):
    """A float Keras MobileNetV2 (224x224, alpha 1.0, ImageNet head) with the TFLite file's weights; saved to `out`."""
    import keras

    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, include_top=True, weights=None)
    assign(model, read_tflite_convs(Path(tflite_path)))
    if out is not None:
        out = Path(out).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(out)
    return model


def keras_op_layers(model, conv) -> list:
    """The Keras layers that compute one TFLite conv op: [ZeroPadding2D], the conv, its batch norm, [ReLU6]."""
    import keras

    layers = model.layers
    i = layers.index(conv)
    chain = [conv, layers[i + 1]]
    if isinstance(layers[i - 1], keras.layers.ZeroPadding2D):
        chain.insert(0, layers[i - 1])
    if isinstance(layers[i + 2], keras.layers.ReLU):
        chain.append(layers[i + 2])
    return chain


def layer_errors(path: Path, model, image: np.ndarray) -> dict[str, float]:
    """Per TFLite conv op: the imported Keras layers fed TFLite's own input activation for `image` (uint8 RGB
    224x224), max |Keras - TFLite| in units of the op's output quantisation step.

    TFLite rounds every activation to its int8 grid, so a faithful import is off by at most rounding (< 1 step)
    at every layer, while a wrong layout, padding or bias is off by many steps.
    """
    import keras

    interpreter = tflite_interpreter(path, preserve_all_tensors=True)  # keep the intermediate activations
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], _quantize_input(interpreter, image))
    interpreter.invoke()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}

    def activation(index: int) -> tuple[np.ndarray, float]:
        scale, zero = details[index]["quantization"]
        return dequantize(interpreter.get_tensor(index), scale, zero), scale

    ops = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    errors = {}
    for op, layer in zip(ops, keras_conv_layers(model), strict=True):
        x, _ = activation(op["inputs"][0])
        reference, scale = activation(op["outputs"][0])
        if isinstance(layer, keras.layers.Dense):  # the head: logits before softmax, background dropped
            kernel, bias = layer.get_weights()
            ours, reference = x.reshape(1, -1) @ kernel + bias, reference.reshape(1, -1)[:, 1:]
        else:
            ours = x
            for part in keras_op_layers(model, layer):
                ours = part(ours, training=False)
        errors[layer.name] = float(np.abs(np.asarray(ours) - reference).max() / scale)
    return errors


def _quantize_input(interpreter, image: np.ndarray) -> np.ndarray:
    """A uint8 RGB image as the interpreter's input tensor: [-1, 1] floats, or their uint8/int8 codes."""
    inp = interpreter.get_input_details()[0]
    x = image[None].astype(np.float32) / 127.5 - 1.0
    if inp["dtype"] == np.float32:
        return x
    scale, zero = inp["quantization"]
    return np.clip(np.round(x / scale + zero), *_range(inp["dtype"])).astype(inp["dtype"])


def tflite_input_values(path: Path, images: np.ndarray) -> np.ndarray:
    """The [-1, 1] values the TFLite model really sees for uint8 RGB images: its 8-bit input codes, dequantised.

    They differ from x / 127.5 - 1 by up to half an input step (the TF1 build's scale is 1/128), so comparing the
    imported float model with TFLite on these values leaves only the models' own differences."""
    interpreter = tflite_interpreter(path)
    inp = interpreter.get_input_details()[0]
    codes = np.concatenate([_quantize_input(interpreter, image) for image in images])
    if inp["dtype"] == np.float32:
        return codes
    return dequantize(codes, *inp["quantization"])


def tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """The TFLite model's 1001 ImageNet probabilities for uint8 RGB images [n, 224, 224, 3] (reference for tests)."""
    interpreter = tflite_interpreter(path, delegates=True)  # XNNPACK: the fast path TFLite users run
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        interpreter.set_tensor(inp["index"], _quantize_input(interpreter, image))
        interpreter.invoke()
        y = interpreter.get_tensor(outp["index"])[0]
        if outp["dtype"] != np.float32:
            y = dequantize(y, *outp["quantization"])
        results.append(y)
    return np.stack(results)


def _range(dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return info.min, info.max


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tflite", type=Path, nargs="?", default=DEFAULT_TFLITE, help="MobileNetV2 1.0 224 .tflite file")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .weights.h5 file")
    p.add_argument("--check", type=Path, help="an image: report how far each imported layer is from TFLite on it")
    args = p.parse_args(argv)
    if not str(args.out).endswith(".weights.h5"):
        raise ValueError("--out must end with .weights.h5 (Keras' weights format)")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    model = import_tflite(args.tflite, args.out)
    out = Path(args.out).expanduser()
    print(f"wrote {out} from {args.tflite}")
    if args.check:
        from PIL import Image

        from app.families.image.preprocess import prepare_image

        errors = layer_errors(args.tflite, model, prepare_image(Image.open(args.check), 224))
        worst = max(errors, key=errors.get)
        print(f"{len(errors)} layers vs TFLite on {args.check}: worst {worst}, {errors[worst]:.2f} quantisation steps")
    return out


if __name__ == "__main__":
    main()
