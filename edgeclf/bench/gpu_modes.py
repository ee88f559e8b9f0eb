"""GPU ways of running an ONNX artifact for `edgeclf bench`: onnxruntime's CUDA execution
provider with IO binding.

Three ways to run an ONNX artifact on the GPU, chosen at run time (nothing here is imported
unless a GPU is asked for):

- ``numpy``: ``Predictor.run`` on a GPU predictor (host arrays in and out; what a caller that
  holds numpy arrays gets).
- ``iobinding``: the predictor's own onnxruntime session (``predictor.session``) with the
  input uploaded once and the output bound to device memory, so a timed call does no host
  copy (what a caller whose data already lives on the GPU gets).
- ``cuda-graph``: a session created with ``enable_cuda_graph`` (fixed shapes, one session
  per batch size) replaying a captured CUDA graph; IO binding is mandatory there.

A GPU request that cannot be honoured is a :class:`DeviceError`, never a CPU figure.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgeclf.bench.gpu import device_memory_used_mb, require_gpu
from edgeclf.bench.models import Opened, open_predictor, with_gpu_memory
from edgeclf.bench.plan import Job
from edgeclf.errors import DeviceError, ModelError


def _io_names(session: Any) -> tuple[str, str, np.dtype]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"expected one input and one output, got {len(inputs)} and "
                         f"{len(outputs)}")
    dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
             "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(inputs[0].type)
    if dtype is None:
        raise ModelError(f"unsupported input type {inputs[0].type}")
    return inputs[0].name, outputs[0].name, np.dtype(dtype)


def _out_dtype(session: Any) -> type:
    kind = session.get_outputs()[0].type
    if kind not in ("tensor(float)", "tensor(float16)"):
        raise ModelError(f"IO binding expects a float output, got {kind}")
    return np.float16 if kind == "tensor(float16)" else np.float32


class _Bound:
    """An input and an output living on the GPU, bound to ``session``."""

    def __init__(self, session: Any, x: np.ndarray, dtype: np.dtype, n_classes: int,
                 device: str = "cuda"):
        import onnxruntime as ort

        in_name, out_name, _ = _io_names(session)
        self.session = session
        self.x = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x.astype(dtype)),
                                                  device, 0)
        self.y = ort.OrtValue.ortvalue_from_shape_and_type((x.shape[0], n_classes),
                                                           _out_dtype(session), device, 0)
        self.io = session.io_binding()
        self.io.bind_ortvalue_input(in_name, self.x)
        self.io.bind_ortvalue_output(out_name, self.y)

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.io)
        self.io.synchronize_outputs()

    def fetch(self) -> np.ndarray:
        return self.io.copy_outputs_to_cpu()[0]


def _n_classes(session: Any, x: np.ndarray, dtype: np.dtype) -> int:
    dim = session.get_outputs()[0].shape[-1]
    if isinstance(dim, int):
        return dim
    in_name, _, _ = _io_names(session)
    return int(session.run(None, {in_name: x[:1].astype(dtype)})[0].shape[-1])


def open_iobinding(job: Job) -> Opened:
    """The GPU predictor's own session, timed with device-resident input and output."""
    if job.device != "gpu":
        raise DeviceError("IO binding is a GPU mode; use --device gpu")
    opened = open_predictor(job)
    pred = opened._keep
    session = getattr(pred, "session", None)
    if session is None or not hasattr(session, "io_binding"):
        raise ModelError("the predictor does not expose its onnxruntime session "
                         "(predictor.session); IO binding cannot be measured")
    _, _, dtype = _io_names(session)
    classes: dict[str, int] = {}

    def bind(x: np.ndarray) -> _Bound:
        if "n" not in classes:
            classes["n"] = _n_classes(session, x, dtype)
        return _Bound(session, x, dtype, classes["n"])

    def infer(x: np.ndarray) -> np.ndarray:
        b = bind(x)
        b()
        return b.fetch()

    out = Opened(provider=opened.provider, size=opened.size, infer=infer,
                 imported_at=opened.imported_at, keep=pred)
    out.bind = bind                                   # type: ignore[method-assign]
    out.gpu_memory_mb = opened.gpu_memory_mb          # type: ignore[method-assign]
    return out


def _cuda_graph_session(path: str, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, so, providers=[
        ("CUDAExecutionProvider", {"enable_cuda_graph": "1", "device_id": "0"})])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise DeviceError(f"CUDA graph session runs on {session.get_providers()[0]}")
    return session


def open_cuda_graph(job: Job) -> Opened:
    """A fresh ``enable_cuda_graph`` session per batch size (graphs need fixed shapes)."""
    if job.device != "gpu":
        raise DeviceError("CUDA graphs are a GPU mode; use --device gpu")
    require_gpu()
    import onnxruntime  # noqa: F401

    imported_at = time.perf_counter()
    baseline = device_memory_used_mb()
    first = _cuda_graph_session(job.path, job.threads)
    shape = first.get_inputs()[0].shape
    if not all(isinstance(d, int) for d in shape[1:3]):
        raise ModelError(f"CUDA graphs need a fixed image size; input shape is {shape}")
    _, _, dtype = _io_names(first)
    sessions = {"first": first}

    def bind(x: np.ndarray) -> _Bound:
        session = sessions.pop("first", None) or _cuda_graph_session(job.path, job.threads)
        bound = _Bound(session, x, dtype, _n_classes_static(session))
        bound()                    # first run captures the graph; later runs replay it
        return bound

    def infer(x: np.ndarray) -> np.ndarray:
        b = bind(x)
        b()
        return b.fetch()

    out = Opened(provider="CUDAExecutionProvider", size=(shape[1], shape[2]), infer=infer,
                 imported_at=imported_at, keep=sessions)
    out.bind = bind                                   # type: ignore[method-assign]
    return with_gpu_memory(out, baseline)


def _n_classes_static(session: Any) -> int:
    dim = session.get_outputs()[0].shape[-1]
    if not isinstance(dim, int):
        raise ModelError(f"CUDA graphs need a fixed number of classes; output shape is "
                         f"{session.get_outputs()[0].shape}")
    return dim
