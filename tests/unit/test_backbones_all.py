"""Every registered backbone builds with weights=none at a small input size and gives
probabilities (TensorFlow backend, eager, so nothing is traced or compiled). One backbone
per Keras constructor (and the ensemble) also trains one step, saves and reloads: the
other widths/depths of a family (MobileNetV2 alphas, MobileNetV3 large, EfficientNet
B1-B3) differ only in the constructor's arguments, and building them is what can fail."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.backbones import BACKBONES, ensemble_members, get_backbone

#: the first registered backbone of each family kind trains, saves and reloads
VARIANTS = ("mobilenetv2_0.5", "mobilenetv2_0.75", "mobilenetv2", "mobilenetv3large",
            "efficientnetb1", "efficientnetb2", "efficientnetb3")


def _build(name: str):
    from edgeclf.train import build_model

    spec = get_backbone(name)
    members = ensemble_members(None) if name == "ensemble" else [spec]
    size = max(32, *(m.min_size for m in members))
    model = build_model(members, 3, image_size=size, head="mlp" if name == "vgg16" else
                        "linear")
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    return model, x


def test_the_variants_are_registered_backbones():
    assert set(VARIANTS) < set(BACKBONES)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_builds_and_gives_probabilities(name):
    model, x = _build(name)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in BACKBONES if n not in VARIANTS])
def test_backbone_builds_trains_one_step_and_saves(name, tmp_path):
    import keras

    from edgeclf.train import load_checkpoint
    from edgeclf.train.model import unfreeze
    from edgeclf.train.optim import compile_model

    model, x = _build(name)
    unfreeze(model, None)
    compile_model(model, keras.optimizers.SGD(1e-3), label_smoothing=0.1)
    model.run_eagerly = True
    before = [w.copy() for w in model.get_layer("head_logits").get_weights()]
    logs = model.train_on_batch(x, np.eye(3, dtype=np.float32)[[0, 2]], return_dict=True)
    assert np.isfinite(float(logs["loss"]))
    after = model.get_layer("head_logits").get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))   # it learned
    path = tmp_path / f"{name}.keras"
    model.save(path)
    probs = np.asarray(load_checkpoint(path)(x, training=False))    # eager: nothing traced
    np.testing.assert_allclose(probs, np.asarray(model(x, training=False)), atol=1e-5)
