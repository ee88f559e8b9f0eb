"""edgeclf.bench: structure of the results, bad input, history, GPU refusal. No timing is
asserted: the figures are only checked to exist and be ordered where order is a definition
(p50 <= p90 <= p99)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgeclf import bench
from edgeclf.bench import (FIGURES, BenchConfig, Job, append_history, load_history, run_bench,
                           save_bench)
from edgeclf.bench import gpu as bench_gpu
from edgeclf.bench import gpu_modes as bench_gpu_modes
from edgeclf.bench import models as bench_models
from edgeclf.bench.timing import check_batch_memory, summarize, time_calls
from edgeclf.errors import ConfigError, DeviceError, ModelError, RunError

from tests.fixtures.bench import make_bench_run, make_onnx

PUBLIC = ("artifact", "format", "quantization", "device", "provider", "batch_size", "threads",
          "p50_ms", "p90_ms", "p99_ms", "images_per_second", "cold_start_ms")
QUICK = dict(batch_sizes=(1, 3), threads=(1,), runs=4, warmup=1, baselines=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_bench_run(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def in_process(tiny_run):
    return run_bench(tiny_run, BenchConfig(isolate=False, **QUICK))


@pytest.mark.parametrize("kwargs, match", [
    (dict(runs=0), "--runs must be at least 1"),
    (dict(runs=-3), "--runs must be at least 1"),
    (dict(threads=(2, -1)), "threads -1 is out of range"),
    (dict(threads=(0,)), "threads 0 is out of range"),
    (dict(batch_sizes=(1, 10**6)), "batch size 1000000 is out of range"),
    (dict(batch_sizes=(0,)), "batch size 0 is out of range"),
    (dict(batch_sizes=()), "--batch-sizes is empty"),
    (dict(runs=5, seconds=1.0), "not both"),
    (dict(seconds=0.0), "--seconds"),
    (dict(warmup=-1), "--warmup"),
    (dict(device="tpu"), "--device must be one of"),
    (dict(formats=("onnx", "pt")), "unknown format 'pt'"),
    (dict(formats=("web",)), "unknown format 'web'"),     # exported, but timed in a browser
])
def test_bad_config_is_a_clear_error(tiny_run, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_bench(tiny_run, BenchConfig(**{**QUICK, **kwargs}))


def test_batch_larger_than_memory_is_refused():
    with pytest.raises(ConfigError, match="GiB of memory is available"):
        check_batch_memory(4000, 4096, 4096)
    check_batch_memory(1, 224, 224)        # a normal batch passes


def test_missing_target_and_unknown_file_type(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        run_bench(tmp_path / "nope", BenchConfig(**QUICK))
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="not a model file"):
        run_bench(tmp_path / "model.pt", BenchConfig(**QUICK))
    (tmp_path / "run").mkdir()
    with pytest.raises(RunError, match="no run.json"):
        run_bench(tmp_path / "run", BenchConfig(**QUICK))


def test_timing_loop_counts_and_summary():
    calls = []
    ms = time_calls(lambda: calls.append(1), warmup=2, runs=7, seconds=None)
    assert len(ms) == 7 and len(calls) == 9
    ms = time_calls(lambda: None, warmup=0, runs=None, seconds=0.01)
    assert len(ms) >= 3
    s = summarize(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), batch=8)
    assert s["p50_ms"] == 3.0 and s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= 100.0
    assert s["runs"] == 5 and s["images_per_second"] == pytest.approx(8 * 1000 / 22.0, abs=0.01)


def test_rows_have_the_public_shape_and_failures_do_not_stop_the_others(in_process):
    rows = in_process.results
    assert {(r["artifact"], r["batch_size"]) for r in rows} == {
        (a, b) for a in ("model.onnx", "model_tampered.onnx", "model_broken.onnx")
        for b in (1, 3)}
    for r in rows:
        assert set(PUBLIC) <= set(r) and set(FIGURES) <= set(r)
        assert r["device"] == "cpu" and r["threads"] == 1
    good = [r for r in rows if r["artifact"] == "model.onnx"]
    assert all(r["status"] == "ok" for r in good)
    for r in good:
        assert r["provider"] == "CPUExecutionProvider" and r["format"] == "onnx"
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["runs"] == 4 and r["images_per_second"] > 0
        assert r["cold_start_ms"] == pytest.approx(r["load_ms"] + r["first_run_ms"], abs=0.02)
        assert r["preprocess_ms"] > 0 and r["peak_rss_mb"] > 0
        assert r["speedup"] == 1.0 and r["speedup_vs"] == "model.onnx"
    tampered = [r for r in rows if r["artifact"] == "model_tampered.onnx"]
    assert all(r["status"] == "failed" and "sha256" in r["error"] for r in tampered)
    broken = [r for r in rows if r["artifact"] == "model_broken.onnx"]
    assert all(r["status"] == "failed" and r["p50_ms"] is None for r in broken)


def test_entry_has_machine_fingerprint_and_config(in_process):
    m = in_process.machine
    assert m["cpu"]["logical_cores"] >= 1 and m["cpu"]["model"]
    assert "onnxruntime" in m["versions"] and "ai-edge-litert" in m["versions"]
    assert m["threads"] == [1] and isinstance(m["gpus"], list)
    assert in_process.config["runs"] == 4 and in_process.config["isolate"] is False
    json.dumps(in_process.to_entry())        # JSON-able as it stands


def test_isolated_run_measures_a_fresh_process(tiny_run):
    res = run_bench(tiny_run, BenchConfig(formats=("onnx",), isolate=True,
                                          **{**QUICK, "batch_sizes": (2,)}))
    good = [r for r in res.results if r["status"] == "ok"]
    assert len(good) == 1 and good[0]["import_ms"] > 0 and good[0]["peak_rss_mb"] > 0
    assert {r["artifact"] for r in res.results if r["status"] == "failed"} == {
        "model_tampered.onnx", "model_broken.onnx"}


def test_a_crashing_or_hanging_job_is_a_failed_row(monkeypatch, tmp_path):
    job = Job(artifact="x.onnx", runner="predictor", format="onnx", quantization="none",
              device="cpu", threads=1, batch_sizes=(1, 2), warmup=0, runs=1, seconds=None,
              path=str(tmp_path / "x.onnx"))
    rows = bench.run_isolated(job, timeout_s=0.01)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "timed out" in rows[0]["error"]
    monkeypatch.setattr(sys, "executable", "/bin/false")   # an interpreter that dies
    rows = bench.run_isolated(job, timeout_s=60)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "exited with code 1" in rows[0]["error"]


def test_bench_json_accumulates_and_keeps_history(tiny_run, in_process, tmp_path):
    out = tmp_path / "out"
    save_bench(in_process, out)
    second = run_bench(tiny_run, BenchConfig(isolate=False, **{**QUICK, "runs": 2}))
    bench_json, png = save_bench(second, out)
    runs = load_history(bench_json)
    assert [r["config"]["runs"] for r in runs] == [4, 2]
    assert runs[0]["results"] == json.loads(json.dumps(in_process.results))
    assert set(runs[1]) >= {"date", "machine", "results"}
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bench_json_of_another_shape_is_not_overwritten(in_process, tmp_path):
    f = tmp_path / "bench.json"
    f.write_text('{"latency": 3}')
    with pytest.raises(RunError, match="no 'runs' list"):
        append_history(f, in_process)
    assert f.read_text() == '{"latency": 3}'


def test_single_model_file(tmp_path):
    model = make_onnx(tmp_path / "solo.onnx")
    res = run_bench(model, BenchConfig(isolate=False, **QUICK))
    assert [(r["artifact"], r["status"]) for r in res.results] == [("solo.onnx", "ok")] * 2
    assert bench.default_output(model).name == "bench-solo"


def test_gpu_without_cuda_provider_is_a_clear_error(tiny_run, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(DeviceError, match="no GPU execution provider"):
        run_bench(tiny_run, BenchConfig(device="gpu", **QUICK))
    with pytest.raises(DeviceError):
        run_bench(tiny_run, BenchConfig(device="all", **QUICK))


def test_gpu_provider_without_a_gpu_is_a_clear_error(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(bench_gpu, "_nvidia_smi", lambda *a: None)
    with pytest.raises(DeviceError, match="finds no GPU"):
        bench_gpu.require_gpu()


def test_a_gpu_row_that_ran_on_cpu_is_refused():
    row = {"artifact": "model.onnx", "device": "gpu", "status": "ok",
           "provider": "CPUExecutionProvider"}
    with pytest.raises(DeviceError, match="refusing to record it as a GPU figure"):
        bench._check_gpu_rows([row])
    bench._check_gpu_rows([{**row, "provider": "CUDAExecutionProvider"}])


def test_gpu_jobs_cover_onnx_only_with_each_mode(tiny_run):
    targets, info = bench.plan_targets(tiny_run, BenchConfig(**QUICK))
    cfg = BenchConfig(**{**QUICK, "threads": (1,)}, gpu_modes=("numpy", "iobinding",
                                                               "cuda-graph"))
    jobs = bench.build_jobs(targets, cfg, ["gpu"], info["image_size"])
    assert {j.runner for j in jobs} == {"predictor", "iobinding", "cuda-graph"}
    assert all(j.format == "onnx" and j.device == "gpu" for j in jobs)


def test_plot_adds_size_vs_accuracy_from_parity(in_process, tiny_run, tmp_path):
    from edgeclf.bench.plot import accuracy_by_artifact

    parity = tmp_path / "parity.json"
    parity.write_text(json.dumps({"artifacts": [{"file": "model.onnx", "accuracy": 0.9}]}))
    acc = accuracy_by_artifact(parity, tiny_run / "export" / "manifest.json")
    assert acc["model.onnx"]["accuracy"] == 0.9 and acc["model.onnx"]["bytes"] > 0
    from edgeclf.bench.plot import plot_bench

    png = plot_bench(in_process, tmp_path / "b.png", parity_json=parity,
                     manifest=tiny_run / "export" / "manifest.json")
    assert png.is_file()


def test_io_binding_gives_the_session_outputs(tmp_path):
    """The IO-binding path of the GPU bench, bound to host memory so it runs anywhere."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(make_onnx(tmp_path / "m.onnx")),
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    _, _, dtype = bench_gpu_modes._io_names(session)
    bound = bench_gpu_modes._Bound(session, x, dtype, bench_gpu_modes._n_classes(session, x, dtype),
                             device="cpu")
    bound()
    expected = session.run(None, {"image": x.astype(np.float32)})[0]
    np.testing.assert_allclose(bound.fetch(), expected, rtol=1e-5)


