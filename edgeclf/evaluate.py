"""Classification metrics and ``edgeclf eval``: one model on labelled images.

:func:`classification_metrics` is the one metrics function of edgeclf (parity, eval and
training all call it). :func:`evaluate` runs a model — a run's Keras checkpoint, any
artifact edgeclf exported, or a foreign ONNX/TFLite file given a labels file — on a run's
split or on a folder with one sub-folder per class, and :func:`write_eval` writes
``eval.json`` and ``confusion_matrix.png``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeclf.report.html import refresh_report
from edgeclf.errors import ConfigError, DataError, ModelError
from edgeclf.fsutil import write_json
from edgeclf.run import RunPaths

log = logging.getLogger(__name__)

#: How many of the largest off-diagonal confusion cells are reported.
WORST_CONFUSIONS = 10
TOP_K = 5
#: Misclassified images listed in eval.json (the most confident mistakes first).
MAX_MISCLASSIFIED = 200
#: Above this many classes eval.json stores the confusion matrix as non-zero cells only.
DENSE_CONFUSION_MAX = 256

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ClassScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Confusion:
    true: str
    predicted: str
    count: int
    rate: float          # fraction of the true class's images predicted as ``predicted``


@dataclass(frozen=True)
class ClassificationMetrics:
    n: int
    accuracy: float
    top_k: int
    top_k_accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: list[ClassScore]
    confusion: np.ndarray                  # (C, C) int: rows true, columns predicted
    worst_confusions: list[Confusion]
    labels: list[str]

    @property
    def top5(self) -> float:
        return self.top_k_accuracy

    def split_summary(self, digits: int = 4) -> dict:
        """The per-split shape of ``metrics.json`` (what ``edgeclf.train`` publishes, less
        its ``loss``): accuracy, top5, n, macro_f1, per_class {label: {precision, recall,
        f1, support}}, rounded to ``digits``."""
        r = lambda x: round(float(x), digits)  # noqa: E731
        return {"accuracy": r(self.accuracy) if self.n else None,
                "top5": r(self.top_k_accuracy) if self.n else None, "n": self.n,
                "macro_f1": r(self.macro_f1) if self.n else None,
                "per_class": {c.label: {"precision": r(c.precision), "recall": r(c.recall),
                                        "f1": r(c.f1), "support": c.support}
                              for c in self.per_class}}

    def to_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "top5": self.top_k_accuracy,
                "top_k": self.top_k, "macro_f1": self.macro_f1,
                "weighted_f1": self.weighted_f1,
                "per_class": [asdict(c) for c in self.per_class],
                "worst_confusions": [asdict(c) for c in self.worst_confusions],
                "labels": list(self.labels), **self._confusion_json()}

    def _confusion_json(self) -> dict:
        """Rows true, columns predicted; for many classes ``[[true, predicted, count]]``."""
        if len(self.labels) <= DENSE_CONFUSION_MAX:
            return {"confusion_matrix": self.confusion.tolist()}
        return {"confusion_cells": [[int(i), int(j), int(self.confusion[i, j])]
                                    for i, j in zip(*np.nonzero(self.confusion))]}


def classification_metrics(y_true: Sequence[int] | np.ndarray, probs: np.ndarray,
                           labels: Sequence[str], *, k: int = TOP_K,
                           worst: int = WORST_CONFUSIONS) -> ClassificationMetrics:
    """Accuracy, top-k, per-class precision/recall/F1/support and the confusion matrix.

    ``probs`` is (N, C) scores (probabilities or logits: only their order matters);
    ``y_true`` holds class indices into ``labels``.
    """
    probs = np.asarray(probs)
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    c = len(labels)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (N, C) with N = len(y_true) = {y.shape[0]}; "
                         f"got shape {probs.shape}")
    if probs.shape[1] != c:
        raise ModelError(f"the model outputs {probs.shape[1]} classes but there are {c} "
                         "labels: the labels do not belong to this model")
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"y_true holds class indices outside 0..{c - 1}")
    n = int(y.size)
    pred = probs.argmax(axis=1) if n else np.zeros(0, np.int64)
    kk = max(1, min(k, c))
    topk = np.argpartition(-probs, kk - 1, axis=1)[:, :kk] if n else np.zeros((0, kk))
    cm = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(c), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(c), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(c),
                   where=(precision + recall) > 0)
    present = support > 0
    return ClassificationMetrics(
        n=n, accuracy=float(tp.sum() / n) if n else 0.0, top_k=kk,
        top_k_accuracy=float((topk == y[:, None]).any(axis=1).mean()) if n else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        weighted_f1=float((f1 * support).sum() / n) if n else 0.0,
        per_class=[ClassScore(str(labels[i]), float(precision[i]), float(recall[i]),
                              float(f1[i]), int(support[i])) for i in range(c)],
        confusion=cm, worst_confusions=_worst(cm, labels, worst), labels=list(labels))


def _worst(cm: np.ndarray, labels: Sequence[str], worst: int) -> list[Confusion]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    support = cm.sum(axis=1)
    cells = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off))]
    cells.sort(key=lambda t: (-t[0], -t[0] / support[t[1]], t[1], t[2]))
    return [Confusion(str(labels[i]), str(labels[j]), cnt, float(cnt / support[i]))
            for cnt, i, j in cells[:worst]]


@dataclass
class ModelRunner:
    """One loaded model: uint8 NHWC pixels in, (N, C) class probabilities out."""

    path: Path
    format: str                            # keras | savedmodel | onnx | tflite
    quantization: str
    labels: list[str]
    contract: object                       # edgeclf.runtime.Contract
    batch_mode: str                        # how batches reach the model (for the report)
    fn: Callable[[np.ndarray], np.ndarray]
    embedded: dict = field(default_factory=dict)   # labels/contract the file carries

    def predict(self, x: np.ndarray, *, batch_size: int = 32,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Run ``x`` (uint8 (N, H, W, 3)) in batches of ``batch_size``."""
        n, parts = len(x), []
        for i in range(0, n, max(1, batch_size)):
            p = np.asarray(self.fn(x[i:i + batch_size]), dtype=np.float32)
            if p.ndim != 2 or p.shape[0] != len(x[i:i + batch_size]):
                raise ModelError(f"{self.path}: output shape {p.shape} for a batch of "
                                 f"{len(x[i:i + batch_size])}; expected (N, classes)")
            if p.shape[1] != len(self.labels):
                raise ModelError(f"{self.path}: the model outputs {p.shape[1]} classes but "
                                 f"there are {len(self.labels)} labels "
                                 f"({', '.join(self.labels[:5])}...): wrong labels file or "
                                 "wrong model")
            parts.append(p)
            if progress:
                progress(min(n, i + batch_size), n)
        c = len(self.labels)
        return np.concatenate(parts) if parts else np.zeros((0, c), np.float32)


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "savedmodel"
    fmt = {".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(f"{path}: not a model edgeclf can run (expected a .keras "
                         "checkpoint, a SavedModel folder, an .onnx or a .tflite file)")
    return fmt


def open_model(path: str | Path, *, labels: Sequence[str] | None = None, contract=None,
               quantization: str | None = None) -> ModelRunner:
    """Load a model of any edgeclf format. ``labels``/``contract`` override (or stand in
    for) what the file carries; a Keras checkpoint carries neither, so it needs both."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist")
    fmt = detect_format(path)
    if fmt == "keras":
        fn, embedded, mode = _keras_fn(path), {}, "dynamic batch (Keras)"
    elif fmt == "savedmodel":
        from edgeclf.runtime.metadata import read_savedmodel_assets

        fn, mode = _savedmodel_fn(path), "dynamic batch (serving_default signature)"
        embedded = read_savedmodel_assets(path) or {}
    else:
        fn, embedded, mode = _predictor_fn(path, fmt, labels, contract)
    labels = list(labels) if labels else embedded.get("labels")
    if contract is None and embedded.get("preprocessing"):
        from edgeclf.runtime.contract import Contract

        contract = Contract.from_dict(embedded["preprocessing"])
    if not labels:
        raise ModelError(f"{path} carries no labels: pass a labels file (--labels FILE)")
    if contract is None:
        raise ModelError(f"{path} carries no preprocessing contract")
    return ModelRunner(path=path, format=fmt,
                       quantization=quantization or embedded.get("quantization") or "none",
                       labels=list(labels), contract=contract, batch_mode=mode, fn=fn,
                       embedded=embedded)


def _keras_fn(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    model = load_checkpoint(path)

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(model(x.astype(np.float32), training=False))
    return run


def load_checkpoint(path: str | Path):
    """The training stage's safe loader (``safe_mode=True``, no Lambda, not compiled)."""
    from edgeclf.train import load_checkpoint as _load

    return _load(path)


def _savedmodel_fn(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    sig = tf.saved_model.load(str(path)).signatures.get("serving_default")
    if sig is None:
        raise ModelError(f"{path}: SavedModel has no 'serving_default' signature")
    (name, spec), = sig.structured_input_signature[1].items()
    outs = list(sig.structured_outputs)
    key = outs[0] if len(outs) == 1 else next((o for o in outs if "prob" in o.lower()), None)
    if key is None:
        raise ModelError(f"{path}: serving_default has outputs {outs}; none is named "
                         "like class probabilities")

    def run(x: np.ndarray) -> np.ndarray:
        return sig(**{name: tf.constant(x.astype(spec.dtype.as_numpy_dtype))})[key].numpy()
    return run


def _predictor_fn(path: Path, fmt: str, labels, contract):
    from edgeclf.runtime import Predictor

    try:
        pred = Predictor.from_path(path, labels=list(labels) if labels else None,
                                   contract=contract, format=fmt)
    except ModelError as e:
        if labels or "labels" not in str(e):
            raise
        raise ModelError(f"{e} (command line: --labels FILE)") from None
    fixed = pred.fixed_batch
    mode = ("dynamic batch" if not fixed else
            f"fixed batch {fixed}: the runtime runs the batch in chunks of {fixed}"
            + (" (image by image)" if fixed == 1 else ""))
    embedded = {"labels": list(pred.labels), "preprocessing": pred.contract.to_dict(),
                "quantization": pred.quantization}
    return pred.run, embedded, mode


@dataclass
class EvalResult:
    model: str
    format: str
    quantization: str
    source: str                            # "split:test" or the data folder
    n_images: int
    metrics: ClassificationMetrics
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    y_true: np.ndarray | None = None        # (N,) int
    probs: np.ndarray | None = None         # (N, C) float32
    root: str = ""

    @property
    def accuracy(self) -> float:
        return self.metrics.accuracy

    def to_dict(self) -> dict:
        return {"model": self.model, "format": self.format,
                "quantization": self.quantization, "source": self.source,
                "n_images": self.n_images, "n_skipped": len(self.skipped),
                "skipped": self.skipped, "warnings": self.warnings, "root": self.root,
                **self.metrics.to_dict(), "misclassified": self.misclassified()}

    def misclassified(self, limit: int = MAX_MISCLASSIFIED) -> list[dict]:
        """Wrong predictions, the most confident first: file, true, predicted, confidence."""
        if self.probs is None or self.y_true is None:
            return []
        pred, conf = self.probs.argmax(axis=1), self.probs.max(axis=1)
        wrong = [i for i in np.argsort(-conf, kind="stable") if pred[i] != self.y_true[i]]
        names = self.metrics.labels
        return [{"file": self.files[i], "true": names[self.y_true[i]],
                 "predicted": names[pred[i]], "confidence": float(conf[i])}
                for i in wrong[:limit]]


def evaluate(target: str | Path, *, split: str = "test", data: str | Path | None = None,
             labels: str | Path | None = None, max_images: int | None = None,
             batch_size: int = 32, progress: Progress | None = None) -> EvalResult:
    """Evaluate a run (its checkpoint) or one model file on a run split or a data folder.

    ``target``: a run directory, a ``.keras`` checkpoint, a SavedModel folder, or an
    ``.onnx``/``.tflite`` file. ``data``: a folder with one sub-folder per class, named as
    the labels; without it the split of the run that holds the target is used. ``labels``:
    a labels file (one class per line) for a model that carries none.
    """
    from edgeclf.parity import load_folder_images, load_split_images  # noqa: PLC0415

    target = Path(target)
    run = _run_of(target)
    label_list = _read_labels(labels) if labels else None
    if run is not None and target.resolve() == run.root.resolve():
        runner = open_model(_checkpoint_of(run), labels=label_list or run.read_labels(),
                            contract=_run_contract(run))
    else:  # what the file carries, as the deployed predictor sees it; else the run's
        try:
            runner = open_model(target, labels=label_list)
        except ModelError:
            if run is None:
                raise
            runner = open_model(target, labels=label_list or run.read_labels(),
                                contract=_run_contract(run))
    if data is not None:
        images = load_folder_images(data, runner.labels, runner.contract,
                                    max_images=max_images)
        source = str(Path(data))
    elif run is not None:
        images = load_split_images(run, split, contract=runner.contract,
                                   labels=runner.labels, max_images=max_images)
        source = f"split:{split}"
    else:
        raise ConfigError(f"{target} is not inside an edgeclf run, so there is no split to "
                          "evaluate on: pass --data DIR (one sub-folder per class)")
    probs = runner.predict(images.x, batch_size=batch_size,
                           progress=(lambda d, t: progress("eval", d, t)) if progress else None)
    metrics = classification_metrics(images.y, probs, runner.labels)
    return EvalResult(model=str(target), format=runner.format,
                      quantization=runner.quantization, source=source,
                      n_images=len(images.files), metrics=metrics,
                      skipped=[s.to_dict() for s in images.skipped],
                      warnings=list(images.warnings), files=list(images.files),
                      y_true=images.y, probs=probs, root=str(images.root))


def default_out_dir(target: str | Path) -> Path:
    """Where ``edgeclf eval`` writes: the run itself for a run, ``RUN/eval/<artifact>/``
    for an artifact inside a run, ``./eval-<name>/`` for any other model file."""
    target = Path(target)
    run = _run_of(target)
    if run is not None and target.resolve() == run.root.resolve():
        return run.root
    if run is not None:
        return run.root / "eval" / target.name
    return Path.cwd() / f"eval-{target.name}"


def write_eval(result: EvalResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``eval.json`` and ``confusion_matrix.png`` into ``out_dir``."""
    from edgeclf.report.confusion import plot_confusion

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(result.metrics.confusion, result.metrics.labels,
                         out_dir / "confusion_matrix.png",
                         title=f"{Path(result.model).name} on {result.source}: "
                               f"accuracy {result.accuracy:.2%}")
    out = write_json(out_dir / "eval.json", result.to_dict())
    refresh_report(out_dir)
    return out, png


def _run_of(target: Path) -> RunPaths | None:
    """The run a target belongs to: itself, or ``RUN`` for ``RUN/export/<artifact>`` and
    ``RUN/checkpoints/<file>.keras``."""
    cands = [target] + ([target.parent.parent]
                        if target.parent.name in ("export", "checkpoints") else [])
    for cand in cands:
        if (cand / "run.json").is_file():
            return RunPaths(cand)
    if target.exists() and target.is_dir() and not (target / "saved_model.pb").is_file():
        raise DataError(f"{target} is a folder but neither an edgeclf run (no run.json) nor "
                        "a SavedModel")
    return None


def _checkpoint_of(run: RunPaths) -> Path:
    run.require(checkpoint=True)
    return run.best if run.best.is_file() else run.last


def _run_contract(run: RunPaths):
    from edgeclf.fsutil import read_json
    from edgeclf.runtime.contract import Contract

    try:
        return Contract.from_dict(read_json(run.run_json)["preprocessing"])
    except (KeyError, ValueError, OSError) as e:
        raise DataError(f"{run.run_json} has no usable 'preprocessing' contract: {e}") from None


def _read_labels(path: str | Path) -> list[str]:
    from edgeclf.runtime.metadata import read_labels_file

    return read_labels_file(path)
