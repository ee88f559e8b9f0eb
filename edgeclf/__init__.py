"""edgeclf: fine-tune Keras image classifiers and ship them to the edge.

Importing the package is cheap: heavy dependencies (TensorFlow, Keras, JAX) are imported
lazily by the stages that need them. ``edgeclf.runtime`` is the embeddable predictor and
needs only numpy, Pillow and onnxruntime.
"""

__version__ = "0.1.0"
