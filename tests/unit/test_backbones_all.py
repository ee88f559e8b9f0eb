"""Every registered backbone builds, trains one step and saves with weights=none at a small
input size (TensorFlow backend, eager steps so nothing is traced or compiled)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.backbones import BACKBONES, ensemble_members, get_backbone


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_builds_trains_one_step_and_saves(name, tmp_path):
    import keras

    from edgeclf.train import build_model, load_checkpoint
    from edgeclf.train.model import unfreeze
    from edgeclf.train.optim import compile_model

    spec = get_backbone(name)
    members = ensemble_members(None) if name == "ensemble" else [spec]
    size = max(32, *(m.min_size for m in members))
    model = build_model(members, 3, image_size=size, head="mlp" if name == "vgg16" else
                        "linear")
    unfreeze(model, None)
    compile_model(model, keras.optimizers.SGD(1e-3), label_smoothing=0.1)
    model.run_eagerly = True
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_layer("head_logits").get_weights()]
    logs = model.train_on_batch(x, np.eye(3, dtype=np.float32)[[0, 2]], return_dict=True)
    assert np.isfinite(float(logs["loss"]))
    after = model.get_layer("head_logits").get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))   # it learned
    path = tmp_path / f"{name}.keras"
    model.save(path)
    probs = np.asarray(load_checkpoint(path)(x, training=False))    # eager: nothing traced
    np.testing.assert_allclose(probs, np.asarray(model(x, training=False)), atol=1e-5)
