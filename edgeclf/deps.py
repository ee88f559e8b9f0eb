"""Optional third-party converters, imported on demand with a clear error when missing
(shared by export and training's onnxruntime engine)."""

from __future__ import annotations

import logging
from typing import Any

from edgeclf.errors import ExportError

log = logging.getLogger(__name__)


def import_tf2onnx() -> Any:
    try:
        import tf2onnx
        import tf2onnx.convert
        import tf2onnx.tf_loader
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx: `pip install 'edgeclf[train]'`") from None
    try:  # tf2onnx 1.17 still uses aliases numpy 2 removed; Keras ships the fix
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        patch_tf2onnx()
    except ImportError:
        log.debug("keras' tf2onnx patch not found; converting without it")
    return tf2onnx
