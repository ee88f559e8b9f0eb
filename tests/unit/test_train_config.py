"""TrainConfig: defaults, validation, files (TOML/YAML/run.json) and CLI overrides."""

from __future__ import annotations

import json

import pytest

from edgeclf.errors import ConfigError
from edgeclf.train import TrainConfig


def test_resolve_fills_backbone_and_strategy_defaults():
    cfg = TrainConfig(data_dir="/data/flowers", backbone="InceptionV3",
                      strategy="fine-tune").resolve()
    assert cfg.image_size == 299 and cfg.backbone == "inceptionv3"
    assert cfg.name == "flowers-inceptionv3" and cfg.epochs == 10 and cfg.dropout == 0.2
    assert cfg.fine_tune_epochs == 5      # fine-tune means what it says: phase 2 runs
    assert cfg.fine_tune_lr == pytest.approx(cfg.lr / 10)
    auto = TrainConfig().resolve()
    assert auto.strategy == "auto" and auto.fine_tune_epochs is None    # auto's plan decides
    assert auto.time_budget == 600 and auto.class_weights == "auto"
    probe = TrainConfig(strategy="linear-probe", head="mlp", optimizer="sgd").resolve()
    assert probe.fine_tune_epochs == 0 and probe.epochs == 100 and probe.dropout == 0.5 and probe.lr == pytest.approx(1e-2)
    ens = TrainConfig(backbone="ensemble").resolve()
    assert ens.ensemble == ("inceptionv3", "xception", "resnet50") and ens.image_size == 299


@pytest.mark.parametrize("kwargs,match", [
    ({"strategy": "magic"}, "strategy"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"unfreeze": "half"}, "unfreeze"), ({"label_smoothing": 1.5}, "label_smoothing"),
    ({"batch_size": 0}, "batch_size"), ({"backend": "torch"}, "backend"),
    ({"zoom": 2.0}, "zoom"), ({"mixed_precision": "int8"}, "mixed_precision"),
    ({"time_budget": "soon"}, "time budget"), ({"time_budget": 0}, "time budget"),
    ({"class_weights": "heavy"}, "class_weights")])
def test_bad_values_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("text,seconds", [(600, 600), ("90s", 90), ("10m", 600),
                                          ("1.5h", 5400), ("45", 45)])
def test_time_budget_takes_durations(text, seconds):
    assert TrainConfig(time_budget=text).time_budget == seconds


def test_unknown_backbone_fails_at_resolve():
    with pytest.raises(ConfigError, match="unknown backbone"):
        TrainConfig(backbone="alexnet").resolve()


def test_toml_file_with_cli_overrides(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('backbone = "resnet50"\nepochs = 3\nfine-tune-epochs = 2\n'
                    'ensemble = ["vgg16", "xception"]\n')
    cfg = TrainConfig.from_file(path, epochs=7, lr=None)
    assert (cfg.backbone, cfg.epochs, cfg.fine_tune_epochs) == ("resnet50", 7, 2)
    assert cfg.ensemble == ("vgg16", "xception")


def test_yaml_file_and_train_table(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "train.yaml"
    path.write_text("train:\n  head: mlp\n  unfreeze: 20\n")
    cfg = TrainConfig.from_file(path)
    assert cfg.head == "mlp" and cfg.unfreeze == "20"


def test_run_json_config_round_trips(tmp_path):
    cfg = TrainConfig(data_dir="/d", backbone="vgg19", resume=True).resolve()
    assert "resume" not in cfg.to_dict()
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"name": "x", "config": cfg.to_dict()}))
    again = TrainConfig.from_file(path)
    assert again == TrainConfig(**{**cfg.to_dict()}) and not again.resume


def test_unknown_keys_and_missing_files_are_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("epochz = 3\n")
    with pytest.raises(ConfigError, match="unknown config key.*epochz"):
        TrainConfig.from_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_file(tmp_path / "nope.toml")
    bad = tmp_path / "c.ini"
    bad.write_text("x")
    with pytest.raises(ConfigError, match="toml"):
        TrainConfig.from_file(bad)


def test_config_is_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        TrainConfig("data")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 3  # type: ignore[misc]