def test_gpu_memory_per_process_or_growth_since_load(monkeypatch):
    import os

    from edgeclf.bench.models import Opened

    answers = {"--query-compute-apps=pid,used_memory": [f"{os.getpid()}, 812", "1, 5"],
               "--query-gpu=memory.used": ["1500"]}
    monkeypatch.setattr(bench_gpu, "_nvidia_smi", lambda *a: answers[a[0]])
    opened = Opened(provider="CUDAExecutionProvider", size=(2, 2), infer=len, imported_at=0.0)
    assert bench_models.with_gpu_memory(opened, 1000.0).gpu_memory_mb() == 812
    answers["--query-compute-apps=pid,used_memory"] = []      # container: no PIDs listed
    assert opened.gpu_memory_mb() == 500.0


def test_bare_runtime_rows_give_the_predictor_overhead(tmp_path):
    model = make_onnx(tmp_path / "solo.onnx")
    res = run_bench(model, BenchConfig(isolate=False, **{**QUICK, "baselines": True}))
    by = {(r["artifact"], r["batch_size"]): r for r in res.results}
    assert set(by) == {(a, b) for a in ("solo.onnx", "onnx-bare") for b in (1, 3)}
    assert all(r["status"] == "ok" for r in res.results)
    assert by[("onnx-bare", 1)]["provider"] == "onnxruntime-bare-cpu"
    for b in (1, 3):
        pred, bare = by[("solo.onnx", b)], by[("onnx-bare", b)]
        assert pred["overhead_vs"] == "onnx-bare" and bare["overhead"] is None
        assert pred["overhead"] == pytest.approx(pred["p50_ms"] / bare["p50_ms"] - 1, abs=1e-3)


