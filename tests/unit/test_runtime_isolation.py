"""The runtime never imports TensorFlow, Keras, JAX, Typer, Rich (or onnx): proven in a
subprocess where importing any of them raises ImportError."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.onnx_models import build_onnx, solid

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ["tensorflow", "keras", "jax", "jaxlib", "typer", "rich", "onnx", "tf2onnx"]

BLOCKER = textwrap.dedent("""
    import sys
    BLOCKED = set({blocked!r})

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked by the runtime isolation test: {{name}}")
            return None

    sys.meta_path.insert(0, Blocker())
""")


def _run(code: str, tmp_path: Path) -> dict:
    script = tmp_path / "isolated.py"
    script.write_text(BLOCKER.format(blocked=BLOCKED) + textwrap.dedent(code))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_blocker_really_blocks(tmp_path):
    out = _run("""
        import json
        try:
            import rich  # noqa: F401
            blocked = False
        except ImportError:
            blocked = True
        print(json.dumps({"blocked": blocked}))
    """, tmp_path)
    assert out["blocked"] is True


def test_predict_onnx_without_heavy_imports(tmp_path):
    model = build_onnx(tmp_path / "model.onnx")
    from PIL import Image
    Image.fromarray(solid((10, 10, 240))).save(tmp_path / "blue.png")
    out = _run(f"""
        import json, sys
        from edgeclf.runtime import Predictor
        p = Predictor.from_path({str(model)!r})
        pred = p.predict({str(tmp_path / "blue.png")!r})[0]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(json.dumps({{"label": pred.label, "heavy": heavy, "provider": p.provider}}))
    """, tmp_path)
    assert out == {"label": "blue", "heavy": [], "provider": "CPUExecutionProvider"}


def test_import_runtime_loads_no_engine(tmp_path):
    out = _run("""
        import json, sys
        import edgeclf.runtime
        print(json.dumps(sorted(m for m in ("onnxruntime", "ai_edge_litert", "tensorflow")
                                if m in sys.modules)))
    """, tmp_path)
    assert out == []  # engines are imported only when a model is loaded
