"""The epoch loop of one phase: numpy batches -> ``train_on_batch``, validation, history,
TensorBoard scalars, ``last.keras`` + ``best.keras`` + resume state after every epoch.

``train_on_batch`` on fixed-shape batches compiles once per phase (JAX and TensorFlow) and
takes no ``tf.data``; the loop, not Keras's ``fit``, owns resume and early stopping, so a
killed run continues from its last completed epoch with its optimizer state.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from edgeclf.data.loader import BatchLoader
from edgeclf.fsutil import atomic_path, read_json, write_json, write_text
from edgeclf.metrics import cross_entropy, selection_score
from edgeclf.run import RunPaths

from . import cluster
from .optim import current_lr
from .tblog import ScalarWriter

log = logging.getLogger(__name__)

HISTORY_FIELDS = ["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                  "seconds", "images_per_second", "input_wait"]


@dataclass
class ProgressEvent:
    """What the library reports while it trains (the CLI draws it)."""

    kind: str                  # stage | features | epoch_start | step | epoch_end | done
    message: str = ""
    phase: int = 0
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    logs: dict = field(default_factory=dict)


Progress = Callable[[ProgressEvent], None]


@dataclass
class TrainState:
    """Resume state (``checkpoints/state.json``), written after ``last.keras``."""

    phase: int = 1
    epoch: int = 0                 # epochs completed in ``phase``
    global_epoch: int = 0
    phase1_done: bool = False
    best_val: float = -1.0
    best_epoch: int = 0
    best_phase: int = 0
    bad_epochs: int = 0
    train_seconds: float = 0.0
    train_images: int = 0
    phase1_val: float = -1.0
    phase2_val: float = -1.0
    notes: dict = field(default_factory=dict)      # what metrics.json adds (engines, ...)

    def save(self, paths: RunPaths) -> None:
        write_json(paths.state, asdict(self))

    @classmethod
    def load(cls, paths: RunPaths) -> "TrainState":
        d = read_json(paths.state)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Session:
    """Everything a phase needs."""

    model: Any
    paths: RunPaths
    train: BatchLoader
    val: BatchLoader
    num_classes: int
    state: TrainState
    patience: int
    class_weights: np.ndarray | None = None
    progress: Progress | None = None
    history: list[dict] = field(default_factory=list)
    writer: ScalarWriter | None = None
    #: What ``last.keras``/``best.keras`` hold when ``model`` trains only part of it.
    checkpoint_model: Any = None
    #: Whether this process writes the run (process 0 of a multi-process run), and how
    #: many processes share each batch.
    main: bool = True
    processes: int = 1

    def emit(self, event: ProgressEvent) -> None:
        if self.progress is not None:
            self.progress(event)

    def save_state(self) -> None:
        if self.main:
            self.state.save(self.paths)


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def predict(model: Any, loader: BatchLoader) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels of every row of ``loader`` (fixed-shape batches)."""
    probs, labels = [], []
    for batch in loader.epoch(0):
        p = np.asarray(model.predict_on_batch(batch.x), dtype=np.float32)
        probs.append(p[:batch.n])
        labels.append(batch.y[:batch.n])
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int32)
    return np.concatenate(probs), np.concatenate(labels)


def train_epoch(sess: Session, phase: int, epoch: int, epochs: int) -> dict:
    loader, model = sess.train, sess.model
    steps = len(loader)
    sess.emit(ProgressEvent("epoch_start", phase=phase, epoch=epoch + 1, epochs=epochs,
                            steps=steps))
    loader.stats.reset()
    t0 = time.perf_counter()
    loss_sum = acc_sum = 0.0
    seen = 0
    if sess.processes > 1:
        _log_shard(sess, phase, epoch)
    for b, batch in enumerate(loader.epoch(sess.state.global_epoch)):
        y = one_hot(batch.y, sess.num_classes)
        sw = sess.class_weights[batch.y] if sess.class_weights is not None else None
        logs = model.train_on_batch(batch.x, y, sample_weight=sw, return_dict=True)
        n = batch.n * sess.processes            # the loss and accuracy are the global batch's
        loss_sum += float(logs["loss"]) * n
        acc_sum += float(logs.get("accuracy", logs.get("categorical_accuracy", 0.0))) * n
        seen += n
        sess.emit(ProgressEvent("step", phase=phase, epoch=epoch + 1, epochs=epochs,
                                step=b + 1, steps=steps,
                                logs={"loss": loss_sum / seen, "accuracy": acc_sum / seen}))
    seconds = time.perf_counter() - t0
    return {"loss": loss_sum / max(seen, 1), "accuracy": acc_sum / max(seen, 1),
            "seconds": seconds, "images": seen,
            "images_per_second": seen / seconds if seconds else 0.0,
            "input_wait": loader.stats.wait_seconds / seconds if seconds else 0.0}


