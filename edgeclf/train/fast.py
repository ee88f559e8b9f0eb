"""The cached paths on a CPU: measuring for ``--strategy auto`` (:mod:`.plan`), phase 1 on
cached features (the convex head, or the SGD probe for ``--head mlp``), phase 2 on the
cut cache (:mod:`.cut`), and the final predictions from the cached representations.

The frozen part runs once per image (and view) through the fastest engine
(:mod:`.engine`); its agreement with Keras is recorded in ``metrics.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgeclf.weights import weights_id

from . import features as feats
from .config import TrainConfig
from .convex import fit_convex_head
from .cut import CutCache, CutModels, ViewLoader, build_cut_cache, cut_candidates, cut_key, split_at
from .engine import Engine, fastest_engine
from .loop import ProgressEvent, Session, one_hot, run_phase
from .model import FEATURES, backbones_of, build_head_model, copy_head, feature_model
from .optim import compile_model, make_optimizer, make_schedule
from .plan import CutCost, Plan, plan_auto, plan_cut, plan_fixed
from .setup import RunData

log = logging.getLogger(__name__)

#: Images the engine is checked against Keras on (the first of the training split).
CHECK_IMAGES = 8
#: Rows per Keras call when pooling cut activations or predicting from the cache.
CHUNK = 64


@dataclass
class Fast:
    """What the cached phases share within one process (rebuilt on ``--resume``)."""

    plan: Plan
    engines: dict[str, dict] = field(default_factory=dict)
    cut_models: CutModels | None = None
    cut_cache: CutCache | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)
    convex: dict = field(default_factory=dict)


def _sample(data: RunData, n: int = CHECK_IMAGES) -> np.ndarray:
    rows = np.sort(data.rows["train"][:n])
    return np.asarray(data.cache.images[rows], np.float32)


def choose_plan(cfg: TrainConfig, model: Any, data: RunData, *, elapsed: float,
                accelerator: bool) -> tuple[Plan, dict[str, Engine]]:
    """The run's plan; for auto on a CPU, measured here (engines built while measuring
    are returned for reuse, keyed by cut)."""
    backbones = backbones_of(model)
    cuts = cut_candidates(backbones[0]) if len(backbones) == 1 else []
    n = {s: len(data.rows[s]) for s in ("train", "val", "test")}
    if cfg.strategy == "cut-fine-tune":
        return plan_cut(cuts[0] if cuts else None, head=cfg.head, n_train=n["train"],
                        fine_tune_epochs=cfg.fine_tune_epochs), {}
    if cfg.strategy != "auto":
        return plan_fixed(cfg.strategy, head=cfg.head, fine_tune_epochs=cfg.fine_tune_epochs,
                          unfreeze=cfg.unfreeze), {}
    engines: dict[str, Engine] = {}
    first: dict = {}
    spent = [0.0]
    weights_before = model.get_weights()

    def costs(k: int) -> CutCost | None:
        if k >= len(cuts):
            return None
        t0 = time.perf_counter()
        cm = split_at(model, cuts[k])
        sample = _sample(data, 16)
        acts = np.asarray(cm.bottom.predict_on_batch(sample[:4]), np.float32)
        batch = np.repeat(acts, 4, axis=0)[:16]
        fwd = _per_image(lambda: cm.top.predict_on_batch(batch), len(batch))
        if k == 0:
            engine = fastest_engine(cm.bottom, sample[:CHECK_IMAGES])
            engines[cuts[k]] = engine
            first.update(convert=time.perf_counter() - t0,
                         bottom=_per_image(lambda: engine.run(sample), len(sample)), fwd=fwd)
            bottom, fixed = first["bottom"], 0.0
        else:   # the bottom grows by what the top loses; one more conversion
            bottom, fixed = first["bottom"] + max(0.0, first["fwd"] - fwd), first["convert"]
        compile_model(cm.top, make_optimizer("adam", 1e-5), label_smoothing=0.0)
        y = one_hot(np.zeros(len(batch), np.int64), len(data.classes))
        step = _per_image(lambda: cm.top.train_on_batch(batch, y), len(batch))
        model.set_weights(weights_before)
        spent[0] += time.perf_counter() - t0       # measuring is part of the budget
        return CutCost(cut=cuts[k], bottom=bottom, step=step, forward=fwd,
                       fixed=fixed + spent[0])

    t0 = time.perf_counter()
    plan = plan_auto(head=cfg.head, pretrained=str(cfg.weights).lower() != "none",
                     accelerator=accelerator, single_backbone=len(backbones) == 1,
                     fine_tune_epochs=cfg.fine_tune_epochs, n_train=n["train"],
                     n_val=n["val"], n_test=n["test"], budget=float(cfg.time_budget),
                     elapsed=elapsed, costs=costs)
    for b in backbones:                # measuring unfroze layers above the cuts
        for layer in b.layers:
            layer.trainable = False
        b.trainable = False
    plan.measured["seconds"] = round(time.perf_counter() - t0, 1)
    return plan, engines


def _per_image(fn: Callable[[], Any], n: int, repeats: int = 2) -> float:
    fn()                                # compile / warm up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / (repeats * n)


def _progress(sess: Session) -> Callable[[int, int], None]:
    def tick(done: int, total: int) -> None:
        sess.emit(ProgressEvent("features", phase=1, step=done, steps=total))
    return tick


def _pool(pooled: Any, acts: np.ndarray) -> np.ndarray:
    out = []
    for s in range(0, len(acts), CHUNK):
        chunk = np.asarray(acts[s:s + CHUNK], np.float32)
        k = len(chunk)
        if k < CHUNK:                    # one traced shape
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], CHUNK - k, axis=0)])
        out.append(np.asarray(pooled.predict_on_batch(chunk), np.float32)[:k])
    if not out:
        return np.zeros((0, int(pooled.outputs[0].shape[-1])), np.float32)
    return np.concatenate(out)


def ensure_cut(fast: Fast, cfg: TrainConfig, model: Any, data: RunData, sess: Session,
               engines: dict[str, Engine] | None = None) -> None:
    """Split the model at the plan's cut and fill the cut cache (a hit after a resume)."""
    if fast.cut_cache is not None:
        return
    plan = fast.plan
    fast.cut_models = split_at(model, plan.cut)
    engine: Engine | None = (engines or {}).get(plan.cut)

    def run(x: np.ndarray) -> np.ndarray:
        nonlocal engine
        if engine is None:
            engine = fastest_engine(fast.cut_models.bottom, _sample(data))
        return engine.run(x)

    key = cut_key(feats.features_key(data.cache, [m.name for m in cfg.members()],
                                     weights_id(cfg.weights), cfg.mixed_precision),
                  plan.cut, plan.views, cfg.augmentation(), cfg.seed) + (
        "m" if cfg.horizontal_flip else "")
    fast.cut_cache = build_cut_cache(run, data.cache, data.rows, key, views=plan.views,
                                     augment=cfg.augmentation(), mirror=cfg.horizontal_flip,
                                     batch_size=sess.train.batch_size, seed=cfg.seed,
                                     workers=cfg.workers, progress=_progress(sess),
                                     engine_record=lambda: engine and engine.record())
    if fast.cut_cache.engine:
        fast.engines["cut_bottom"] = fast.cut_cache.engine


