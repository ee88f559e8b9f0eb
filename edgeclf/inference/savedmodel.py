"""A SavedModel's ``serving_default`` signature as a function of uint8 pixels: the one way
eval, parity and bench run an exported SavedModel (TensorFlow imported when called)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.errors import ModelError


@dataclass(frozen=True)
class ServingFunction:
    """``run(uint8 NHWC batch) -> (N, C) probabilities`` and the input size it declares."""

    run: Callable[[np.ndarray], np.ndarray]
    input_size: tuple[int | None, int | None]      # (H, W); None where the signature is open
    output: str                                    # the output read: the probabilities
    keep: Any = None                               # the loaded SavedModel, kept alive


def load_serving_function(path: str | Path) -> ServingFunction:
    """Load ``path``'s ``serving_default``: one input (the pixels, cast to its dtype inside
    ``run``), and its only output, or of several the one named like probabilities."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures.get("serving_default")
    if sig is None:
        raise ModelError(f"{path}: SavedModel has no 'serving_default' signature")
    specs = sig.structured_input_signature[1]
    if len(specs) != 1:
        raise ModelError(f"{path}: serving_default takes {len(specs)} inputs "
                         f"({', '.join(sorted(specs))}); an edgeclf model takes one")
    (name, spec), = specs.items()
    outs = list(sig.structured_outputs)
    key = outs[0] if len(outs) == 1 else next((o for o in outs if "prob" in o.lower()), None)
    if key is None:
        raise ModelError(f"{path}: serving_default has outputs {outs}; none is named "
                         "like class probabilities")
    dtype = spec.dtype.as_numpy_dtype

    def run(x: np.ndarray) -> np.ndarray:
        return sig(**{name: tf.constant(x.astype(dtype, copy=False))})[key].numpy()

    size = tuple(spec.shape[1:3])
    return ServingFunction(run=run, output=key, keep=(loaded, sig),
                           input_size=(size[0], size[1]) if len(size) == 2 else (None, None))
