"""``train(config) -> TrainResult``: one run, from a folder of images to ``models/<name>/``.

Phase 1 trains the head on the frozen backbone (on images, or on cached features with
``--strategy linear-probe``); phase 2 (``--fine-tune-epochs``) unfreezes the last layers at
a lower learning rate, BatchNorm kept in inference mode. ``best.keras`` is chosen by
validation accuracy across both phases; test metrics come from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from edgeclf.errors import ConfigError, RunError
from edgeclf.fsutil import read_json, write_json
from edgeclf.metrics import split_metrics
from edgeclf.run import RunPaths, run_lock
from edgeclf.runtime.contract import Contract

from . import cluster
from .config import DEFAULT_UNFREEZE_FRACTION, TrainConfig
from .fast import Fast, cached_predictions, choose_plan, phase1_cached, phase2_cut
from .loop import (Progress, ProgressEvent, Session, TrainState, predict, read_history,
                   run_phase, save_epoch, save_model)
from .model import (backbones_of, build_model, load_checkpoint, parse_unfreeze,
                    unfreeze)
from .optim import compile_model, make_optimizer, make_schedule
from .plan import Plan, plan_fixed
from .setup import (RunData, class_weights, make_loaders, prepare_run, resume_config,
                    select_backend, setup_devices, write_run_files)
from .tblog import ScalarWriter

log = logging.getLogger(__name__)

#: BatchNorm momentum when training from scratch (short runs need fast-moving statistics).
SCRATCH_BN_MOMENTUM = 0.9
#: Phase-1 epochs on images under ``--strategy auto`` (the head before full fine-tuning).
HEAD_EPOCHS = 10


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    config: TrainConfig
    train_seconds: float
    images_per_second: float
    best_epoch: int
    best_phase: int
    phase1_val_accuracy: float
    phase2_val_accuracy: float | None
    history: list[dict]
    checkpoint: Path
    process_id: int = 0            # of a multi-process run (only process 0 wrote the run)
    num_processes: int = 1


def train(config: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train one run. With ``num_processes > 1`` every process calls this with the same
    config but its own ``process_id`` (see :mod:`edgeclf.train.cluster`)."""
    cfg = config.resolve()
    select_backend(cfg.backend)
    group = cfg.process_group()
    cluster.start(group)
    with cluster.guard():
        paths = RunPaths(Path(cfg.out) / cfg.name)
        if cfg.resume:
            paths.require()
            cfg = resume_config(paths, cfg)
        elif paths.run_json.is_file() and not cfg.overwrite:
            raise RunError(f"{paths.root} already holds a run; pass --resume to continue it, "
                           "--overwrite to replace it, or another --name")
        cluster.barrier("checked")          # every process looked before process 0 writes
        started = time.perf_counter()
        with run_lock(paths) if group.main else contextlib.nullcontext():
            result = _train_locked(cfg, paths, progress, started)
    return result


def _emit(progress: Progress | None, message: str) -> None:
    """A stage message, said once: to the progress callback when there is one (the CLI
    prints it), else to the log."""
    if progress is not None:
        log.debug("%s", message)
        progress(ProgressEvent("stage", message=message))
    else:
        log.info("%s", message)


