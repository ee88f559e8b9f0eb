"""The plan `edgeclf bench` chooses: quick by default (a time budget per row, no Keras
baselines), the full sweep with ``exhaustive``, explicit options winning over both. No timing
is run or asserted: plans are listed, never measured."""

from __future__ import annotations

import os

import pytest

from edgeclf.bench import BenchConfig, plan_bench
from edgeclf.bench import plan as bench_plan

from tests.fixtures.bench import make_bench_run

CORES = len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_bench_run(tmp_path_factory.mktemp("plan"))


def _add_checkpoint_and_tflite(run):
    """The plan reads the manifest only: a listed float TFLite brings the XNNPACK baseline."""
    import json

    from edgeclf.runtime.manifest import sha256_file

    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / "best.keras").write_bytes(b"not loaded by the planner")
    tfl = run / "export" / "model.tflite"
    tfl.write_bytes(b"tflite bytes")
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    manifest["artifacts"].append({"file": "model.tflite", "format": "tflite",
                                  "quantization": "none", "bytes": tfl.stat().st_size,
                                  "sha256": sha256_file(tfl)})
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_default_plan_is_time_budgeted_without_keras_baselines(tiny_run):
    run = _add_checkpoint_and_tflite(tiny_run)
    plan = plan_bench(run, BenchConfig())
    runners = {j.runner for j in plan.jobs}
    assert {"predictor", "tflite-xnnpack"} <= runners            # bare runtimes stay
    assert not runners & {"keras-predict", "keras-call"}         # Keras only on request
    for job in plan.jobs:
        assert job.seconds == bench_plan.ROW_SECONDS and job.runs is None
        assert job.warmup == bench_plan.QUICK_WARMUP and job.threads == CORES
    assert plan.rows == 3 * len(plan.jobs)
    # the a priori estimate is the sum of each job's startup and budgeted rows
    assert plan.estimate_s == pytest.approx(sum(bench_plan.estimate_job_seconds(j)
                                                for j in plan.jobs), abs=0.1)
    assert 0 < plan.estimate_s < 60


def test_exhaustive_plan_is_the_full_sweep_with_keras_baselines(tiny_run):
    run = _add_checkpoint_and_tflite(tiny_run)
    quick = plan_bench(run, BenchConfig())
    full = plan_bench(run, BenchConfig(exhaustive=True))
    assert {"keras-predict", "keras-call"} <= {j.runner for j in full.jobs}
    assert {j.threads for j in full.jobs} == {1, CORES}
    for job in full.jobs:
        assert job.runs == bench_plan.EXHAUSTIVE_RUNS and job.seconds is None
        assert job.warmup == bench_plan.EXHAUSTIVE_WARMUP
    assert len(full.jobs) > len(quick.jobs)
    assert full.estimate_s is None          # a fixed number of calls: length unknown a priori


def test_explicit_options_win_over_either_plan(tiny_run):
    plan = plan_bench(tiny_run, BenchConfig(exhaustive=True, runs=3, warmup=0, threads=(1,),
                                            formats=("onnx",)))
    assert {(j.runs, j.seconds, j.warmup, j.threads, j.format)
            for j in plan.jobs} == {(3, None, 0, 1, "onnx")}
    plan = plan_bench(tiny_run, BenchConfig(seconds=0.25, formats=("onnx", "keras")))
    assert {j.seconds for j in plan.jobs} == {0.25}
    assert {"keras-predict", "keras-call"} <= {j.runner for j in plan.jobs}


def test_remaining_time_uses_the_measured_pace_once_a_job_finished():
    assert bench_plan.remaining_seconds(0.0, 0, 4, 30.0) == 30.0
    assert bench_plan.remaining_seconds(10.0, 1, 4, 30.0) == 30.0
    assert bench_plan.remaining_seconds(20.0, 1, 4, 30.0) == 60.0
    assert bench_plan.remaining_seconds(20.0, 4, 4, None) == 0.0
    assert bench_plan.remaining_seconds(0.0, 0, 4, None) is None


def test_a_job_goes_to_its_process_as_json_and_comes_back_equal(tiny_run):
    plan = plan_bench(tiny_run, BenchConfig(formats=("onnx",), threads=(1,), runs=2))
    job = plan.jobs[0]
    assert bench_plan.Job.from_json(job.to_json()) == job
    assert job.to_dict()["batch_sizes"] == [1, 8, 32]
    failed = job.failed_rows("boom")
    assert [r["batch_size"] for r in failed] == [1, 8, 32]
    assert all(r["status"] == "failed" and r["error"] == "boom" and r["p50_ms"] is None
               for r in failed)
