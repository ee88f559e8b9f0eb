"""Faults: processes killed with -9 mid-stage, then the same command rerun.

Each test kills a real subprocess at a known point (it prints a line when it gets there),
then reruns and checks that nothing partial is mistaken for finished work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeclf.data import load_or_build, scan_dataset
from edgeclf.data.cache import INDEX, cache_dir_for
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.preprocess import preprocess

CONTRACT = Contract(size=(32, 32))

BUILD_AND_STALL = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgeclf.data import load_or_build, scan_dataset
    from edgeclf.runtime.contract import Contract

    def stall(done, total):          # called after each decoded chunk: stop after the first
        print(f"decoded {done}/{total}", flush=True)
        time.sleep(120)

    load_or_build(scan_dataset(sys.argv[1]), Contract(size=(32, 32)),
                  workers=int(sys.argv[3]), root=Path(sys.argv[2]), progress=stall)
""")


def _start(script: str, *args: object, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("workers", [1, 2])
def test_kill9_during_decode_cache_build_then_rerun_rebuilds(shapes_dir, tmp_path, workers):
    root = tmp_path / "cache"
    dataset = scan_dataset(shapes_dir)
    final = cache_dir_for(dataset, CONTRACT, root)
    proc = _start(BUILD_AND_STALL, shapes_dir, root, workers)
    line = proc.stdout.readline()
    assert line.startswith("decoded "), line
    done, total = map(int, line.split()[1].split("/"))
    assert 0 < done < total == len(dataset.items)       # killed half-way through
    _kill9(proc)

    assert not final.exists()                          # nothing looks like a finished cache
    partial = [p for p in final.parent.iterdir() if ".partial" in p.name]
    assert partial and not (partial[0] / INDEX).exists()

    cache = load_or_build(dataset, CONTRACT, workers=1, root=root)
    assert cache.built and cache.path == final          # rebuilt, not reused
    assert cache.ok.all() and len(cache.relpaths) == total
    assert not [p for p in final.parent.iterdir() if ".partial" in p.name]  # swept
    for i in (0, done, total - 1):                      # rows before and after the kill point
        rel = cache.relpaths[i]
        np.testing.assert_array_equal(cache.images[i], preprocess(shapes_dir / rel, CONTRACT))
    assert not load_or_build(dataset, CONTRACT, workers=1, root=root).built


TRAIN_AND_STALL = textwrap.dedent("""
    import sys, time
    from edgeclf.train import train
    from edgeclf.train.config import TrainConfig

    def stall(ev):                    # mid-epoch 2: after its second batch, stop and wait
        if ev.kind == "step" and ev.epoch == 2 and ev.step == 2:
            print(f"mid-epoch {ev.epoch} step {ev.step}/{ev.steps}", flush=True)
            time.sleep(300)

    data, out, name, epochs = sys.argv[1:5]
    train(TrainConfig(data_dir=data, out=out, name=name, backbone="mobilenetv2_0.35",
                      weights="none", image_size=32, epochs=int(epochs), strategy="fine-tune",
                      fine_tune_epochs=0,
                      augment=False, batch_size=16, workers=1, patience=100), progress=stall)
""")
def _edgeclf(*args: object, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeclf", *map(str, args)], text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow", "COLUMNS": "200"})


def test_kill9_mid_epoch_then_resume_reaches_all_epochs(shapes_dir, tmp_path):
    """A real training process killed mid-epoch 2: a second process meanwhile is refused;
    ``--resume`` continues from epoch 1 (optimizer state included) and ends with every
    epoch and a valid best.keras."""
    from edgeclf.report.html import render_report
    from edgeclf.run import RunPaths, lock_owner

    epochs, out = 2, tmp_path / "models"
    paths = RunPaths(out / "r")
    proc = _start(TRAIN_AND_STALL, shapes_dir, out, "r", epochs,
                  env={"KERAS_BACKEND": "tensorflow"})
    lines: list[str] = []
    while not (lines and lines[-1].startswith("mid-epoch")):
        line = proc.stdout.readline()
        if not line:                                    # exited without reaching the point
            pytest.fail("training ended before mid-epoch 2:\n" + "".join(lines[-30:]))
        lines.append(line)
    assert lines[-1].startswith("mid-epoch 2 step 2/")

    resume = ("train", "--name", "r", "--out", out, "--resume", "--workers", 1)
    refused = _edgeclf(*resume)                          # a second train on the same run
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "in use by another edgeclf process" in refused.stderr
    assert f"pid {proc.pid}" in refused.stderr and lock_owner(paths)["pid"] == proc.pid

    _kill9(proc)
    assert lock_owner(paths) is None and not paths.metrics.exists()
    assert json.loads(paths.state.read_text())["global_epoch"] == 1
    assert "training did not finish (interrupted?); resume it" in render_report(paths.root)

    resumed = _edgeclf(*resume)                          # the same command, now alone
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-3000:]
    state = json.loads(paths.state.read_text())
    assert state["global_epoch"] == epochs
    epochs_logged = [int(r.split(",")[0]) for r in paths.history.read_text().splitlines()[1:]]
    assert epochs_logged == list(range(1, epochs + 1))  # no epoch lost or repeated
    # best.keras is valid: a complete archive, which train itself reloaded (safe mode) to
    # write the test metrics
    metrics = json.loads(paths.metrics.read_text())
    assert 1 <= metrics["best_epoch"] <= epochs and metrics["test"]["n"] > 0
    with zipfile.ZipFile(paths.best) as archive:
        assert archive.testzip() is None and "config.json" in archive.namelist()
    assert not [p for p in paths.checkpoints.iterdir() if ".partial" in p.name]
    # the optimizer's state was carried over: epoch 1's steps (from last.keras) + epoch 2's
    import keras

    steps = int(lines[-1].split("/")[1])
    last = keras.saving.load_model(paths.last, compile=True)
    assert int(last.optimizer.iterations) == epochs * steps


