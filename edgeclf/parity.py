"""``edgeclf parity``: prove every exported artifact equals the trained model on real images.

The run's held-out images are preprocessed ONCE by the run's contract; the Keras checkpoint
the artifacts came from (the reference) and every artifact in ``export/manifest.json`` run
on that same uint8 array, at a batch > 1 and at batch 1. Each artifact is judged against a
:class:`Budget` for its quantization; the result goes to ``RUN/parity.json`` and a summary
into each manifest entry's ``"parity"``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.errors import ConfigError, ModelError, RunError
from edgeclf.inference import (ImageSet, ModelRunner, Skipped, digest_images,  # noqa: F401
                               load_folder_images, load_split_images, open_model)
from edgeclf.metrics import classification_metrics
from edgeclf.export.manifest import record_parity
from edgeclf.fsutil import read_json, write_json
from edgeclf.progress import Progress, stage_progress
from edgeclf.run import RunPaths, run_lock
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.manifest import load_manifest, sha256_file, verify_artifact

__all__ = ["Budget", "DEFAULT_BUDGETS", "parse_budgets", "ImageSet", "Skipped",
           "load_split_images", "load_folder_images", "ArtifactParity", "ParityResult",
           "check_parity", "write_parity", "digest_images"]

log = logging.getLogger(__name__)

#: Flipped images listed per artifact in parity.json (the count is always exact).
MAX_FLIPPED = 200


@dataclass(frozen=True, kw_only=True)
class Budget:
    """What an artifact must achieve versus the reference; ``None`` = not checked."""

    min_agreement: float | None = None       # fraction of images with the same top-1
    max_abs_diff: float | None = None        # max |p_artifact - p_reference| over all probs
    max_accuracy_drop: float | None = None   # accuracy points (0..100) lost vs reference
    min_batch_agreement: float | None = 1.0  # top-1 equal at batch 1 and at batch > 1


DEFAULT_BUDGETS: dict[str, Budget] = {
    "none": Budget(min_agreement=1.0, max_abs_diff=1e-4),
    "float16": Budget(min_agreement=0.995),
    "dynamic": Budget(max_accuracy_drop=1.0),
    "int8": Budget(max_accuracy_drop=1.0),
}


def parse_budgets(specs: Sequence[str], base: dict[str, Budget] | None = None, *,
                  file: str | Path | None = None) -> dict[str, Budget]:
    """Apply ``QUANT.FIELD=VALUE`` overrides (``int8.max_accuracy_drop=2``,
    ``none.max_abs_diff=1e-3``, ``float16.min_agreement=off``) to the defaults; ``file``:
    a JSON config ``{"int8": {"max_accuracy_drop": 2}, ...}`` applied first."""
    out = dict(base or DEFAULT_BUDGETS)
    if file is not None:
        try:
            conf = read_json(file)
            specs = [f"{q}.{k}={'off' if v is None else v}" for q, d in conf.items()
                     for k, v in d.items()] + list(specs)
        except (OSError, ValueError, AttributeError) as e:
            raise ConfigError(f"budget file {file}: expected JSON like "
                              f'{{"int8": {{"max_accuracy_drop": 2}}}} ({e})') from None
    names = [f.name for f in fields(Budget)]
    for spec in specs:
        key, sep, value = spec.partition("=")
        quant, dot, name = key.strip().partition(".")
        if not sep or not dot or quant not in out or name not in names:
            raise ConfigError(f"budget override {spec!r}: expected QUANT.FIELD=VALUE with QUANT "
                              f"in {sorted(out)} and FIELD in {names}")
        try:
            val = None if value.strip().lower() in ("off", "none", "") else float(value)
        except ValueError:
            raise ConfigError(f"budget override {spec!r}: {value!r} is not a number "
                              "(or 'off')") from None
        out[quant] = replace(out[quant], **{name: val})
    return out


@dataclass
class ArtifactParity:
    file: str
    format: str
    quantization: str
    budget: Budget
    passed: bool = False
    breaches: list[str] = field(default_factory=list)
    error: str | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    accuracy: float | None = None
    top5: float | None = None
    accuracy_delta: float | None = None     # points, artifact - reference
    n_flipped: int = 0
    flipped: list[dict] = field(default_factory=list)
    batch: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["budget"] = asdict(self.budget)
        return d

    def summary(self, split: str, n_images: int) -> dict:
        """What goes into the manifest entry's ``"parity"``."""
        keys = ("passed", "breaches", "error", "agreement", "max_abs_diff", "accuracy",
                "accuracy_delta", "n_flipped")
        return {"split": split, "n_images": n_images,
                "checked": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **{k: getattr(self, k) for k in keys}}


