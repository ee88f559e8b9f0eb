"""examples/serve_http.py: a real server on a free port, real HTTP requests."""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from edgeclf.runtime import Predictor

from tests.fixtures.onnx_models import build_onnx, solid

pytest.importorskip("onnxruntime")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serve_http.py"


@pytest.fixture()
def server(tmp_path):
    spec = importlib.util.spec_from_file_location("serve_http", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    srv = module.make_server(Predictor.from_path(build_onnx(tmp_path / "m.onnx")), port=0,
                             max_bytes=10_000)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _call(url: str, data: bytes | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_predict_health_and_errors(server):
    buf = io.BytesIO()
    Image.fromarray(solid((20, 20, 240))).save(buf, format="JPEG")
    status, body = _call(f"{server}/predict?top_k=2", buf.getvalue())
    assert status == 200 and [t["label"] for t in body["top"]][0] == "blue"
    assert len(body["top"]) == 2
    status, body = _call(f"{server}/health")
    assert status == 200 and body["classes"] == ["red", "green", "blue"]
    status, body = _call(f"{server}/predict", b"not an image")
    assert status == 400 and "not a readable image" in body["error"]
    assert _call(f"{server}/predict", b"x" * 20_000)[0] == 413
    assert _call(f"{server}/nope")[0] == 404
