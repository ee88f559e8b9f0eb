"""The classifier: ``image`` (uint8-valued RGB as float32) -> normalisation -> backbone(s)
-> pooled ``features`` -> head -> float32 softmax ``probabilities``.

Only built-in Keras layers, so a checkpoint loads with ``safe_mode=True`` under any backend
and exports to SavedModel/ONNX/TFLite. Each backbone is a nested Keras application named
``backbone_<name>``; freezing and unfreezing act on those.
"""

from __future__ import annotations

import logging
from typing import Any

from edgeclf.backbones import Backbone, check_image_size, normalisation_layers
from edgeclf.errors import ConfigError, ModelError
from edgeclf.inference.checkpoint import load_checkpoint  # noqa: F401 - edgeclf.train's API
from edgeclf.weights import load_pretrained

log = logging.getLogger(__name__)

INPUT_NAME = "image"
FEATURES = "features"
OUTPUT_NAME = "probabilities"
BACKBONE_PREFIX = "backbone_"
MLP_UNITS = 128


def build_model(members: list[Backbone], num_classes: int, *, image_size: int,
                weights: str = "none", head: str = "linear", dropout: float = 0.2,
                mixed_precision: str | None = None) -> Any:
    """Build (and load pretrained weights into) the classifier; backbones start frozen."""
    import keras

    if num_classes < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
    for spec in members:
        check_image_size(spec, image_size)
    if len(members) > 1 and str(weights).lower() not in ("imagenet", "none"):
        raise ConfigError("an ensemble takes --weights imagenet or none (one file cannot "
                          "hold weights for several backbones)")
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(f"mixed_{mixed_precision}")
    try:
        inputs = keras.Input((image_size, image_size, 3), dtype="float32", name=INPUT_NAME)
        pooled = []
        for spec in members:
            x = inputs
            for layer in normalisation_layers(spec, spec.name):
                x = layer(x)
            backbone = spec.build(image_size, name=f"{BACKBONE_PREFIX}{spec.name}")
            load_pretrained(backbone, spec, weights, image_size)
            backbone.trainable = False
            x = backbone(x)
            name = FEATURES if len(members) == 1 else f"pool_{spec.name}"
            pooled.append(keras.layers.GlobalAveragePooling2D(name=name)(x))
        features = (pooled[0] if len(pooled) == 1 else
                    keras.layers.Concatenate(name=FEATURES)(pooled))
        outputs = add_head(features, num_classes, head=head, dropout=dropout)
        model = keras.Model(inputs, outputs, name="edgeclf_" + "_".join(m.name for m in members))
    finally:
        keras.config.set_dtype_policy(previous)
    return model


def add_head(x: Any, num_classes: int, *, head: str, dropout: float) -> Any:
    """The head on pooled features; the same layer names serve the linear-probe model."""
    import keras

    if head == "mlp":    # the Simpsons tutorial's head
        x = keras.layers.BatchNormalization(name="head_bn_1")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout_1")(x)
        x = keras.layers.Dense(MLP_UNITS, activation="relu", name="head_dense")(x)
        x = keras.layers.BatchNormalization(name="head_bn_2")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout_2")(x)
    elif head == "linear":
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    else:
        raise ConfigError(f"head must be linear or mlp, got {head!r}")
    x = keras.layers.Dense(num_classes, name="head_logits", dtype="float32")(x)
    return keras.layers.Activation("softmax", dtype="float32", name=OUTPUT_NAME)(x)


def build_head_model(feature_dim: int, num_classes: int, *, head: str, dropout: float) -> Any:
    """``features`` -> head: what the linear probe trains on cached features."""
    import keras

    inputs = keras.Input((feature_dim,), dtype="float32", name=FEATURES)
    return keras.Model(inputs, add_head(inputs, num_classes, head=head, dropout=dropout),
                       name="edgeclf_head")


def feature_model(model: Any) -> Any:
    import keras

    return keras.Model(model.inputs, model.get_layer(FEATURES).output, name="edgeclf_features")


def head_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers
            if (layer.name.startswith("head_") or layer.name == OUTPUT_NAME) and layer.weights]


def copy_head(src: Any, dst: Any) -> int:
    """Copy head weights between the head model and the full model, by layer name."""
    target = {layer.name: layer for layer in head_layers(dst)}
    n = 0
    for layer in head_layers(src):
        target[layer.name].set_weights(layer.get_weights())
        n += 1
    if n != len(target):
        raise ModelError(f"head transplant copied {n} of {len(target)} layers")
    return n


def backbones_of(model: Any) -> list[Any]:
    return [layer for layer in model.layers if layer.name.startswith(BACKBONE_PREFIX)]


def parse_unfreeze(model: Any, unfreeze: str) -> int | None:
    """Validate ``--unfreeze`` against the model: returns N (None for ``all``)."""
    if unfreeze == "all":
        return None
    n = int(unfreeze)
    smallest = min(len(b.layers) for b in backbones_of(model))
    if n < 1 or n > smallest:
        raise ConfigError(f"--unfreeze {n} is larger than the backbone: it has {smallest} "
                          f"layers (use a number from 1 to {smallest}, or 'all')")
    return n


def unfreeze(model: Any, n_layers: int | None) -> int:
    """Make the last ``n_layers`` of each backbone trainable (all when None), keeping every
    BatchNormalization frozen (so it runs in inference mode). Returns trainable layers."""
    import keras

    count = 0
    for backbone in backbones_of(model):
        backbone.trainable = True
        layers = backbone.layers
        cut = 0 if n_layers is None else len(layers) - n_layers
        for i, layer in enumerate(layers):
            trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = trainable
            count += int(trainable and bool(layer.weights))
    return count
