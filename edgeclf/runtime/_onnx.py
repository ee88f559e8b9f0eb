"""The onnxruntime backend (imported only when an ONNX model is loaded).

Devices: ``"cpu"`` runs ``CPUExecutionProvider``; ``"gpu"`` needs ``CUDAExecutionProvider``
(``pip install onnxruntime-gpu``) and uses ``TensorrtExecutionProvider`` first where that is
available too (fp32, engines cached under ``$EDGECLF_CACHE_DIR/tensorrt`` or
``~/.cache/edgeclf/tensorrt``; if TensorRT cannot build the session, CUDA alone is used); it
raises :class:`DeviceError` when no GPU provider is usable, and checks after the session is
built that a GPU provider really runs (onnxruntime otherwise falls back to CPU with only a
log line). ``"auto"`` tries the GPU providers and falls back to CPU; the
provider that really runs is ``OnnxBackend.provider``.

Session options: all graph optimisations, ``intra_op_num_threads = threads`` (None: one per
core, onnxruntime's default), one inter-op thread, sequential execution, warnings only;
intra-op threads never spin (:data:`DEFAULT_SESSION_CONFIG`; ``session_config=`` changes it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ._backend import Backend, TensorInfo, check_classifier_io, dequantize, feed
from .errors import DependencyError, DeviceError, ModelError
from .metadata import from_onnx_props

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
DEVICES = ("cpu", "gpu", "auto")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(double)": np.float64}


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise DependencyError("running ONNX models needs onnxruntime: pip install onnxruntime "
                              f"(or onnxruntime-gpu) ({e})") from None
    return ort


def _trt_cache() -> str:
    root = os.environ.get("EDGECLF_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeclf")
    return os.path.join(root, "tensorrt")


def _providers(ort, device: str) -> list:
    if device not in DEVICES:
        raise DeviceError(f"device must be one of {DEVICES}, got {device!r}")
    available = ort.get_available_providers()
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == "gpu" and "CUDAExecutionProvider" not in available:
        raise DeviceError("device='gpu' needs onnxruntime's CUDAExecutionProvider, which this "
                          f"onnxruntime does not have (available: {', '.join(available)}); "
                          "install onnxruntime-gpu with CUDA, or use device='auto'")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    out: list = []
    if "TensorrtExecutionProvider" in gpu:
        cache = _trt_cache()
        os.makedirs(cache, exist_ok=True)
        out.append(("TensorrtExecutionProvider", {"trt_engine_cache_enable": "True",
                                                  "trt_engine_cache_path": cache}))
    if "CUDAExecutionProvider" in gpu:
        out.append("CUDAExecutionProvider")
    return out + ["CPUExecutionProvider"]


def _name(provider) -> str:
    return provider[0] if isinstance(provider, tuple) else provider


def _create(ort, path: Path, so, providers: list):
    """An InferenceSession; if TensorRT fails to build it, retry without TensorRT."""
    try:
        return ort.InferenceSession(os.fspath(path), so, providers=providers)
    except Exception:
        rest = [p for p in providers if _name(p) != "TensorrtExecutionProvider"]
        if rest == providers:
            raise
        log.warning("TensorRT could not build a session for %s; using CUDA", path.name)
        return ort.InferenceSession(os.fspath(path), so, providers=rest)


#: session config entries the predictor sets (``session_config=`` adds to / overrides them).
#: Intra-op threads never spin: they block when out of work. Measured on this project's
#: 2-core machine shared with other jobs (batch 1, 2 threads, MobileNetV2, ops taking turns
#: in one process; benchmarks/results/predictor-levers-*): never spinning 1.5-1.7x faster
#: than spinning within a run (a spinning thread takes the time slices its sibling needs),
#: and it burns no CPU of the host between or during waits. On an idle dedicated machine
#: spinning within a run was ~10% faster (bench-cpu-*T2125.md): pass
#: ``session_config={"session.intra_op.allow_spinning": "1"}`` there.
DEFAULT_SESSION_CONFIG = {"session.intra_op.allow_spinning": "0"}


def _session_options(ort, threads: int | None, config: dict[str, str] | None = None):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(threads or 0)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    entries = {**DEFAULT_SESSION_CONFIG, **(config or {})}
    if entries.get("session.intra_op.allow_spinning") == "1":
        # spin within a run only: an embedded predictor burns no CPU between requests
        entries.setdefault("session.force_spinning_stop", "1")
    for key, value in entries.items():
        try:
            so.add_session_config_entry(str(key), str(value))
        except Exception as e:  # noqa: BLE001 - onnxruntime refuses an entry it cannot take
            raise ModelError(f"onnxruntime refused session config {key}={value!r}: {e}") \
                from None
    return so


def _tensor(node, quant: dict | None) -> TensorInfo:
    dtype = _DTYPES.get(node.type)
    if dtype is None:
        raise ModelError(f"tensor {node.name!r} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    quant = quant or {}
    return TensorInfo(node.name, shape, np.dtype(dtype),
                      float(quant.get("scale") or 0.0), int(quant.get("zero_point") or 0))


class OnnxBackend(Backend):
    format = "onnx"

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int | None = None,
                 input_quant: dict | None = None, session_config: dict | None = None):
        ort = _import_ort()
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        providers = _providers(ort, device)
        options = _session_options(ort, threads, session_config)
        try:
            self.session = _create(ort, path, options, providers)
        except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail...)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path} is not a usable ONNX model: {first}") from None
        running = self.session.get_providers()
        if device == "gpu" and not any(p in running for p in GPU_PROVIDERS):
            raise DeviceError(f"device='gpu': onnxruntime could not start a GPU provider for "
                              f"{path.name} (running {running}); check CUDA/cuDNN, or use "
                              "device='auto'")
        self.provider = running[0]
        log.debug("onnx session for %s on %s", path, running)
        inputs = [_tensor(n, input_quant) for n in self.session.get_inputs()]
        outputs = [_tensor(n, None) for n in self.session.get_outputs()]
        check_classifier_io(inputs, outputs, path)
        self.input, self.output = inputs[0], outputs[0]
        try:
            props = dict(self.session.get_modelmeta().custom_metadata_map)
        except Exception:  # noqa: BLE001 - metadata is optional; a model without it still runs
            props = {}
        self.metadata = from_onnx_props(props)
        self.foreign = self.metadata is None

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        x = feed(pixels, self.input, foreign=self.foreign)
        try:
            (y,) = self.session.run([self.output.name], {self.input.name: x})
        except Exception as e:  # noqa: BLE001 - a model that fails at run time
            raise ModelError(f"onnxruntime failed to run the model: {e}") from None
        return dequantize(np.asarray(y), self.output)

    def close(self) -> None:
        self.session = None
