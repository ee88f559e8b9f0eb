"""`edgeclf demo` runs every stage for real; a failed stage skips its dependants."""

from __future__ import annotations

import json

from edgeclf.demo import DemoConfig, run_demo
from edgeclf.run import RunPaths
from tests.fixtures import images as mk


def test_demo_runs_every_stage_on_generated_data(tmp_path):
    cfg = DemoConfig(out=tmp_path, per_class=12, image_size=32, epochs=2,
                     formats=("onnx",), quantizations=("none",), bench_runs=3)
    result = run_demo(cfg)
    assert [s.name for s in result.stages] == ["data", "train", "export", "parity", "bench",
                                               "predict", "report"]
    assert result.ok, [(s.name, s.status, s.summary) for s in result.stages]
    paths = RunPaths(tmp_path / "demo")
    manifest = json.loads(paths.manifest.read_text())
    assert [a["file"] for a in manifest["artifacts"]] == ["model.onnx"]
    assert json.loads(paths.parity.read_text())["artifacts"][0]["agreement"] == 1.0
    assert json.loads(paths.bench_json.read_text())["runs"][0]["results"]
    assert "Parity" in paths.report_html.read_text()


def test_demo_reports_a_failed_stage_and_skips_what_needs_it(tmp_path):
    data = tmp_path / "one-class"
    for i in range(4):
        mk.rgb(data / "only" / f"{i}.jpg")
    result = run_demo(DemoConfig(out=tmp_path / "runs", data=data, image_size=32, epochs=1))
    status = {s.name: s.status for s in result.stages}
    assert status["data"] == "ok" and status["train"] == "failed"
    assert "at least 2 classes" in result.stages[1].summary
    assert {status[n] for n in ("export", "parity", "bench", "predict", "report")} == {"skipped"}
    assert not result.ok
