"""``edgeclf eval``: one model on labelled images.

:func:`evaluate` runs a model — a run's Keras checkpoint, any
artifact edgeclf exported, or a foreign ONNX/TFLite file given a labels file — on a run's
split or on a folder with one sub-folder per class, and :func:`write_eval` writes
``eval.json`` and ``confusion_matrix.png``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeclf.errors import ConfigError, DataError, ModelError
from edgeclf.fsutil import write_json
from edgeclf.inference import (ModelRunner, detect_format, load_checkpoint,  # noqa: F401
                               load_folder_images, load_split_images, open_model)
from edgeclf.metrics import (DENSE_CONFUSION_MAX, TOP_K, WORST_CONFUSIONS,  # noqa: F401
                             ClassificationMetrics, classification_metrics)
from edgeclf.progress import Progress, stage_progress
from edgeclf.run import RunPaths

log = logging.getLogger(__name__)

#: Misclassified images listed in eval.json (the most confident mistakes first).
MAX_MISCLASSIFIED = 200


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
    target = Path(target)
    run = _run_of(target)
    label_list = _read_labels(labels) if labels else None
    if run is not None and target.resolve() == run.root.resolve():
        runner = open_model(_checkpoint_of(run), labels=label_list or run.read_labels(),
                            contract=run.contract())
    else:  # what the file carries, as the deployed predictor sees it; else the run's
        try:
            runner = open_model(target, labels=label_list)
        except ModelError:
            if run is None:
                raise
            runner = open_model(target, labels=label_list or run.read_labels(),
                                contract=run.contract())
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
                           progress=stage_progress(progress, "eval"))
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
    from edgeclf.plotting.confusion import plot_confusion

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(result.metrics.confusion, result.metrics.labels,
                         out_dir / "confusion_matrix.png",
                         title=f"{Path(result.model).name} on {result.source}: "
                               f"accuracy {result.accuracy:.2%}")
    out = write_json(out_dir / "eval.json", result.to_dict())
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


def _read_labels(path: str | Path) -> list[str]:
    from edgeclf.runtime.metadata import read_labels_file

    return read_labels_file(path)
