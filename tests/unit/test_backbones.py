"""Backbone registry, in-model normalisation, and weight files (incl. with-top transplant)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeclf.backbones import BACKBONES, describe, get_backbone, normalisation_layers
from edgeclf.errors import ConfigError, WeightsError

LISTED = ["mobilenetv2_0.35", "mobilenetv2_0.5", "mobilenetv2_0.75", "mobilenetv2",
          "mobilenetv3small", "mobilenetv3large", "efficientnetb0", "efficientnetb1",
          "efficientnetb2", "efficientnetb3", "resnet50", "vgg16", "vgg19", "inceptionv3",
          "xception", "ensemble"]
WITH_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
NO_TOP_035 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def test_registry_lists_every_backbone_of_the_issue():
    assert sorted(BACKBONES) == sorted(LISTED)
    assert get_backbone("MobileNetV2").name == "mobilenetv2"
    assert get_backbone("vgg16").notop_file == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert get_backbone("mobilenetv2").top_file == WITH_TOP
    assert get_backbone("mobilenetv2_0.35").notop_file == NO_TOP_035
    row = describe(get_backbone("inceptionv3"))
    assert row["default_size"] == 299 and row["params"] > 20e6


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet18'.*mobilenetv2"):
        get_backbone("resnet18")


def test_image_size_too_small_is_refused():
    with pytest.raises(ConfigError, match="too small for inceptionv3.*75"):
        get_backbone("inceptionv3").build(64)


@pytest.mark.parametrize("name", ["mobilenetv2_0.35", "mobilenetv3small"])
def test_registered_parameter_count_matches_keras(name):
    spec = get_backbone(name)
    assert spec.build(32).count_params() == spec.params


@pytest.mark.parametrize("name,mode", [("resnet50", "caffe"), ("mobilenetv2", "tf")])
def test_normalisation_layers_match_keras_preprocess_input(name, mode):
    import keras

    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    y = x
    for layer in normalisation_layers(get_backbone(name), "t"):
        y = layer(y)
    ref = keras.applications.imagenet_utils.preprocess_input(x.copy(), mode=mode)
    np.testing.assert_allclose(np.asarray(y), ref, atol=1e-4)


def test_rescaling_backbones_add_no_layers():
    assert normalisation_layers(get_backbone("efficientnetb0"), "t") == []
    assert normalisation_layers(get_backbone("mobilenetv3large"), "t") == []


def test_with_top_file_is_transplanted_layer_by_layer(shared_dir):
    import keras

    from edgeclf.weights import load_pretrained

    spec = get_backbone("mobilenetv2")
    path = shared_dir / "weights" / WITH_TOP
    backbone = spec.build(96)
    assert load_pretrained(backbone, spec, str(path), 96) == 104
    ref = keras.applications.MobileNetV2(weights=None, include_top=True)
    ref.load_weights(str(path))
    for name in ("Conv1", "block_16_project", "Conv_1_bn"):
        for a, b in zip(backbone.get_layer(name).get_weights(), ref.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_weights_of_another_architecture_are_refused(shared_dir):
    from edgeclf.weights import load_pretrained

    spec = get_backbone("mobilenetv2")
    backbone = spec.build(64)
    with pytest.raises(WeightsError, match="another architecture"):
        load_pretrained(backbone, spec, str(shared_dir / "weights" / NO_TOP_035), 64)
    with pytest.raises(WeightsError, match="another architecture"):
        load_pretrained(backbone, spec,
                        str(shared_dir / "weights" / "mobilenet_2_5_224_tf_no_top.h5"), 64)
    with pytest.raises(WeightsError, match="not a readable HDF5"):
        load_pretrained(backbone, spec, str(shared_dir / "weights" / "README.md"), 64)


def test_imagenet_found_in_the_keras_cache(shared_dir, tmp_path, monkeypatch):
    from edgeclf.weights import find_cached, load_pretrained

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = get_backbone("mobilenetv2_0.35")
    assert find_cached(spec) is None
    (tmp_path / "models").mkdir()
    shutil.copy(shared_dir / "weights" / NO_TOP_035, tmp_path / "models" / NO_TOP_035)
    assert find_cached(spec) == tmp_path / "models" / NO_TOP_035
    assert load_pretrained(spec.build(64), spec, "imagenet", 64) == 104


def test_imagenet_offline_error_names_the_file_and_both_fixes(tmp_path, monkeypatch):
    from edgeclf import weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = get_backbone("efficientnetb0")

    def offline(**kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(type(spec), "constructor", lambda self: offline)
    with pytest.raises(WeightsError) as err:
        weights.load_pretrained(None, spec, "imagenet", 64)
    text = str(err.value)
    assert "efficientnetb0_notop.h5" in text and str(tmp_path / "models") in text
    assert "--weights PATH" in text and "no network" in text


def test_missing_weights_file_and_none():
    from edgeclf.weights import load_pretrained

    spec = get_backbone("mobilenetv2_0.35")
    assert load_pretrained(None, spec, "none", 32) == 0
    with pytest.raises(WeightsError, match="does not exist"):
        load_pretrained(None, spec, "/nonexistent/w.h5", 32)