def cached_features(fast: Fast, cfg: TrainConfig, model: Any, data: RunData,
                    sess: Session, engines: dict[str, Engine]) -> dict[str, np.ndarray]:
    """Pooled features: ``train`` (+ mirrored rows unless --no-horizontal-flip), ``val``,
    ``test``; from the cut cache under a cut plan, else from the feature cache."""
    flip = bool(cfg.horizontal_flip)
    if fast.plan.strategy == "cut-fine-tune":
        ensure_cut(fast, cfg, model, data, sess, engines)
        cc, pooled = fast.cut_cache, fast.cut_models.pooled
        train_views = [0, 1] if flip and cc.train.shape[1] > 1 else [0]
        out = {"train": np.concatenate([_pool(pooled, cc.train[:, v]) for v in train_views]),
               "val": _pool(pooled, cc.val), "test": _pool(pooled, cc.test)}
        out["train_labels"] = np.tile(data.labels["train"], len(train_views))
        return out
    fmodel = feature_model(model)
    engine: Engine | None = None

    def run(x: np.ndarray) -> np.ndarray:
        nonlocal engine
        if engine is None:
            engine = fastest_engine(fmodel, _sample(data))
        return engine.run(x)

    base = feats.features_key(data.cache, [m.name for m in cfg.members()],
                              weights_id(cfg.weights), cfg.mixed_precision, "engine-checked")
    rows = np.concatenate([data.rows[s] for s in ("train", "val", "test")])
    common = dict(batch_size=sess.train.batch_size, workers=cfg.workers,
                  progress=_progress(sess), engine_record=lambda: engine and engine.record())
    every = feats.cached_features(run, data.cache, rows, base, **common)
    fast.engines["features"] = feats.stored_engine(base)
    n_tr, n_va = len(data.rows["train"]), len(data.rows["val"])
    out = {"train": every[:n_tr], "val": every[n_tr:n_tr + n_va], "test": every[n_tr + n_va:]}
    if flip:
        mirrored = feats.cached_features(run, data.cache, data.rows["train"],
                                         base + "-mirrored", flip=True, **common)
        out["train"] = np.concatenate([out["train"], mirrored])
    out["train_labels"] = np.tile(data.labels["train"], 2 if flip else 1)
    return out


