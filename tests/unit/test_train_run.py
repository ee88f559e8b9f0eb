"""Training on a tiny generated dataset (TensorFlow backend, weights=none, 32 px): the CLI,
the run directory contract, the checkpoint contract, and bad input refused before training."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.errors import ConfigError, ModelError, RunError
from edgeclf.run import RunPaths
from edgeclf.train import TrainConfig, load_checkpoint, train

TINY = dict(backbone="mobilenetv2_0.35", weights="none", image_size=32, batch_size=8,
            steps_per_epoch=1, workers=1)


def test_cli_linear_probe_then_fine_tune_writes_the_run_contract(shapes_dir, tmp_path):
    cfg = tmp_path / "train.toml"
    cfg.write_text('backbone = "mobilenetv2_0.35"\nweights = "none"\nimage-size = 32\n'
                   'strategy = "linear-probe"\nepochs = 40\nfine_tune_epochs = 1\n'
                   'unfreeze = "12"\nbatch_size = 8\nsteps_per_epoch = 1\nworkers = 1\n')
    res = CliRunner().invoke(app, ["train", str(shapes_dir), "--config", str(cfg),
                                   "--out", str(tmp_path / "models"), "--name", "tiny",
                                   "--epochs", "3", "--time-budget", "5m"])
    assert res.exit_code == 0, res.output
    paths = RunPaths(tmp_path / "models" / "tiny")
    assert "edgeclf export" in res.output and "--format onnx" in res.output
    run = json.loads(paths.run_json.read_text())
    for key in ("name", "edgeclf_version", "created", "backend", "backbone", "image_size",
                "preprocessing", "classes", "dataset", "config", "versions"):
        assert key in run
    assert run["backend"] == "tensorflow" and run["preprocessing"]["size"] == [32, 32]
    assert run["config"]["epochs"] == 3 and run["config"]["unfreeze"] == "12"
    assert paths.read_labels() == run["classes"] == sorted(run["classes"])
    split = json.loads(paths.split.read_text())
    assert split["classes"] == run["classes"] and split["train"] and split["test"]
    assert sorted(split["sha256"]) == sorted(split["train"] + split["val"] + split["test"])
    assert paths.data_report.is_file() and list(paths.logs.glob("events.out.tfevents.*"))
    history = paths.history.read_text().splitlines()
    assert history[0].startswith("epoch,phase,loss,accuracy,val_loss,val_accuracy")
    # the convex head is one solve (one row), then --fine-tune-epochs 1 on images
    assert [r.split(",")[:2] for r in history[1:]] == [["1", "1"], ["2", "2"]]
    assert run["config"]["time_budget"] == 300
    assert run["strategy_choice"]["strategy"] == "linear-probe"
    assert run["strategy_choice"]["head"] == "convex" and run["strategy_choice"]["epochs"] == 1
    assert "strategy linear-probe: requested" in res.output
    metrics = json.loads(paths.metrics.read_text())
    assert set(metrics["test"]) >= {"accuracy", "top5", "n", "per_class"}
    assert metrics["test"]["n"] == len(split["test"]) and "train_seconds" in metrics
    assert set(metrics["test"]["per_class"]) == set(run["classes"])
    assert metrics["images_per_second"] > 0 and "accuracy" in metrics["val"]
    again = TrainConfig.from_file(paths.run_json)
    assert again.to_dict() == run["config"]
    _check_checkpoint(paths, n_classes=len(run["classes"]))


def _check_checkpoint(paths: RunPaths, n_classes: int) -> None:
    import keras

    model = load_checkpoint(paths.best)
    assert model.inputs[0].name == "image" and tuple(model.inputs[0].shape) == (None, 32, 32, 3)
    assert model.outputs[0].dtype == "float32"
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    probs = np.asarray(model.predict_on_batch(x))
    assert probs.shape == (3, n_classes) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert "Lambda" not in json.dumps(model.get_config())
    last = load_checkpoint(paths.last)           # phase 2: BN frozen, last 12 layers trained
    backbone = last.get_layer("backbone_mobilenetv2_0.35")
    bn = [lyr for lyr in backbone.layers if isinstance(lyr, keras.layers.BatchNormalization)]
    assert bn and not any(lyr.trainable for lyr in bn)
    assert not any(lyr.trainable for lyr in backbone.layers[:-12] if lyr.weights)
    assert any(lyr.trainable for lyr in backbone.layers[-12:] if lyr.weights)


def test_fine_tune_strategy_api_result(shapes_dir, tmp_path):
    events = []
    result = train(TrainConfig(data_dir=str(shapes_dir), out=str(tmp_path), name="ft",
                               epochs=1, class_weights="balanced", augment=True,
                               cache_budget="0", **TINY),     # streamed: no decode cache
                   progress=events.append)
    assert result.run_dir == tmp_path / "ft" and result.best_phase == 1
    assert result.metrics["test"]["n"] > 0 and result.train_seconds > 0
    assert {e.kind for e in events} >= {"stage", "epoch_start", "step", "epoch_end", "done"}
    paths = RunPaths(result.run_dir)
    state = json.loads(paths.state.read_text())
    assert state["global_epoch"] == 1 and state["phase1_done"]
    with pytest.raises(RunError, match="already holds a run"):
        train(TrainConfig(data_dir=str(shapes_dir), out=str(tmp_path), name="ft", **TINY))


@pytest.mark.parametrize("kwargs,match", [
    (dict(backbone="inceptionv3"), "too small for inceptionv3"),
    (dict(unfreeze="5000", fine_tune_epochs=1), "--unfreeze 5000 is larger than the backbone"),
])
def test_bad_input_fails_before_any_training(shapes_dir, tmp_path, kwargs, match):
    cfg = TrainConfig(data_dir=str(shapes_dir), out=str(tmp_path), name="bad",
                      **{**TINY, **kwargs})
    with pytest.raises(ConfigError, match=match):
        train(cfg)
    paths = RunPaths(tmp_path / "bad")
    assert not paths.history.exists() and not paths.last.exists()


def test_cli_reports_errors_without_a_traceback(shapes_dir, tmp_path):
    res = CliRunner().invoke(app, ["train", str(shapes_dir), "--backbone", "resnet18",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown backbone" in res.output     # bad usage
    assert "Traceback" not in res.output


def test_mixed_precision_model_keeps_a_float32_output():
    from edgeclf.backbones import get_backbone
    from edgeclf.train import build_model

    model = build_model([get_backbone("mobilenetv2_0.35")], 3, image_size=32,
                        mixed_precision="bfloat16")
    assert model.get_layer("head_dropout").dtype_policy.name == "mixed_bfloat16"
    assert model.outputs[0].dtype == "float32" and model.inputs[0].dtype == "float32"
    import keras

    assert keras.config.dtype_policy().name == "float32"       # global policy restored


def test_load_checkpoint_refuses_lambda_and_non_models(tmp_path):
    import keras

    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ModelError, match="Lambda"):
        load_checkpoint(path)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a Keras"):
        load_checkpoint(junk)
    with pytest.raises(RunError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.keras")


@pytest.mark.parametrize("epoch, epochs, bad, patience, stops", [
    (5, 30, 5, 5, False),      # first half of a 30-epoch phase: the learning rate is high
    (14, 30, 14, 5, False),
    (15, 30, 5, 5, True),      # second half: patience applies
    (15, 30, 4, 5, False),
    (6, 12, 6, 5, True),
    (12, 12, 9, 5, False),     # the phase is over anyway
    (20, 30, 20, 0, False),    # --patience 0: off
])
def test_early_stopping_never_ends_the_first_half_of_a_phase(epoch, epochs, bad, patience,
                                                              stops):
    from edgeclf.train.loop import TrainState, stop_early

    st = TrainState(epoch=epoch, bad_epochs=bad)
    assert stop_early(st, patience, epochs) is stops