def _train_locked(cfg: TrainConfig, paths: RunPaths, progress: Progress | None,
                  started: float) -> TrainResult:
    import keras

    keras.utils.set_random_seed(cfg.seed)
    n_devices, batch_size = setup_devices(cfg.batch_size)
    contract = Contract(size=(cfg.image_size, cfg.image_size), resize=cfg.resize,
                        interpolation=cfg.interpolation)
    group = cfg.process_group()
    _emit(progress, f"decoding {cfg.data_dir} at {cfg.image_size}px")
    data = prepare_run(cfg, contract, paths)
    _flag_classes(progress, data)
    _emit(progress, f"building {cfg.backbone} ({cfg.weights} weights) on {cfg.backend}, "
                    f"{n_devices} device(s)" + (f" of {group.num_processes} processes "
                                                f"({group.describe()})" if group.multi else ""))
    model = build_model(cfg.members(), len(data.classes), image_size=cfg.image_size,
                        weights=cfg.weights, head=cfg.head, dropout=cfg.dropout,
                        mixed_precision=cfg.mixed_precision)
    n_unfreeze = _unfreeze_count(model, cfg)   # bad --unfreeze fails before training
    if cfg.resume:
        plan, engines = _saved_plan(cfg, paths), {}
    else:
        plan, engines = choose_plan(cfg, model, data, elapsed=time.perf_counter() - started,
                                    accelerator=_accelerator())
        if group.main:
            write_run_files(paths, cfg, data, contract, extra={
                "strategy_choice": plan.to_dict(),
                **({"processes": group.num_processes} if group.multi else {})})
    if group.multi and (plan.cached or plan.strategy == "cut-fine-tune"):
        raise ConfigError(f"{paths.root} trains with strategy {plan.strategy}, which runs in "
                          "one process: resume it without --num-processes")
    _emit(progress, f"strategy {plan.strategy}: {plan.reason}")
    state = TrainState.load(paths) if cfg.resume else TrainState()
    images_phase2 = plan.strategy != "cut-fine-tune" and plan.epochs > 0
    train_l, val_l, test_l = make_loaders(cfg, data, batch_size,
                                          augment=not plan.cached or images_phase2)
    weights = class_weights(cfg, data)
    if weights is not None and cfg.class_weights == "auto":
        _emit(progress, "classes are imbalanced: balanced class weights, and the best epoch "
                        "and head are chosen by val mean recall (--class-weights none turns "
                        "both off)")
    sess = Session(model=model, paths=paths, train=train_l, val=val_l,
                   num_classes=len(data.classes), state=state, patience=cfg.patience,
                   class_weights=weights, progress=progress,
                   history=read_history(paths, state.global_epoch) if cfg.resume else [],
                   writer=ScalarWriter(paths.logs) if group.main else None,
                   main=group.main, processes=group.num_processes)
    fast = Fast(plan=plan)
    try:
        if cfg.resume and plan.cached and not (state.phase1_done and images_phase2):
            model.set_weights(load_checkpoint(paths.last).get_weights())
        elif cfg.resume:
            sess.model = load_checkpoint_compiled(paths.last)
        if not state.phase1_done:
            _phase1(sess, cfg, data, fast, engines)
        if plan.strategy == "cut-fine-tune":
            _emit(progress, f"phase 2: fine-tuning the layers above {plan.cut} on cached "
                            f"views for {plan.epochs} epoch(s), BatchNorm frozen")
            phase2_cut(fast, cfg, model, data, sess)
        elif plan.epochs:
            _phase2(sess, cfg, plan, n_unfreeze if plan.unfreeze is None else
                    parse_unfreeze(model, plan.unfreeze))
    finally:
        train_l.close()            # the augmenting loader's worker processes, if any
    return _finish(sess, cfg, data, val_l, test_l, fast)


def _saved_plan(cfg: TrainConfig, paths: RunPaths) -> Plan:
    choice = read_json(paths.run_json).get("strategy_choice")
    if choice:
        return Plan.from_dict(choice)
    return plan_fixed("linear-probe" if cfg.strategy == "auto" else cfg.strategy,
                      head=cfg.head, fine_tune_epochs=cfg.fine_tune_epochs,
                      unfreeze=cfg.unfreeze)      # a run from before strategy_choice


def _accelerator() -> bool:
    import keras

    return any(str(d).split(":")[0].lower() in ("gpu", "cuda", "tpu")
               for d in keras.distribution.list_devices())


def _flag_classes(progress: Progress | None, data: RunData) -> None:
    """Say which classes are so small that their results mean little (``data check``'s
    rule: >= 5x fewer images than the largest, or a single image)."""
    small = data.report.small_classes
    if small:
        _emit(progress, "warning: small class(es), flagged: " + ", ".join(
            f"{c} ({data.report.counts[c]} images)" for c in small))


