"""GPU probes for `edgeclf bench`: which providers are GPU ones, which GPUs nvidia-smi
sees, and how much device memory a process (or GPU 0) uses. The GPU ways of running a model
(IO binding, CUDA graphs) are in :mod:`edgeclf.bench.gpu_modes`.

A GPU request that cannot be honoured is a :class:`DeviceError`, never a CPU figure.
"""

from __future__ import annotations

import os
import subprocess

from edgeclf.errors import DeviceError

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
_NVIDIA_SMI_TIMEOUT = 10


def is_gpu_provider(provider: str | None) -> bool:
    return bool(provider) and any(p in str(provider) for p in GPU_PROVIDERS)


def _nvidia_smi(*args: str) -> list[str] | None:
    try:
        out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, check=False,
                             timeout=_NVIDIA_SMI_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]


def gpu_names() -> list[dict]:
    """Name, memory and driver of each NVIDIA GPU (empty without nvidia-smi or a GPU)."""
    lines = _nvidia_smi("--query-gpu=name,memory.total,driver_version",
                        "--format=csv,noheader,nounits") or []
    gpus = []
    for ln in lines:
        parts = [p.strip() for p in ln.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory_mib": _num(parts[1]), "driver": parts[2]})
    return gpus


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def require_gpu() -> list[str]:
    """The GPU providers onnxruntime can use here, or a DeviceError that says what is missing."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeviceError("--device gpu needs onnxruntime-gpu: pip install onnxruntime-gpu") \
            from None
    providers = [p for p in ort.get_available_providers() if p in GPU_PROVIDERS]
    if not providers:
        raise DeviceError(
            f"--device gpu: this onnxruntime ({ort.__version__}) has no GPU execution provider "
            f"(available: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu "
            "on a machine with an NVIDIA GPU, or use --device cpu")
    if not gpu_names():
        raise DeviceError("--device gpu: onnxruntime-gpu is installed but nvidia-smi finds no "
                          "GPU on this machine; use --device cpu")
    return providers


def process_gpu_memory_mb(pid: int | None = None) -> float | None:
    """Device memory held by ``pid`` (this process by default), from nvidia-smi; None when
    nvidia-smi does not list it (e.g. inside a container's PID namespace)."""
    pid = os.getpid() if pid is None else pid
    lines = _nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    mine = [_num(p[1]) or 0.0 for p in (ln.split(",") for ln in lines or [])
            if len(p) == 2 and p[0].strip() == str(pid)]
    return sum(mine) if mine else None


def device_memory_used_mb() -> float | None:
    """Memory in use on GPU 0 as a whole."""
    lines = _nvidia_smi("--query-gpu=memory.used", "--format=csv,noheader,nounits")
    return _num(lines[0]) if lines else None
