"""Transfer learning from pretrained Keras backbones, on TensorFlow or JAX.

Importing this package does not import Keras: the backend is chosen by :func:`train`
(``TrainConfig.backend`` or ``KERAS_BACKEND``) before Keras loads.
"""

from __future__ import annotations

from .api import TrainResult, train
from .config import TrainConfig
from .loop import ProgressEvent
from .model import build_model, load_checkpoint

__all__ = ["TrainConfig", "TrainResult", "train", "build_model", "load_checkpoint",
           "ProgressEvent"]
