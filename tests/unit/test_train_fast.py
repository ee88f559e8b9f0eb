"""The cached paths on tiny generated data (32 px, MobileNetV2 0.35 with its ImageNet
weights from ../shared, so features are not all zero): the convex head with mirrored rows,
the onnxruntime engine checked against Keras, cut-cache fine-tuning into one Keras model,
the atomic cut cache, --resume inside the cut phase, and a one-image class."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeclf.data import prepare_data
from edgeclf.data.augment import AugmentConfig
from edgeclf.run import RunPaths
from edgeclf.runtime.contract import Contract
from edgeclf.train import TrainConfig, load_checkpoint, train

TINY = dict(backbone="mobilenetv2_0.35", image_size=32, batch_size=8, workers=1)
WEIGHTS = "weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECLF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def weights(shared_dir):
    path = shared_dir / WEIGHTS
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return str(path)


class Stop(Exception):
    pass


def test_cut_fine_tune_trains_one_keras_model_and_resumes(shapes_dir, tmp_path, cache_dir,
                                                          weights):
    def stop_after_first_cut_epoch(ev):
        if ev.kind == "epoch_end" and ev.logs.get("phase") == 2 and ev.epoch == 1:
            raise Stop

    cfg = TrainConfig(data_dir=str(shapes_dir), out=str(tmp_path), name="cut",
                      strategy="cut-fine-tune", fine_tune_epochs=2, weights=weights, **TINY)
    with pytest.raises(Stop):
        train(cfg, progress=stop_after_first_cut_epoch)
    paths = RunPaths(tmp_path / "cut")
    choice = json.loads(paths.run_json.read_text())["strategy_choice"]
    assert choice["strategy"] == "cut-fine-tune" and choice["cut"] and choice["views"] >= 2
    cuts = list((cache_dir / "cuts").iterdir())
    assert len(cuts) == 1 and (cuts[0] / "done.json").is_file()
    stamp = (cuts[0] / "train.npy").stat().st_mtime_ns
    result = train(TrainConfig(out=str(tmp_path), name="cut", resume=True, workers=1))
    assert (cuts[0] / "train.npy").stat().st_mtime_ns == stamp        # cache hit, reused
    history = paths.history.read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in history] == ["1", "2", "2"]
    m = result.metrics
    assert m["strategy"] == "cut-fine-tune" and m["cut"] == choice["cut"]
    assert m["selected_by"] == "val accuracy"          # balanced classes
    engine = m["engines"]["cut_bottom"]
    assert engine["engine"] == "onnxruntime" and engine["max_abs_diff_vs_keras"] <= 1e-3
    assert m["convex_head"]["l2"] in [r["l2"] for r in m["convex_head"]["grid"]]
    # the cut-trained layers live in the one saved model: its own predictions on the test
    # images give the metrics computed from the cache
    best = load_checkpoint(paths.best)
    assert [lyr.name for lyr in best.layers][-1] == "probabilities"
    split = json.loads(paths.split.read_text())
    data = prepare_data(shapes_dir, Contract(size=(32, 32)))
    index = {p: i for i, p in enumerate(data.cache.relpaths)}
    x = np.asarray(data.cache.images[[index[p] for p in split["test"]]], np.float32)
    y = np.array([split["classes"].index(p.split("/")[0]) for p in split["test"]])
    acc = float((np.asarray(best.predict_on_batch(x)).argmax(1) == y).mean())
    assert acc == pytest.approx(m["test"]["accuracy"], abs=1e-4)
    assert {"min_recall", "macro_f1", "mean_recall"} <= set(m["test"])


def test_probe_mirrors_rows_unless_told_not_to_and_one_image_classes_train(
        shapes_dir, tmp_path, cache_dir, weights):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    lonely = sorted(p for p in data.iterdir() if p.is_dir())[0]
    for f in sorted(lonely.iterdir())[1:]:
        f.unlink()
    common = dict(data_dir=str(data), out=str(tmp_path), strategy="linear-probe",
                  weights=weights, **TINY)
    events = []
    flip = train(TrainConfig(name="flip", **common), progress=events.append).metrics
    plain = train(TrainConfig(name="plain", horizontal_flip=False, **common)).metrics
    n_train = len(json.loads(RunPaths(tmp_path / "flip").split.read_text())["train"])
    # mirrored rows are tried and kept only when val says they help
    mirrored = flip["convex_head"]["mirrored_rows"]
    assert flip["convex_head"]["train_rows"] == (2 if mirrored else 1) * n_train
    assert plain["convex_head"]["train_rows"] == n_train
    assert plain["convex_head"]["mirrored_rows"] is False
    assert flip["engines"]["features"]["max_abs_diff_vs_keras"] <= 1e-3
    assert flip["strategy"] == "linear-probe" and flip["test"]["accuracy"] > 0.5
    # the one-image class trained (it is in the split's training part), and was flagged
    said = " ".join(e.message for e in events if e.kind == "stage")
    assert f"{lonely.name} (1 images)" in said and "balanced class weights" in said
    # weighted classes: the head's strength (and any best epoch) chosen by val mean recall
    assert "val mean recall" in said and flip["selected_by"] == "val mean recall (class weights)"
    assert all("val_mean_recall" in row for row in flip["convex_head"]["grid"])
    assert flip["test"]["per_class"][lonely.name]["support"] == 0
    report = json.loads(RunPaths(tmp_path / "flip").data_report.read_text())
    assert lonely.name in report["small_classes"]


def test_a_cut_cache_killed_half_way_is_never_used(shapes_dir, cache_dir):
    from edgeclf.train.cut import build_cut_cache

    data = prepare_data(shapes_dir, Contract(size=(16, 16)))
    rows = {"train": np.arange(0, 12), "val": np.arange(12, 16), "test": np.arange(16, 18)}
    calls = []

    def run(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise KeyboardInterrupt          # killed while caching
        return x[..., :1] / 255.0

    kw = dict(views=3, augment=AugmentConfig(), mirror=True, batch_size=4, seed=0)
    with pytest.raises(KeyboardInterrupt):
        build_cut_cache(run, data.cache, rows, "k", **kw)
    assert not any((cache_dir / "cuts").rglob("*.npy"))       # nothing left to reuse
    calls.extend([0] * 10)                                    # no more failures
    made = build_cut_cache(run, data.cache, rows, "k", **kw)
    assert made.computed and made.train.shape == (12, 3, 16, 16, 1)
    clean = np.asarray(data.cache.images[:12], np.float32)[..., :1] / 255.0
    np.testing.assert_allclose(made.train[:, 0], clean, atol=1e-3)
    np.testing.assert_allclose(made.train[:, 1], clean[:, :, ::-1], atol=1e-3)  # mirrored
    again = build_cut_cache(run, data.cache, rows, "k", **kw)
    assert not again.computed and np.array_equal(again.val, made.val)
    other = build_cut_cache(run, data.cache, {**rows, "test": np.arange(16, 19)}, "k", **kw)
    assert other.computed and len(other.test) == 3            # other rows: recomputed


def test_auto_measures_the_cuts_and_falls_back_when_the_budget_is_too_small(
        shapes_dir, tmp_path, cache_dir, weights):
    from edgeclf.train.fast import choose_plan
    from edgeclf.train.model import backbones_of, build_model
    from edgeclf.train.setup import prepare

    cfg = TrainConfig(data_dir=str(shapes_dir), weights=weights, time_budget="1s",
                      **TINY).resolve()
    data = prepare(cfg, Contract(size=(32, 32)), None)
    model = build_model(cfg.members(), len(data.classes), image_size=32, weights=weights)
    before = [w.copy() for w in model.get_weights()]
    plan, engines = choose_plan(cfg, model, data, elapsed=0.0, accelerator=False)
    assert plan.strategy == "linear-probe" and "too small for any fine-tuning" in plan.reason
    cuts = [k for k in plan.measured if k != "seconds"]
    assert len(cuts) >= 2 and all(plan.measured[c]["bottom"] > 0 and
                                  plan.measured[c]["step"] > 0 for c in cuts)
    assert set(engines) == {cuts[0]} and engines[cuts[0]].max_abs_diff <= 1e-3
    # measuring trained a step: the weights are back, the backbone frozen again
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert len(model.trainable_weights) == 2             # head_logits kernel + bias only
    assert not any(b.trainable for b in backbones_of(model))
