"""The studies' networks and optimizers, built from a `Config`.

"cnn" is the digit CNN of training/train_digit.py (93,322 parameters without dropout), with optional Dropout
and L2. "plain" and "residual" are the depth study's CNNs: a conv stem, `depth` 3x3 conv layers of 16 filters
at 14x14, then a softmax layer on the flattened features. "residual" adds an identity shortcut around every
pair of those convs (pre-activation blocks: x + conv(relu(conv(relu(x))))), so both have the same layers and
parameters. All kernels use Keras' default Glorot-uniform initialisation and there is no batch normalisation:
with ReLU, each plain layer then halves the signal's variance, forward and backward, which is what lets
gradients vanish in the deep plain stack.
"""

from __future__ import annotations

from training.experiments.studies import Config

FILTERS = 16  # depth study: filters per conv layer; 16 keeps a 20-layer body at ~10 s per 10,000 images here


def build(config: Config):
    import keras
    from keras import layers

    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None

    def conv(filters: int, name: str, activation: str | None = "relu", padding: str = "valid"):
        return layers.Conv2D(
            filters, 3, activation=activation, padding=padding, kernel_regularizer=regularizer, name=name
        )

    def dense(units: int, name: str, activation: str):
        return layers.Dense(units, activation=activation, kernel_regularizer=regularizer, name=name)

    inputs = keras.Input((28, 28, 1), name="image")
    if config.arch == "cnn":
        x = conv(32, "conv1")(inputs)
        x = layers.MaxPooling2D(2)(x)
        x = conv(64, "conv2")(x)
        x = layers.MaxPooling2D(2)(x)
        x = conv(64, "conv3")(x)
        x = layers.Flatten()(x)
        if config.dropout:
            x = layers.Dropout(config.dropout)(x)
        x = dense(64, "dense1", "relu")(x)
        if config.dropout:
            x = layers.Dropout(config.dropout)(x)
    else:
        if config.arch == "residual" and config.depth % 2:
            raise ValueError("a residual body needs an even depth (blocks of two convs)")
        x = conv(FILTERS, "stem", padding="same")(inputs)
        x = layers.MaxPooling2D(2)(x)
        for i in range(1, config.depth + 1, 2 if config.arch == "residual" else 1):
            if config.arch == "plain":
                x = conv(FILTERS, f"conv{i:02d}", padding="same")(x)
            else:
                y = layers.Activation("relu")(x)
                y = conv(FILTERS, f"conv{i:02d}", padding="same")(y)
                y = conv(FILTERS, f"conv{i + 1:02d}", activation=None, padding="same")(y)
                x = layers.Add()([x, y])
        if config.arch == "residual":
            x = layers.Activation("relu")(x)
        x = layers.Flatten()(x)
    outputs = dense(10, "probabilities", "softmax")(x)
    name = config.arch if config.arch == "cnn" else f"{config.arch}_{config.depth}"
    return keras.Model(inputs, outputs, name=name)


def optimizer(config: Config):
    import keras

    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.learning_rate)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate)
    return keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)


def weight_layers(model) -> list:
    """The layers with a kernel, input to output: the depth study records one gradient norm for each."""
    return [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