EXPORT_AND_STALL = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])                       # the checkout, for tests.fixtures.runs
    from tests.fixtures.runs import make_trained_run
    from edgeclf import export as export_pkg
    from edgeclf.export import ExportConfig, export_run

    run = make_trained_run(Path(sys.argv[1]), backbone="tiny", image_size=32, epochs=2,
                           name="r")
    spec = export_pkg.FORMATS["tflite"]

    def write_then_stall(ctx, path, quantization):   # the file is complete, not renamed yet
        info = spec.export(ctx, path, quantization)
        print("written", path, flush=True)
        time.sleep(300)
        return info

    export_pkg.FORMATS["tflite"] = type(spec)(**{**spec.__dict__, "export": write_then_stall})
    export_run(run.root, ExportConfig(formats=("onnx", "tflite")))
""")


BENCH_AND_STALL = textwrap.dedent("""
    import sys, time
    from edgeclf.bench import BenchConfig, run_bench, save_bench

    def stall(i, n, what):             # the first job measured, the second about to start
        if i == 1:
            print("measured", i, "of", n, flush=True)
            time.sleep(300)

    cfg = BenchConfig(formats=("onnx", "tflite"), batch_sizes=(1,), threads=(1,), warmup=1,
                      runs=3, baselines=False)
    save_bench(run_bench(sys.argv[1], cfg, progress=stall), sys.argv[1])
""")


def _run_until(proc: subprocess.Popen, prefix: str) -> str:
    lines: list[str] = []
    while not (lines and lines[-1].startswith(prefix)):
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"ended before {prefix!r}:\n" + "".join(lines[-30:]))
        lines.append(line)
    return lines[-1]


def test_kill9_during_export_and_bench_then_rerun(tmp_path):
    """An export killed while its second artifact sits written but not renamed: the manifest
    holds only the finished artifact, and rerunning the command finishes the job. Then a
    bench killed half-way: no bench.json (or the previous one, unchanged); rerun appends."""
    from edgeclf.report.html import render_report
    from edgeclf.run import RunPaths, lock_owner
    from edgeclf.runtime.manifest import load_manifest, verify_artifact

    root = Path(__file__).resolve().parents[2]
    proc = _start(EXPORT_AND_STALL, tmp_path, root, env={"KERAS_BACKEND": "tensorflow"})
    partial = Path(_run_until(proc, "written ").split(" ", 1)[1].strip())
    assert partial.is_file() and partial.stat().st_size > 0
    _kill9(proc)

    paths = RunPaths(tmp_path / "r")
    manifest = load_manifest(paths.export_dir)
    assert [a["file"] for a in manifest["artifacts"]] == ["model.onnx"]
    verify_artifact(paths.export_dir, manifest["artifacts"][0])       # finished and intact
    assert not (paths.export_dir / "model.tflite").exists() and lock_owner(paths) is None

    rerun = _edgeclf("export", paths.root, "--format", "onnx", "--format", "tflite")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    manifest = load_manifest(paths.export_dir)
    assert sorted(a["file"] for a in manifest["artifacts"]) == ["model.onnx", "model.tflite"]
    for entry in manifest["artifacts"]:
        verify_artifact(paths.export_dir, entry)
    assert not partial.exists()
    assert not [p.name for p in paths.export_dir.iterdir() if ".partial" in p.name]
    export_html = render_report(paths.root).split('<section id="export"', 1)[1]
    assert "model.tflite" in export_html.split("</section>", 1)[0]

    bench = ("bench", paths.root, "--formats", "onnx,tflite", "--batch-sizes", "1",
             "--threads", "1", "--warmup", "1", "--runs", "3", "--no-baselines")
    for history in (0, 1):           # killed with no bench.json yet, then with one run in it
        proc = _start(BENCH_AND_STALL, paths.root)
        _run_until(proc, "measured 1 of 2")
        _kill9(proc)
        if history:                   # the earlier history is intact, nothing half-appended
            assert len(json.loads(paths.bench_json.read_text())["runs"]) == history
        else:
            assert not paths.bench_json.exists()
        rerun = _edgeclf(*bench)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
        runs = json.loads(paths.bench_json.read_text())["runs"]
        assert len(runs) == history + 1
        assert {r["artifact"] for r in runs[-1]["results"] if r["status"] == "ok"} == \
            {"model.onnx", "model.tflite"}
    assert not [p.name for p in paths.root.iterdir() if ".partial" in p.name]