def test_overhead_pairs_rows_of_the_same_file_threads_and_batch():
    def row(artifact, runner, p50, threads=2, fmt="onnx", q="none"):
        return {"artifact": artifact, "runner": runner, "format": fmt, "quantization": q,
                "device": "cpu", "threads": threads, "batch_size": 1, "p50_ms": p50}

    rows = [row("model.onnx", "predictor", 5.5), row("onnx-bare", "onnx-bare", 5.0),
            row("model.onnx", "predictor", 9.0, threads=1),
            row("model.int8.onnx", "predictor", 4.0, q="int8"),
            row("model.tflite", "predictor", 6.0, fmt="tflite"),
            row("tflite-xnnpack", "tflite-xnnpack", 4.0, fmt="tflite")]
    bench.add_overheads(rows)
    assert rows[0]["overhead"] == pytest.approx(0.1) and rows[0]["overhead_vs"] == "onnx-bare"
    assert "overhead" not in rows[2] and "overhead" not in rows[3]   # no bare row to pair
    assert rows[4]["overhead"] == pytest.approx(0.5)
    assert rows[4]["overhead_vs"] == "tflite-xnnpack"


def test_bench_formats_are_export_table_ones_plus_the_keras_baselines(monkeypatch):
    import dataclasses

    from edgeclf import export

    assert bench.FORMATS == ("savedmodel", "onnx", "tflite", "keras")
    spec = dataclasses.replace(export.FORMATS["onnx"], name="onnx2")
    monkeypatch.setitem(export.FORMATS, "onnx2", spec)      # a new exported format ...
    assert "onnx2" in bench.FORMATS                           # ... is one bench accepts
    bench.validate_config(BenchConfig(formats=("onnx2", "keras")))