@dataclass
class ParityResult:
    passed: bool
    split: str
    n_images: int
    reference: dict
    artifacts: list[ArtifactParity]
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 0
    images_sha256: str = ""

    def to_dict(self) -> dict:
        return {"passed": self.passed, "split": self.split, "n_images": self.n_images,
                "images_sha256": self.images_sha256,
                "n_skipped": len(self.skipped), "skipped": [s.to_dict() for s in self.skipped],
                "warnings": self.warnings, "batch_sizes": [1, self.batch_size],
                "reference": self.reference,
                "artifacts": [a.to_dict() for a in self.artifacts]}

    @property
    def failed(self) -> list[ArtifactParity]:
        return [a for a in self.artifacts if not a.passed]


def check_parity(run: str | Path, *, split: str = "test", max_images: int | None = None,
                 formats: Sequence[str] | None = None, budgets: dict[str, Budget] | None = None,
                 batch_size: int = 16, progress: Progress | None = None,
                 write: bool = True) -> ParityResult:
    """Run the reference and every (selected) manifest artifact on ``split``; judge each."""
    paths = RunPaths(Path(run)).require()
    if batch_size < 2:
        raise ConfigError(f"batch_size must be > 1 (batch 1 is always checked too); "
                          f"got {batch_size}")
    budgets = budgets or DEFAULT_BUDGETS
    manifest = load_manifest(paths.export_dir)
    labels = list(manifest.get("labels") or paths.read_labels())
    contract = paths.contract()
    # a web folder's model.onnx is checked in the browser (tests/e2e/test_web_chromium.py)
    entries = [e for e in manifest["artifacts"] if e.get("format") != "web"
               and (not formats or e.get("format") in formats)]
    if not entries:
        raise ConfigError(f"no artifact of format(s) {list(formats or [])} in {paths.manifest}")
    # held throughout: an export or training run must not change the files under test
    with run_lock(paths, purpose="parity") if write else contextlib.nullcontext():
        images = load_split_images(paths, split, contract=contract, labels=labels,
                                   max_images=max_images)
        ckpt = _reference_checkpoint(paths, manifest)
        ref_sha = sha256_file(ckpt)
        reference = open_model(ckpt, labels=labels, contract=contract)
        ref_probs = reference.predict(images.x, batch_size=batch_size,
                                      progress=stage_progress(progress, "reference (Keras)"))
        ref = classification_metrics(images.y, ref_probs, labels)
        rows = [_check_artifact(e, paths.export_dir, images, ref_probs, ref.accuracy, labels,
                                contract, budgets, batch_size, progress, ref_sha)
                for e in entries]
        result = ParityResult(
            passed=all(r.passed for r in rows), split=split, n_images=len(images.files),
            reference={"file": str(ckpt), "sha256": ref_sha, "accuracy": ref.accuracy,
                       "top5": ref.top5, "macro_f1": ref.macro_f1},
            artifacts=rows, skipped=images.skipped, warnings=images.warnings,
            batch_size=batch_size, images_sha256=digest_images(images))
        if write:
            write_parity(result, paths)
    return result


def _reference_checkpoint(paths: RunPaths, manifest: dict) -> Path:
    """The checkpoint the artifacts were exported from (its sha256 must still match)."""
    entry = manifest.get("checkpoint") or {}
    if not entry.get("file"):
        paths.require(checkpoint=True)
        return paths.best if paths.best.is_file() else paths.last
    cands = [Path(entry["file"]), paths.root / entry["file"], paths.export_dir / entry["file"]]
    ckpt = next((c for c in cands if c.is_file()), None)
    if ckpt is None:
        raise RunError(f"the checkpoint the artifacts came from ({entry['file']}) is gone")
    if entry.get("sha256") and sha256_file(ckpt) != entry["sha256"]:
        raise RunError(f"{ckpt} changed since export (sha256 differs from the manifest): "
                       "the artifacts no longer come from it; re-export the run")
    return ckpt


