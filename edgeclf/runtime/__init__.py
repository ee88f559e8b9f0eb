"""The embeddable runtime: preprocessing contract and predictor.

Imports only numpy, Pillow and (when a model is loaded) onnxruntime or ai-edge-litert —
never TensorFlow, Keras, JAX, Typer or Rich.
"""

from .contract import Contract
from .errors import DependencyError, DeviceError, EdgeclfError, ImageError, ModelError
from .predictor import Prediction, Predictor, to_probabilities
from .preprocess import BatchResult, preprocess, preprocess_batch

__all__ = ["Contract", "preprocess", "preprocess_batch", "BatchResult",
           "Predictor", "Prediction", "to_probabilities",
           "EdgeclfError", "ImageError", "ModelError", "DeviceError", "DependencyError"]