def _unfreeze_count(model: Any, cfg: TrainConfig) -> int | None:
    if cfg.unfreeze is not None:
        return parse_unfreeze(model, cfg.unfreeze)
    smallest = min(len(b.layers) for b in backbones_of(model))
    return max(1, int(round(smallest * DEFAULT_UNFREEZE_FRACTION)))


def load_checkpoint_compiled(path: Path) -> Any:
    """``last.keras`` with its optimizer state, to resume (built-in layers only)."""
    import keras

    load_checkpoint(path)   # the safety checks; raises on a bad file
    return keras.saving.load_model(path, safe_mode=True, compile=True)


def _compile(sess: Session, cfg: TrainConfig, lr: float, epochs: int, warmup: float) -> None:
    steps = max(1, len(sess.train)) * max(1, epochs)
    schedule = make_schedule(lr, total_steps=steps, kind=cfg.schedule,
                             warmup_steps=int(round(warmup * max(1, len(sess.train)))))
    optimizer = make_optimizer(cfg.optimizer, schedule, momentum=cfg.momentum,
                               nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    compile_model(sess.model, optimizer, label_smoothing=cfg.label_smoothing)


def _phase1(sess: Session, cfg: TrainConfig, data: RunData, fast: Fast,
            engines: dict) -> None:
    st = sess.state
    plan = fast.plan
    if plan.cached:
        if str(cfg.weights).lower() == "none":
            log.warning("linear probe on random (--weights none) features: expect poor "
                        "accuracy; use pretrained weights or --strategy fine-tune")
        what = "convex head (L2 chosen on val)" if plan.head == "convex" else "head (SGD)"
        _emit(sess.progress, f"phase 1: the {what} on cached features")
        t0 = time.perf_counter()
        best = phase1_cached(fast, cfg, sess.model, data, sess, engines)
        n_images = sum(len(data.rows[s]) for s in ("train", "val", "test"))
        _record_probe(sess, best, time.perf_counter() - t0, n_images)
        st.notes.update(engines=fast.engines, convex_head=fast.convex)
    else:
        scratch = str(cfg.weights).lower() == "none"
        if scratch:
            _train_from_scratch(sess.model)
        epochs = cfg.epochs if cfg.strategy == "fine-tune" else min(cfg.epochs, HEAD_EPOCHS)
        if st.epoch == 0 or sess.model.optimizer is None:
            _compile(sess, cfg, cfg.lr, epochs, min(cfg.warmup_epochs, epochs / 4))
        what = "the whole network from scratch" if scratch else "the head, backbone frozen"
        _emit(sess.progress, f"phase 1: training {what} for {epochs} epoch(s)")
        run_phase(sess, 1, epochs)
    st.phase1_done = True
    st.phase, st.epoch, st.bad_epochs = 2, 0, 0
    sess.save_state()


def _train_from_scratch(model: Any) -> None:
    """``--weights none``: nothing pretrained to protect, so the whole backbone trains
    (frozen random layers learn nothing), and BatchNorm statistics follow the batches
    quickly: the applications' momentum of 0.99-0.999 leaves the moving averages at their
    initial values after a short run, and inference then sees garbage."""
    import keras

    for backbone in backbones_of(model):
        backbone.trainable = True
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = min(layer.momentum, SCRATCH_BN_MOMENTUM)


def _record_probe(sess: Session, best: dict, seconds: float, n_images: int) -> None:
    """History rows for the probe's epochs; best/last checkpoints of the full model.
    Throughput counts images through the backbone (the feature pass), not probe epochs."""
    st = sess.state
    for i, row in enumerate(best["rows"]):
        record = {"epoch": st.global_epoch + i + 1, "phase": 1, "lr": float("nan"),
                  "images_per_second": row["images"] / row["seconds"] if row["seconds"] else 0,
                  "input_wait": 0.0, **{k: row[k] for k in ("loss", "accuracy", "val_loss",
                                                            "val_accuracy", "seconds")}}
        sess.history.append(record)
    best_epoch = st.global_epoch + best["best_epoch"]
    st.global_epoch += len(best["rows"])
    st.train_seconds += seconds
    st.train_images += n_images
    st.best_val, st.best_epoch, st.best_phase = best["best_val"], best_epoch, 1
    st.phase1_val = max(row["val_accuracy"] for row in best["rows"])
    last = sess.history.pop()
    save_epoch(sess, last, improved=True)


def _phase2(sess: Session, cfg: TrainConfig, plan: Plan, n_unfreeze: int | None) -> None:
    st = sess.state
    fresh = st.phase == 2 and st.epoch == 0
    if fresh:
        best = load_checkpoint(sess.paths.best)      # start from the best of phase 1
        sess.model.set_weights(best.get_weights())
        trainable = unfreeze(sess.model, n_unfreeze)
        _compile(sess, cfg, cfg.fine_tune_lr, plan.epochs,
                 min(cfg.warmup_epochs, plan.epochs / 4))
        _emit(sess.progress, f"phase 2: fine-tuning {trainable} layers "
                             f"({plan.unfreeze or n_unfreeze}) for {plan.epochs} "
                             f"epoch(s) at lr {cfg.fine_tune_lr:g}, BatchNorm frozen")
    else:
        _emit(sess.progress, f"phase 2: resuming at epoch {st.epoch + 1}")
    run_phase(sess, 2, plan.epochs)


def _finish(sess: Session, cfg: TrainConfig, data: RunData, val_l: Any, test_l: Any,
            fast: Fast) -> TrainResult:
    st = sess.state
    _emit(sess.progress, "evaluating the best checkpoint on val and test")
    best = load_checkpoint(sess.paths.best)
    out = {}
    for split, loader in (("val", val_l), ("test", test_l)):
        probs = cached_predictions(fast, best, split) if fast.plan.cached else None
        if probs is None:
            probs, labels = predict(best, loader)
        else:
            labels = data.labels[split]
        out[split] = split_metrics(labels, probs, data.classes)
    ips = st.train_images / st.train_seconds if st.train_seconds else 0.0
    plan = fast.plan
    metrics = {**out, "train_seconds": round(st.train_seconds, 2),
               "images_per_second": round(ips, 1), "best_epoch": st.best_epoch,
               "best_phase": st.best_phase,
               "phase1_val_accuracy": round(st.phase1_val, 4),
               "phase2_val_accuracy": round(st.phase2_val, 4) if st.phase2_val >= 0 else None,
               "selected_by": ("val mean recall (class weights)"
                               if sess.class_weights is not None else "val accuracy"),
               "backend": cfg.backend, "image_size": cfg.image_size,
               "strategy": plan.strategy, "strategy_reason": plan.reason,
               **({"cut": plan.cut, "views": plan.views} if plan.cut else {}),
               **({"processes": sess.processes} if sess.processes > 1 else {}),
               **st.notes}
    if sess.main:
        write_json(sess.paths.metrics, metrics)
    if sess.progress is not None:
        sess.progress(ProgressEvent("done", logs=metrics))
    return TrainResult(run_dir=sess.paths.root, metrics=metrics,
                       config=dataclasses.replace(cfg, resume=False),
                       train_seconds=st.train_seconds, images_per_second=ips,
                       best_epoch=st.best_epoch, best_phase=st.best_phase,
                       phase1_val_accuracy=st.phase1_val,
                       phase2_val_accuracy=st.phase2_val if st.phase2_val >= 0 else None,
                       history=list(sess.history), checkpoint=sess.paths.best,
                       process_id=cfg.process_group().process_id,
                       num_processes=sess.processes)


__all__ = ["train", "TrainResult", "save_model"]
