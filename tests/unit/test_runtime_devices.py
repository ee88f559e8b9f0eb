"""Device selection logic with a stand-in onnxruntime that claims CUDA/TensorRT providers.

No GPU here: the fake session records which providers it was given and reports which ones
"really run", so the rules are checked: gpu never falls back silently, auto says what runs,
a TensorRT failure retries with CUDA alone.
"""

from __future__ import annotations

import pytest

from edgeclf.runtime import DeviceError, Predictor

from tests.fixtures.onnx_models import build_onnx, solid

ort = pytest.importorskip("onnxruntime")
REAL_SESSION = ort.InferenceSession


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_onnx(tmp_path_factory.mktemp("dev") / "m.onnx")


def fake_ort(monkeypatch, *, available, running, trt_fails=False):
    calls: list[list[str]] = []

    class Session(REAL_SESSION):
        def __init__(self, path, so=None, providers=None, **kw):
            names = [p[0] if isinstance(p, tuple) else p for p in providers]
            calls.append(names)
            if trt_fails and "TensorrtExecutionProvider" in names:
                raise RuntimeError("TensorRT: cannot build engine")
            super().__init__(path, so, providers=["CPUExecutionProvider"])
            self._claimed = [n for n in names if n in running] or ["CPUExecutionProvider"]

        def get_providers(self):
            return self._claimed

    monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))
    monkeypatch.setattr(ort, "InferenceSession", Session)
    return calls


ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_gpu_uses_tensorrt_then_cuda(model, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECLF_CACHE_DIR", str(tmp_path))
    calls = fake_ort(monkeypatch, available=ALL, running=ALL)
    p = Predictor.from_path(model, device="gpu")
    assert calls == [ALL] and p.provider == "TensorrtExecutionProvider"
    assert (tmp_path / "tensorrt").is_dir()  # engine cache
    assert p.predict(solid((240, 10, 10)))[0].label == "red"


def test_gpu_never_falls_back_silently(model, monkeypatch):
    # onnxruntime accepted CUDA but could not start it (e.g. missing cuDNN): runs on CPU
    fake_ort(monkeypatch, available=ALL[1:], running=["CPUExecutionProvider"])
    with pytest.raises(DeviceError, match="could not start a GPU provider"):
        Predictor.from_path(model, device="gpu")
    assert Predictor.from_path(model, device="auto").provider == "CPUExecutionProvider"


def test_tensorrt_failure_retries_with_cuda(model, monkeypatch):
    calls = fake_ort(monkeypatch, available=ALL, running=ALL[1:], trt_fails=True)
    p = Predictor.from_path(model, device="gpu")
    assert calls == [ALL, ALL[1:]] and p.provider == "CUDAExecutionProvider"


def test_no_cuda_provider_at_all(model, monkeypatch):
    fake_ort(monkeypatch, available=["CPUExecutionProvider"], running=[])
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        Predictor.from_path(model, device="gpu")
    assert Predictor.from_path(model, device="cpu").provider == "CPUExecutionProvider"
