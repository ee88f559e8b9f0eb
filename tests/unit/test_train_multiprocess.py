"""Data-parallel training across two real CPU processes on localhost (JAX's distributed
runtime, gloo collectives, Keras ``DataParallel``): both finish, only process 0 writes the
run, its checkpoint loads, the two read different shards; a process that dies stops the
other with an error naming it, in bounded time; bad usage exits 2."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from tests.fixtures.jax_only import BLOCK_TENSORFLOW

pytest.importorskip("jax")

#: Process 1 runs under an audit hook that fails the run on any write into the run folder,
#: with TensorFlow made unimportable (the JAX path never needs it).
NO_WRITES = BLOCK_TENSORFLOW + textwrap.dedent("""
    import os, sys
    run_dir = os.path.realpath(sys.argv.pop(1))

    def hook(event, args):
        if event in ("open", "os.rename", "os.replace", "os.remove", "os.mkdir"):
            path, write = args[0], event != "open" or (len(args) > 1 and args[1] and
                                                       any(c in str(args[1]) for c in "wax+"))
            if isinstance(path, (str, bytes, os.PathLike)) and write:
                p = os.path.realpath(os.fsdecode(path))
                if p == run_dir or p.startswith(run_dir + os.sep):
                    raise RuntimeError(f"process 1 wrote into the run folder: {p}")

    sys.addaudithook(hook)
    from edgeclf.cli import main
    sys.argv = ["edgeclf", *sys.argv[1:]]
    main()
""")
SHARD = re.compile(r"process (\d) of 2, phase 1 epoch 1: its shard is (\d+) training "
                   r"image\(s\), rows sha256 (\w+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(data: Path, out: Path, port: int, pid: int) -> list[str]:
    return ["train", str(data), "--out", str(out), "--name", "mp", "--backend", "jax",
            "--backbone", "mobilenetv2_0.35", "--weights", "none", "--image-size", "32",
            "--strategy", "fine-tune", "--epochs", "1", "--fine-tune-epochs", "0",
            "--batch-size", "8", "--steps-per-epoch", "2",
            "--workers", "1", "--num-processes", "2", "--process-id", str(pid),
            "--coordinator", f"127.0.0.1:{port}"]


def _launch(data: Path, out: Path) -> list[subprocess.Popen]:
    port = _free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "EDGECLF_CACHE_DIR": str(out / "cache"),
           "EDGECLF_HEARTBEAT_SECONDS": "10", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("XLA_FLAGS", None)                  # one CPU device per process
    p0 = [sys.executable, "-m", "edgeclf", *_train_args(data, out, port, 0)]
    p1 = [sys.executable, "-c", NO_WRITES, str(out / "mp"),
          *_train_args(data, out, port, 1)]
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env) for cmd in (p0, p1)]


class Output:
    """Collects a process's output in the background (so a pipe never fills)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def two_process_run(shapes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mp")
    procs = _launch(shapes_dir, out)
    outs = [Output(p) for p in procs]
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        _stop(procs)
    for o in outs:
        o.thread.join(timeout=10)
    return out / "mp", codes, [o.text for o in outs]


def test_both_processes_finish_and_only_process_0_writes_the_run(two_process_run):
    run, codes, texts = two_process_run
    assert codes == [0, 0], "\n\n".join(t[-3000:] for t in texts)
    assert "process 1 of 2 done; process 0 wrote the run" in texts[1]
    run_json = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert run_json["processes"] == metrics["processes"] == 2
    assert run_json["backend"] == metrics["backend"] == "jax"
    assert metrics["val"]["n"] > 0 and 0 <= metrics["val"]["accuracy"] <= 1
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 2                      # header + the one epoch
    assert not list(run.rglob("*.partial*"))


def test_the_checkpoint_loads_and_predicts(two_process_run):
    from edgeclf.train import load_checkpoint

    run, codes, _ = two_process_run
    assert codes == [0, 0]
    model = load_checkpoint(run / "checkpoints" / "best.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    probs = np.asarray(model.predict_on_batch(x))
    assert probs.shape == (2, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_the_processes_read_different_shards_of_each_batch(two_process_run):
    _, codes, texts = two_process_run
    assert codes == [0, 0]
    seen = {}
    for pid, text in enumerate(texts):
        found = SHARD.findall(text)
        assert found, text[-2000:]
        assert int(found[0][0]) == pid
        seen[pid] = found[0][1:]
    assert seen[0][0] == seen[1][0] == "8"        # 2 steps x (global batch 8 / 2 processes)
    assert seen[0][1] != seen[1][1]


def test_a_dead_process_stops_the_other_with_an_error_naming_it(shapes_dir, tmp_path):
    procs = _launch(shapes_dir, tmp_path)
    outs = [Output(p) for p in procs]
    try:
        deadline = time.monotonic() + 300
        while "> building" not in outs[1].text:   # process 1 is in the run's collectives
            assert procs[1].poll() is None and time.monotonic() < deadline, outs[1].text
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        code = procs[0].wait(timeout=120)
        waited = time.monotonic() - killed
    finally:
        _stop(procs)
    outs[0].thread.join(timeout=10)
    text = outs[0].text
    assert code == 1, text[-3000:]
    assert "process 1 of the run stopped" in text, text[-3000:]
    assert waited < 60
    run = tmp_path / "mp"
    assert not list(run.rglob("*.partial*"))      # no half-written checkpoint


@pytest.mark.parametrize("args, message", [
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "h:1"], "--process-id"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "h"], "HOST:PORT"),
    (["--num-processes", "2", "--process-id", "0"], "needs --coordinator"),
    (["--num-processes", "2", "--coordinator", "h:1", "--backend", "tensorflow"],
     "--backend jax"),
    (["--num-processes", "2", "--coordinator", "h:1", "--strategy", "linear-probe"],
     "runs in one process"),
])
def test_bad_usage_exits_2(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize("augmented", [False, True])
def test_the_shards_of_each_batch_are_the_batch_of_one_process(augmented):
    """Augmented too: every image has its own random stream, so two processes' slices are
    augmented exactly as one process augments the whole batch (same training either way)."""
    from edgeclf.data.augment import AugmentConfig
    from edgeclf.data.loader import BatchLoader
    from edgeclf.errors import ConfigError

    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    rows, labels = np.arange(3, 39), np.arange(36) % 3

    def loader(**kw: object) -> BatchLoader:
        return BatchLoader(images, rows, labels, batch_size=8, shuffle=True,
                           drop_remainder=True, workers=1, seed=3,
                           augment=AugmentConfig() if augmented else None, **kw)

    one, halves = loader(), [loader(shard=(i, 2)) for i in range(2)]
    for epoch in (0, 1):
        batches = [list(h.epoch(epoch)) for h in halves]
        assert len(batches[0]) == len(batches[1]) == len(one) == 4
        for whole, a, b in zip(one.epoch(epoch), *batches):
            assert a.n == b.n == 4
            np.testing.assert_array_equal(np.concatenate([a.x, b.x]), whole.x)
            np.testing.assert_array_equal(np.concatenate([a.y, b.y]), whole.y)
        assert not set(halves[0].rows_of_epoch(epoch)) & set(halves[1].rows_of_epoch(epoch))
    with pytest.raises(ConfigError, match="multiple of the 3 processes"):
        loader(shard=(0, 3))
