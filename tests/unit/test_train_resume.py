"""A training process killed after its first epoch resumes from it, optimizer included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from edgeclf.run import RunPaths

STALL_AFTER_EPOCH_1 = textwrap.dedent("""
    import sys, time
    from edgeclf.train import TrainConfig, train

    def stall(ev):
        if ev.kind == "epoch_end" and ev.logs.get("epoch") == 1:
            print("EPOCH1", flush=True)
            time.sleep(600)

    data, out = sys.argv[1:3]
    train(TrainConfig(data_dir=data, out=out, name="r", backbone="mobilenetv2_0.35",
                      weights="none", image_size=32, epochs=3, batch_size=8,
                      strategy="fine-tune", fine_tune_epochs=0,
                      steps_per_epoch=1, workers=1, patience=0), progress=stall)
""")


def test_killed_run_resumes_from_its_last_completed_epoch(shapes_dir, tmp_path):
    import keras

    from edgeclf.train import TrainConfig, train

    out = tmp_path / "models"
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    proc = subprocess.Popen([sys.executable, "-c", STALL_AFTER_EPOCH_1, str(shapes_dir),
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    paths = RunPaths(out / "r")
    try:
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline:
            if paths.state.is_file() and json.loads(paths.state.read_text())["global_epoch"]:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not paths.metrics.exists()
    result = train(TrainConfig(out=str(out), name="r", resume=True, workers=1))
    history = paths.history.read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in history] == ["1", "2", "3"]
    assert result.metrics["test"]["n"] > 0 and paths.metrics.is_file()
    last = keras.saving.load_model(paths.last, compile=True)
    assert int(last.optimizer.iterations) == 3      # 1 step/epoch, state carried over
