"""Optimizers and the learning-rate schedule (cosine decay with linear warmup)."""

from __future__ import annotations

from typing import Any

from edgeclf.errors import ConfigError

#: The cosine decays to this fraction of the peak learning rate.
COSINE_FLOOR = 0.01
#: Warmup starts at this fraction of the peak learning rate.
WARMUP_START = 0.1


def make_schedule(lr: float, *, total_steps: int, warmup_steps: int, kind: str) -> Any:
    import keras

    if kind == "constant" or total_steps <= 1:
        return float(lr)
    warmup = max(0, min(int(warmup_steps), total_steps - 1))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr * WARMUP_START if warmup else lr,
        decay_steps=max(1, total_steps - warmup), alpha=COSINE_FLOOR,
        warmup_target=lr if warmup else None, warmup_steps=warmup)


def make_optimizer(name: str, learning_rate: Any, *, momentum: float = 0.9,
                   nesterov: bool = True, weight_decay: float | None = None) -> Any:
    import keras

    wd = weight_decay or None
    opt = keras.optimizers
    if name == "adam":
        optimizer = opt.Adam(learning_rate, weight_decay=wd)
    elif name == "adamw":
        optimizer = opt.AdamW(learning_rate, weight_decay=wd or 0.004)
    elif name == "sgd":
        optimizer = opt.SGD(learning_rate, momentum=momentum, nesterov=nesterov,
                            weight_decay=wd)
    elif name == "rmsprop":
        optimizer = opt.RMSprop(learning_rate, momentum=momentum, weight_decay=wd)
    elif name == "adadelta":
        optimizer = opt.Adadelta(learning_rate, weight_decay=wd)
    elif name == "adagrad":
        optimizer = opt.Adagrad(learning_rate, weight_decay=wd)
    else:
        raise ConfigError(f"unknown optimizer {name!r}")
    if wd:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def current_lr(optimizer: Any) -> float:
    import numpy as np

    lr = optimizer.learning_rate
    try:
        return float(np.asarray(lr))
    except (TypeError, ValueError):
        return float("nan")


def compile_model(model: Any, optimizer: Any, *, label_smoothing: float,
                  jit_compile: bool | str | None = None) -> None:
    """Categorical cross-entropy (one-hot labels, optional smoothing) + accuracy.

    ``jit_compile=None``: XLA under JAX (one compiled step per phase); plain graphs under
    TensorFlow, whose XLA compile of a backbone's backward pass costs more on a CPU than
    it saves over a short run.
    """
    import keras

    if jit_compile is None:
        jit_compile = "auto" if keras.backend.backend() == "jax" else False
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=["accuracy"], jit_compile=jit_compile)
