"""What the format exporters of one ``edgeclf export`` share.

:class:`ExportContext` holds the float32 model, its metadata and contract, and a memo of the
intermediates that are made once per export and reused by several formats (the traced
SavedModel, the float ONNX graph, the int8 calibration set). The format modules build those
intermediates themselves through :meth:`ExportContext.memo`, so this module imports none of
them and every format module imports only downward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from edgeclf.runtime.contract import Contract

T = TypeVar("T")


@dataclass
class ExportContext:
    model: Any
    size: tuple[int, int]
    meta: dict
    contract: Contract
    work_dir: Path
    split_path: Path
    opset: int
    int8_io: str
    calibration_size: int
    seed: int
    ort_web: str | None = None          # onnxruntime-web tarball or folder (format web)
    onnx_int8: str = "auto"             # ONNX int8 weights: auto | u8s8 | u8u8
    _memo: dict = field(default_factory=dict)

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """``make()`` once per export; later calls return the first result."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]