def phase1_cached(fast: Fast, cfg: TrainConfig, model: Any, data: RunData, sess: Session,
                  engines: dict[str, Engine]) -> dict:
    """The head on cached features (convex, or SGD for an mlp head); the weights go into
    ``model``. Returns the probe record ``{"best_epoch", "best_val", "rows"}``."""
    f = cached_features(fast, cfg, model, data, sess, engines)
    fast.features = f
    y_tr, y_va = f["train_labels"], data.labels["val"]
    n_classes = len(data.classes)
    if fast.plan.head == "convex":
        t0 = time.perf_counter()
        fit = fit_convex_head(f["train"], y_tr, f["val"], y_va, num_classes=n_classes,
                              class_weight=sess.class_weights)
        rows, mirrored = int(len(y_tr)), len(y_tr) > len(data.labels["train"])
        if mirrored and len(y_va):    # mirrored rows kept only when val says they help
            n = len(data.labels["train"])
            plain = fit_convex_head(f["train"][:n], y_tr[:n], f["val"], y_va,
                                    num_classes=n_classes, class_weight=sess.class_weights)
            log.info("convex head: val score %.4f with mirrored rows, %.4f without",
                     fit.val_score, plain.val_score)
            if (plain.val_score, -plain.val_loss) > (fit.val_score, -fit.val_loss):
                fit, rows, mirrored = plain, n, False
        model.get_layer("head_logits").set_weights([fit.kernel, fit.bias])
        fast.convex = {"l2": fit.l2, "grid": fit.grid, "seconds": fit.seconds,
                       "train_rows": rows, "mirrored_rows": mirrored}
        probs = fit.predict_proba(f["val"]) if len(y_va) else None
        val_acc = fit.val_accuracy if fit.val_accuracy is not None else fit.train_accuracy
        row = {"loss": float("nan"), "accuracy": fit.train_accuracy,
               "val_loss": fit.val_loss if probs is not None else float("nan"),
               "val_accuracy": val_acc, "seconds": time.perf_counter() - t0,
               "images": int(len(y_tr))}
        score = fit.val_score if fit.val_score is not None else fit.train_accuracy
        return {"best_epoch": 1, "best_val": score, "rows": [row]}
    head = build_head_model(f["train"].shape[1], n_classes, head=cfg.head,
                            dropout=cfg.dropout)
    steps = -(-len(y_tr) // feats.PROBE_BATCH)
    schedule = make_schedule(cfg.lr, total_steps=steps * cfg.epochs, kind=cfg.schedule,
                             warmup_steps=int(cfg.warmup_epochs * steps))
    compile_model(head, make_optimizer(cfg.optimizer, schedule, momentum=cfg.momentum,
                                       nesterov=cfg.nesterov, weight_decay=cfg.weight_decay),
                  label_smoothing=cfg.label_smoothing)
    best = feats.train_probe(head, (f["train"], y_tr), (f["val"], y_va), epochs=cfg.epochs,
                             num_classes=n_classes, sample_weight=sess.class_weights,
                             patience=feats.PROBE_PATIENCE, seed=cfg.seed)
    copy_head(head, model)
    return best


def phase2_cut(fast: Fast, cfg: TrainConfig, model: Any, data: RunData,
               sess: Session) -> None:
    """The layers above the cut and the head, trained on the cached views (BatchNorm
    frozen); checkpoints are of the full model."""
    ensure_cut(fast, cfg, model, data, sess)
    cm, cc, plan, st = fast.cut_models, fast.cut_cache, fast.plan, sess.state
    sess.train = ViewLoader(cc.train, data.labels["train"], batch_size=sess.train.batch_size,
                            train=True, seed=cfg.seed)
    sess.val = ViewLoader(cc.val, data.labels["val"], batch_size=sess.val.batch_size,
                          train=False)
    sess.model, sess.checkpoint_model = cm.top, model
    steps = max(1, len(sess.train))
    schedule = make_schedule(cfg.fine_tune_lr, total_steps=steps * plan.epochs,
                             kind=cfg.schedule, warmup_steps=int(min(
                                 cfg.warmup_epochs, plan.epochs / 4) * steps))
    optimizer = make_optimizer(cfg.optimizer, schedule, momentum=cfg.momentum,
                               nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    compile_model(cm.top, optimizer, label_smoothing=cfg.label_smoothing)
    if st.epoch:            # resumed: the schedule continues (the moments start afresh)
        optimizer.build(cm.top.trainable_variables)
        optimizer.iterations.assign(steps * st.epoch)
    # no early stopping: the planned epochs fit the budget, each costs seconds, and the
    # end of the cosine schedule is where the top usually does best
    run_phase(sess, 2, plan.epochs, early_stopping=False)


def cached_predictions(fast: Fast, best: Any, split: str) -> np.ndarray | None:
    """Probabilities of the ``best`` checkpoint on ``split`` from the cached
    representations (the frozen part is what was cached), or None when not cached."""
    if fast.plan.strategy == "cut-fine-tune" and fast.cut_cache is not None:
        top = split_at(best, fast.plan.cut).top
        return _pool(top, getattr(fast.cut_cache, split))
    if fast.plan.strategy == "linear-probe" and not fast.plan.epochs and split in fast.features:
        import keras

        head = keras.Model(best.get_layer(FEATURES).output, best.outputs[0])
        return _pool(head, fast.features[split])
    return None
