"""The embeddable runtime: preprocessing contract and predictor.

Imports only numpy, Pillow and (when a model is loaded) onnxruntime or ai-edge-litert —
never TensorFlow, Keras, JAX, Typer or Rich.
"""

from .contract import Contract
from .errors import DeviceError, EdgeclfError, ImageError, ModelError
from .preprocess import BatchResult, preprocess, preprocess_batch

__all__ = ["Contract", "preprocess", "preprocess_batch", "BatchResult",
           "EdgeclfError", "ImageError", "ModelError", "DeviceError"]
