"""Predictor.from_path(RUN) picks the fastest parity-passing artifact benchmarked on this
machine, says which, and otherwise loads the float32 ONNX; explicit choices are honoured."""

from __future__ import annotations

import json

import pytest

from edgeclf.runtime import Predictor
from edgeclf.runtime._choose import machine

from tests.fixtures.onnx_models import build_onnx, solid, write_manifest

pytest.importorskip("onnxruntime")

FILES = [("model.onnx", "onnx", "none"), ("model.int8.onnx", "onnx", "int8"),
         ("model.float16.onnx", "onnx", "float16")]


@pytest.fixture()
def run(tmp_path):
    export = tmp_path / "run" / "export"
    for f, _, _ in FILES:
        build_onnx(export / f)
    write_manifest(export, FILES)
    return tmp_path / "run"


def _parity(run, passed: dict[str, bool], created: str = "2026-01-01T00:00:00+00:00"):
    path = run / "export" / "manifest.json"
    manifest = json.loads(path.read_text())
    for a in manifest["artifacts"]:
        a["created"] = created
        if a["file"] in passed:
            a["parity"] = {"passed": passed[a["file"]]}
    path.write_text(json.dumps(manifest))


def _bench(run, p50: dict[str, float], *, cpu=None, threads=2, device="cpu",
           date="2026-06-01T00:00:00+00:00", runner="predictor"):
    model, cores = cpu or machine()
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    size = {a["file"]: a["bytes"] for a in manifest["artifacts"]}
    rows = [{"artifact": f, "runner": runner, "status": "ok", "batch_size": b,
             "device": device, "threads": threads, "bytes": size[f],
             "p50_ms": ms * b} for f, ms in p50.items() for b in (1, 8)]
    entry = {"date": date, "machine": {"cpu": {"model": model, "usable_cores": cores}},
             "results": rows}
    path = run / "bench.json"
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    path.write_text(json.dumps({"runs": [*runs, entry]}))


def test_fastest_parity_passing_artifact_is_chosen_and_named(run):
    _parity(run, {"model.onnx": True, "model.int8.onnx": True, "model.float16.onnx": False})
    _bench(run, {"model.onnx": 9.0, "model.int8.onnx": 5.0, "model.float16.onnx": 1.0})
    p = Predictor.from_path(run, threads=2)
    assert p.path.name == "model.int8.onnx"               # float16 is faster but failed parity
    assert "model.int8.onnx" in p.selection and "5.00 ms" in p.selection
    assert p.predict(solid((240, 10, 10)))[0].label == "red"
    # the export directory itself chooses the same way
    assert Predictor.from_path(run / "export", threads=2).path.name == "model.int8.onnx"


def test_explicit_choices_are_always_honoured(run):
    _parity(run, {"model.onnx": True, "model.int8.onnx": True})
    _bench(run, {"model.onnx": 9.0, "model.int8.onnx": 5.0})
    assert Predictor.from_path(run, quantization="none").path.name == "model.onnx"
    assert Predictor.from_path(run, format="onnx").path.name == "model.onnx"
    p = Predictor.from_path(run / "export" / "model.onnx")
    assert p.path.name == "model.onnx" and p.selection is None


def test_the_requested_thread_count_or_the_nearest_one_decides(run):
    _parity(run, {"model.onnx": True, "model.int8.onnx": True})
    _bench(run, {"model.onnx": 4.0, "model.int8.onnx": 5.0}, threads=1)
    _bench(run, {"model.onnx": 9.0, "model.int8.onnx": 5.0}, threads=4,
           date="2026-06-01T00:00:00+00:00")
    assert Predictor.from_path(run, threads=1).path.name == "model.onnx"
    assert Predictor.from_path(run, threads=3).path.name == "model.int8.onnx"   # 4 is nearer


@pytest.mark.parametrize("case", ["no-bench", "other-machine", "gpu-only", "stale",
                                  "no-parity", "bare-rows-only", "other-size"])
def test_otherwise_the_float32_onnx_as_before(run, case):
    _parity(run, {} if case == "no-parity" else {"model.onnx": True, "model.int8.onnx": True},
            created="2026-07-01T00:00:00+00:00" if case == "stale" else
            "2026-01-01T00:00:00+00:00")
    fast = {"model.onnx": 9.0, "model.int8.onnx": 5.0}
    if case == "other-machine":
        _bench(run, fast, cpu=("Some Other CPU @ 9 GHz", 64))
    elif case == "gpu-only":
        _bench(run, fast, device="gpu")
    elif case == "bare-rows-only":
        _bench(run, fast, runner="onnx-bare")
    elif case != "no-bench":
        _bench(run, fast)
    if case == "other-size":
        (run / "bench.json").write_text((run / "bench.json").read_text().replace(
            '"bytes": ', '"bytes": 1'))
    p = Predictor.from_path(run, threads=2)
    assert p.path.name == "model.onnx"
    assert p.selection.startswith("the float32 ONNX artifact (the default)")


def test_this_machine_is_read_as_bench_json_records_it():
    from edgeclf.machine import cpu_info

    info = cpu_info()
    assert machine() == (info["model"], info["usable_cores"])
