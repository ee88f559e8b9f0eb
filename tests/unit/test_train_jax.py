"""The JAX path: trains with TensorFlow made unimportable, over two (forced) host devices
with DataParallel; its checkpoint loads under TensorFlow with the same predictions; a
subset of backbones trains one step under JAX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.fixtures.jax_only import BLOCK_TENSORFLOW

SCRIPT = BLOCK_TENSORFLOW + textwrap.dedent("""
    import json, logging, sys
    logging.basicConfig(level=logging.INFO)
    import numpy as np
    from edgeclf.train import TrainConfig, load_checkpoint, train

    data, out = sys.argv[1:3]
    result = train(TrainConfig(data_dir=data, out=out, name="jax", backend="jax",
                               backbone="mobilenetv2_0.35", weights="none", image_size=32,
                               strategy="fine-tune", epochs=1, fine_tune_epochs=1,
                               unfreeze="all", batch_size=8,
                               steps_per_epoch=1, workers=1))
    import jax, keras
    model = load_checkpoint(result.checkpoint)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.save(f"{out}/x.npy", x)
    np.save(f"{out}/p.npy", np.asarray(model.predict_on_batch(x)))
    keras.distribution.set_distribution(None)
    from edgeclf.backbones import get_backbone
    from edgeclf.train import build_model
    from edgeclf.train.optim import compile_model
    stepped = []
    for name in ("mobilenetv3small", "vgg16"):          # rescaling inside; caffe BGR
        m = build_model([get_backbone(name)], 3, image_size=32)
        m.trainable = True
        compile_model(m, keras.optimizers.Adam(1e-3), label_smoothing=0.0)
        logs = m.train_on_batch(x[:2], np.eye(3, dtype="float32")[[0, 1]], return_dict=True)
        stepped.append([name, float(logs["loss"])])
        print("RESULT " + json.dumps({
        "tensorflow_loaded": any(k.split(".")[0] == "tensorflow" for k in sys.modules),
        "devices": len(jax.devices()), "backend": keras.backend.backend(),
        "run_backend": result.metrics["backend"], "stepped": stepped}))
""")


@pytest.fixture(scope="module")
def jax_run(shapes_dir, tmp_path_factory):
    pytest.importorskip("jax")
    out = tmp_path_factory.mktemp("jaxrun")
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "EDGECLF_CACHE_DIR": str(out / "cache")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(shapes_dir), str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return out, json.loads(line[len("RESULT "):]), proc.stderr


def test_jax_training_never_imports_tensorflow(jax_run):
    _, result, _ = jax_run
    assert result["backend"] == result["run_backend"] == "jax"
    assert result["tensorflow_loaded"] is False


def test_data_parallel_over_two_devices(jax_run):
    out, result, stderr = jax_run
    assert result["devices"] == 2
    assert "data parallel over 2 devices" in stderr
    metrics = json.loads((out / "jax" / "metrics.json").read_text())
    assert metrics["phase2_val_accuracy"] is not None


def test_a_subset_of_backbones_trains_one_step_under_jax(jax_run):
    _, result, _ = jax_run
    assert [n for n, _ in result["stepped"]] == ["mobilenetv3small", "vgg16"]
    assert all(np.isfinite(loss) for _, loss in result["stepped"])


def test_jax_checkpoint_loads_under_tensorflow_with_the_same_predictions(jax_run):
    import keras

    from edgeclf.train import load_checkpoint

    if keras.backend.backend() != "tensorflow":
        pytest.skip("this process must run Keras on TensorFlow")
    out, _, _ = jax_run
    model = load_checkpoint(out / "jax" / "checkpoints" / "best.keras")
    probs = np.asarray(model.predict_on_batch(np.load(out / "x.npy")))
    np.testing.assert_allclose(probs, np.load(out / "p.npy"), atol=1e-5)