def _check_artifact(entry: dict, export_dir: Path, images: ImageSet, ref_probs: np.ndarray,
                    ref_accuracy: float, labels: list[str], contract: Contract,
                    budgets: dict[str, Budget], batch_size: int,
                    progress: Progress | None, ref_sha: str) -> ArtifactParity:
    quant = entry.get("quantization", "none")
    row = ArtifactParity(file=str(entry.get("file")), format=str(entry.get("format")),
                         quantization=quant, budget=budgets.get(quant, Budget()))
    t0 = time.perf_counter()
    try:
        path = verify_artifact(export_dir, entry)
    except ModelError as e:
        row.error = str(e)
        row.breaches.append("refused: sha256 does not match the manifest")
        return row
    source = (entry.get("checkpoint") or {}).get("sha256")
    if source and source != ref_sha:
        row.error = (f"exported from another checkpoint (sha256 {source[:12]}...), not the "
                     f"reference ({ref_sha[:12]}...): re-export it")
        row.breaches.append("stale: exported from another checkpoint")
        return row
    try:
        runner = open_model(path, quantization=quant)
        _check_metadata(runner, labels, contract)
        probs = runner.predict(images.x, batch_size=batch_size,
                               progress=stage_progress(progress, f"{row.file} (batch {batch_size})"))
        probs1 = runner.predict(images.x, batch_size=1,
                                progress=stage_progress(progress, f"{row.file} (batch 1)"))
    except Exception as e:  # noqa: BLE001 - one failing artifact must not stop the table
        log.debug("artifact %s failed", row.file, exc_info=True)
        row.error = str(e) if isinstance(e, ModelError) else f"{type(e).__name__}: {e}"
        row.breaches.append("could not run")
        return row
    _fill(row, images, ref_probs, probs, probs1, ref_accuracy, labels, runner, batch_size)
    row.seconds = round(time.perf_counter() - t0, 3)
    return row


def _check_metadata(runner: ModelRunner, labels: list[str], contract: Contract) -> None:
    if len(runner.labels) != len(labels):
        raise ModelError(f"{runner.path.name} has {len(runner.labels)} labels but the run has "
                         f"{len(labels)} classes")
    if list(runner.labels) != list(labels):
        raise ModelError(f"{runner.path.name}: its embedded labels differ from the run's "
                         f"(first: {runner.labels[:3]} vs {labels[:3]})")
    if runner.contract != contract:
        raise ModelError(f"{runner.path.name}: its embedded preprocessing contract "
                         f"{runner.contract.to_dict()} differs from the run's "
                         f"{contract.to_dict()}")


def _fill(row: ArtifactParity, images: ImageSet, ref_probs: np.ndarray, probs: np.ndarray,
          probs1: np.ndarray, ref_accuracy: float, labels: list[str], runner: ModelRunner,
          batch_size: int) -> None:
    m = classification_metrics(images.y, probs, labels)
    ref_top, top = ref_probs.argmax(1), probs.argmax(1)
    diff = np.abs(probs - ref_probs)
    row.agreement = float((ref_top == top).mean())
    row.max_abs_diff, row.mean_abs_diff = float(diff.max()), float(diff.mean())
    row.accuracy, row.top5 = m.accuracy, m.top5
    row.accuracy_delta = round((m.accuracy - ref_accuracy) * 100, 6)
    flips = np.flatnonzero(ref_top != top)
    row.n_flipped = int(flips.size)
    row.flipped = [{"file": images.files[i], "true": labels[images.y[i]],
                    "reference": labels[ref_top[i]], "artifact": labels[top[i]],
                    "reference_confidence": float(ref_probs[i, ref_top[i]]),
                    "artifact_confidence": float(probs[i, top[i]])}
                   for i in flips[:MAX_FLIPPED]]
    row.batch = {"sizes": [1, min(batch_size, len(images.x))], "mode": runner.batch_mode,
                 "agreement": float((probs1.argmax(1) == top).mean()),
                 "max_abs_diff": float(np.abs(probs1 - probs).max())}
    row.breaches = _breaches(row)
    row.passed = not row.breaches


def _breaches(row: ArtifactParity) -> list[str]:
    b, out = row.budget, []
    if b.min_agreement is not None and row.agreement < b.min_agreement:
        out.append(f"agreement {row.agreement:.2%} < {b.min_agreement:.2%}")
    if b.max_abs_diff is not None and row.max_abs_diff > b.max_abs_diff:
        out.append(f"max prob diff {row.max_abs_diff:.2e} > {b.max_abs_diff:.0e}")
    if b.max_accuracy_drop is not None and -row.accuracy_delta > b.max_accuracy_drop:
        out.append(f"accuracy drop {-row.accuracy_delta:.2f} pt > {b.max_accuracy_drop:g} pt")
    if b.min_batch_agreement is not None and row.batch["agreement"] < b.min_batch_agreement:
        out.append(f"batch 1 vs batch >1 top-1 agreement {row.batch['agreement']:.2%} "
                   f"< {b.min_batch_agreement:.2%}")
    return out


def write_parity(result: ParityResult, paths: RunPaths) -> Path:
    """Write ``parity.json`` and each checked manifest entry's ``"parity"`` summary
    (the manifest is rewritten atomically; the artifacts and their hashes are untouched)."""
    out = write_json(paths.parity, result.to_dict())
    record_parity(paths.export_dir, {a.file: a.summary(result.split, result.n_images)
                                     for a in result.artifacts})
    return out
