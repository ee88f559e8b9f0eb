"""`edgeclf bench`: invoke the command, then check bench.json/bench.png through the library."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from edgeclf.bench import load_history
from edgeclf.cli import app
from edgeclf.run import RunPaths
from tests.fixtures.bench import make_bench_run, make_onnx

QUICK = ["--batch-sizes", "1,2", "--threads", "1", "--runs", "3", "--warmup", "1",
         "--no-baselines", "--in-process"]


@pytest.fixture()
def tiny_run(tmp_path):
    return make_bench_run(tmp_path)


def invoke(*args: str):
    return CliRunner().invoke(app, ["bench", *args])


def test_bench_twice_accumulates_history_and_draws_the_plot(tiny_run):
    first = invoke(str(tiny_run), *QUICK)        # the run holds a tampered and a broken model:
    assert first.exit_code == 1, first.output    # failed rows, recorded, exit 1
    assert "Error:" in first.output and "4 row(s) failed" in first.output
    second = invoke(str(tiny_run), *QUICK, "--formats", "onnx")
    assert second.exit_code == 1, second.output
    paths = RunPaths(tiny_run)
    runs = load_history(paths.bench_json)
    assert len(runs) == 2 and runs[0]["date"] <= runs[1]["date"]
    ok = [r for r in runs[1]["results"] if r["status"] == "ok"]
    assert {(r["artifact"], r["batch_size"]) for r in ok} == {("model.onnx", 1),
                                                            ("model.onnx", 2)}
    failed = {r["artifact"] for r in runs[1]["results"] if r["status"] == "failed"}
    assert failed == {"model_tampered.onnx", "model_broken.onnx"}
    assert paths.bench_png.read_bytes()[:4] == b"\x89PNG"


def test_model_file_writes_to_output(tmp_path):
    model = make_onnx(tmp_path / "m.onnx")
    out = tmp_path / "results"
    res = invoke(str(model), *QUICK, "--output", str(out), "--json")
    assert res.exit_code == 0, res.output
    (entry,) = load_history(out / "bench.json")
    assert [r["artifact"] for r in entry["results"]] == ["m.onnx", "m.onnx"]


@pytest.mark.parametrize("args, message", [
    (["--runs", "0"], "--runs must be at least 1"),
    (["--threads", "-2"], "threads -2 is out of range"),
    (["--threads", "two"], "--threads takes comma-separated integers"),
    (["--batch-sizes", "1,100000"], "batch size 100000 is out of range"),
    (["--runs", "3", "--seconds", "2"], "not both"),
    (["--device", "quantum"], "--device must be one of"),
])
def test_bad_options_are_clear_errors(tiny_run, args, message):
    res = invoke(str(tiny_run), "--in-process", *args)
    assert res.exit_code == 2                    # bad usage
    assert "Error:" in res.output and message in " ".join(res.output.split())
    assert not RunPaths(tiny_run).bench_json.exists()


def test_gpu_without_gpu_is_a_clear_error(tiny_run, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    res = invoke(str(tiny_run), *QUICK, "--device", "gpu")
    assert res.exit_code == 1 and "no GPU execution provider" in " ".join(res.output.split())
    assert not RunPaths(tiny_run).bench_json.exists()


def test_progress_lines_and_estimate_when_not_on_a_terminal(tiny_run):
    res = invoke(str(tiny_run), *QUICK)       # CliRunner's output is not a terminal
    assert res.exit_code == 1, res.output     # the tampered and broken models: failed rows
    out = " ".join(res.output.split())
    assert "bench: 3 jobs, 6 rows" in out and "--exhaustive" in out
    assert re.search(r"bench \[1/3\] model\.onnx predictor cpu 1 threads: \d+ s elapsed", out)
    assert "bench [2/3] model_tampered.onnx" in out and " left" in out
    assert "bench [3/3] done" in out
