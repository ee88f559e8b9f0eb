"""Real photos + real ImageNet weights (../shared): the linear probe learns flowers, from the
with-top MobileNetV2 file transplanted into the no-top backbone."""

from __future__ import annotations

import json
import shutil

import pytest

from edgeclf.run import RunPaths

PER_CLASS = 40
WITH_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"


@pytest.fixture(scope="module")
def flowers_subset(shared_dir, tmp_path_factory):
    src = shared_dir / "data" / "flowers"
    dst = tmp_path_factory.mktemp("flowers")
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / cls.name).mkdir()
        for f in sorted(cls.iterdir())[:PER_CLASS]:
            shutil.copy(f, dst / cls.name / f.name)
    return dst


@pytest.mark.slow
@pytest.mark.shared
def test_linear_probe_on_real_flowers_beats_chance_by_far(flowers_subset, shared_dir, tmp_path):
    from edgeclf.train import TrainConfig, train

    cfg = TrainConfig(data_dir=str(flowers_subset), out=str(tmp_path), name="probe",
                      backbone="mobilenetv2", weights=str(shared_dir / "weights" / WITH_TOP),
                      image_size=96, strategy="linear-probe", epochs=60, workers=2)
    result = train(cfg)
    test = result.metrics["test"]
    assert test["n"] >= 15 and test["accuracy"] >= 0.6      # chance is 0.2
    assert result.metrics["val"]["accuracy"] >= 0.6
    metrics = json.loads(RunPaths(result.run_dir).metrics.read_text())
    assert metrics["test"]["accuracy"] == test["accuracy"]
    # a second run reuses the cached features: nothing is recomputed, same result
    again = train(TrainConfig(**{**cfg.to_dict(), "name": "probe2"}))
    assert again.metrics["val"]["accuracy"] == result.metrics["val"]["accuracy"]