def _log_shard(sess: Session, phase: int, epoch: int) -> None:
    """Which training images this process reads this epoch (a digest: processes differ)."""
    rows = sess.train.rows_of_epoch(sess.state.global_epoch)
    digest = hashlib.sha256(np.ascontiguousarray(rows, np.int64).tobytes()).hexdigest()[:16]
    log.info("process %d of %d, phase %d epoch %d: its shard is %d training image(s), "
             "rows sha256 %s", sess.train.shard_index, sess.processes, phase, epoch + 1,
             len(rows), digest)


def validate(sess: Session) -> tuple[float, float, float]:
    """Val loss, accuracy and the score that picks the best epoch
    (:func:`edgeclf.metrics.selection_score`: balanced when classes are weighted)."""
    probs, labels = predict(sess.model, sess.val)
    if not len(labels):
        return float("nan"), float("nan"), float("nan")
    pred = probs.argmax(1)
    return (cross_entropy(probs, labels), float((pred == labels).mean()),
            selection_score(pred, labels, balanced=sess.class_weights is not None))


def run_phase(sess: Session, phase: int, epochs: int, *, early_stopping: bool = True) -> None:
    """Train ``phase`` from ``state.epoch`` up to ``epochs``, checkpointing each epoch;
    ``early_stopping`` False: every epoch runs (the best one is still kept)."""
    st = sess.state
    while st.epoch < epochs:
        row = train_epoch(sess, phase, st.epoch, epochs)
        val_loss, val_acc, val_score = validate(sess)
        st.epoch += 1
        st.global_epoch += 1
        st.train_seconds += row["seconds"]
        st.train_images += row["images"]
        record = {"epoch": st.global_epoch, "phase": phase, "loss": row["loss"],
                  "accuracy": row["accuracy"], "val_loss": val_loss, "val_accuracy": val_acc,
                  "lr": current_lr(sess.model.optimizer), "seconds": row["seconds"],
                  "images_per_second": row["images_per_second"],
                  "input_wait": row["input_wait"]}
        if val_acc != val_acc:                  # no val split: the training accuracy
            val_acc = val_score = row["accuracy"]
        improved = val_score > st.best_val
        if improved:
            st.best_val, st.best_epoch, st.best_phase, st.bad_epochs = (
                val_score, st.global_epoch, phase, 0)
        else:
            st.bad_epochs += 1
        setattr(st, f"phase{phase}_val", max(getattr(st, f"phase{phase}_val"), val_acc))
        if early_stopping and stop_early(st, sess.patience, epochs):
            log.info("early stopping: the validation score has not improved for %d epochs",
                     st.bad_epochs)
            st.epoch = epochs
        save_epoch(sess, record, improved)
        sess.emit(ProgressEvent("epoch_end", phase=phase, epoch=st.epoch, epochs=epochs,
                                logs=record))


def stop_early(st: TrainState, patience: int, epochs: int) -> bool:
    """Whether the phase ends now: ``patience`` epochs without a better validation score,
    never in the first half of the phase. The learning rate is still high there (warm-up,
    then cosine decay), and a fine-tuning phase often starts below the previous phase's
    best before it passes it: stopping then would keep the previous phase's model."""
    return bool(patience) and st.bad_epochs >= patience and epochs / 2 <= st.epoch < epochs


def save_epoch(sess: Session, record: dict, improved: bool) -> None:
    """last.keras (with optimizer state), best.keras, history.csv, TensorBoard, then the
    resume state — in that order, so state.json never points past a saved checkpoint.
    Only process 0 of a multi-process run writes; the others wait for it (they read
    best.keras next)."""
    paths = sess.paths
    sess.history.append(record)
    if sess.main:
        save_model(sess.checkpoint_model if sess.checkpoint_model is not None else sess.model,
                   paths.last)
        if improved:
            with atomic_path(paths.best) as tmp:
                shutil.copyfile(paths.last, tmp)
        write_history(paths, sess.history)
        if sess.writer is not None:
            sess.writer.scalars(record["epoch"], {k: record[k] for k in
                                                  ("loss", "accuracy", "val_loss",
                                                   "val_accuracy", "lr", "images_per_second")})
        sess.save_state()
    cluster.barrier(f"epoch {record['epoch']} saved")


def save_model(model: Any, path: Any) -> None:
    with atomic_path(path) as tmp, cluster.without_distribution():
        model.save(tmp)


def write_history(paths: RunPaths, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore",
                       lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    write_text(paths.history, buf.getvalue())


def read_history(paths: RunPaths, upto: int) -> list[dict]:
    """History rows of a run being resumed, up to global epoch ``upto``."""
    if not paths.history.is_file():
        return []
    rows = []
    with open(paths.history, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            r = {k: (float(v) if k not in ("epoch", "phase") else int(v)) for k, v in
                 row.items() if v not in (None, "")}
            if r.get("epoch", 0) <= upto:
                rows.append(r)
    return rows
