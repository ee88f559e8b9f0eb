"""``export_run``: turn a run's checkpoint into the requested artifacts + manifest.

Every artifact is written to a temporary path, loaded back in its runtime (which also
describes its inputs and outputs), and only then renamed into place; the manifest entry
is written after the rename. A failing artifact is reported in its result row and the
others still run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgeclf.errors import ConfigError, EdgeclfError, ExportError, RunError
from edgeclf.fsutil import atomic_path, partial_target, read_json, write_text
from edgeclf.progress import Progress
from edgeclf.run import RunPaths, run_lock
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.manifest import sha256_file
from edgeclf.runtime.metadata import build_metadata

from . import FORMATS, QUANTIZATIONS
from .calibration import DEFAULT_CALIBRATION_SIZE, calibration_set
from .context import ExportContext
from .manifest import float32_bytes, make_entry, read_existing, update_manifest
from .onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .onnx_quant import export_notes
from .onnx_quant import ONNX_INT8_RECIPES
from .tflite import INT8_IO_TYPES
from .utils import as_float32, check_contract, load_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """What to export. ``formats`` may contain ``"all"``: every format, each with the
    requested quantizations it supports."""

    formats: tuple[str, ...] = ("onnx",)
    quantizations: tuple[str, ...] = ("none",)
    checkpoint: str = "best"            # "best" | "last" | a path to a .keras file
    opset: int = DEFAULT_OPSET
    calibration_size: int = DEFAULT_CALIBRATION_SIZE
    seed: int = 0
    int8_io: str = "uint8"              # int8 TFLite input/output type: uint8 | int8
    ort_web: str | None = None          # onnxruntime-web tarball or folder (format web)
    onnx_int8: str = "auto"             # ONNX int8 weights: auto (by this CPU) | u8s8 | u8u8


@dataclass(frozen=True)
class ArtifactResult:
    """One row of the export table."""

    format: str
    quantization: str
    status: str                          # "ok" | "failed" | "skipped"
    file: str | None = None              # relative to the export directory
    bytes: int | None = None
    seconds: float | None = None
    size_vs_float32: float | None = None
    message: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportResult:
    run: Path
    export_dir: Path
    manifest: Path
    checkpoint: Path
    artifacts: list[ArtifactResult]

    @property
    def ok(self) -> bool:
        return all(a.status != "failed" for a in self.artifacts)


def plan_jobs(formats: tuple[str, ...] | list[str],
              quantizations: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """The (format, quantization) pairs to export, in order; bad requests raise."""
    bad_q = [q for q in quantizations if q not in QUANTIZATIONS]
    if bad_q or not quantizations:
        raise ConfigError(f"unknown quantization {bad_q or quantizations!r}; choose from "
                          f"{', '.join(QUANTIZATIONS)}")
    bad_f = [f for f in formats if f != "all" and f not in FORMATS]
    if bad_f or not formats:
        raise ConfigError(f"unknown format {bad_f or formats!r}; choose from "
                          f"{', '.join(FORMATS)} or all")
    jobs: list[tuple[str, str]] = []
    named = [f for f in formats if f != "all"]
    if "all" in formats:
        named = [f for f, spec in FORMATS.items() if spec.in_all] + named
    for fmt in dict.fromkeys(named):
        spec = FORMATS[fmt]
        for q in dict.fromkeys(quantizations):
            if q in spec.quantizations:
                jobs.append((fmt, q))
            elif "all" not in formats:
                raise ConfigError(f"format {fmt} does not support quantization {q!r} "
                                  f"(it supports: {', '.join(spec.quantizations)}); use "
                                  "--format all to export each format with the "
                                  "quantizations it supports")
    if not jobs:
        raise ConfigError(f"nothing to export for formats {list(formats)} and "
                          f"quantizations {list(quantizations)}")
    return jobs


def check_options(config: ExportConfig) -> None:
    """Refuse bad option values before anything is loaded or written."""
    if not MIN_OPSET <= config.opset <= MAX_OPSET:
        raise ConfigError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET} (what "
                          f"tf2onnx writes and onnxruntime runs), got {config.opset}")
    if config.int8_io not in INT8_IO_TYPES:
        raise ConfigError(f"--int8-io must be one of {', '.join(INT8_IO_TYPES)}, "
                          f"got {config.int8_io!r}")
    if config.onnx_int8 not in ONNX_INT8_RECIPES:
        raise ConfigError(f"--onnx-int8 must be one of {', '.join(ONNX_INT8_RECIPES)}, "
                          f"got {config.onnx_int8!r}")
    if config.calibration_size < 1:
        raise ConfigError(f"--calibration-size must be at least 1, got "
                          f"{config.calibration_size}")


def resolve_checkpoint(paths: RunPaths, checkpoint: str) -> Path:
    if checkpoint in ("best", "last"):
        path = paths.best if checkpoint == "best" else paths.last
        if not path.is_file():
            raise RunError(f"{paths.root} has no checkpoint {path.relative_to(paths.root)}: "
                           "train it first (`edgeclf train`)")
        return path
    path = Path(checkpoint)
    if not path.is_file():
        raise RunError(f"checkpoint {checkpoint!r} is neither best, last, nor an existing file")
    return path


def _read_run(paths: RunPaths) -> tuple[list[str], Contract]:
    contract = paths.contract()
    run = read_json(paths.run_json)
    labels = paths.read_labels()
    if run.get("classes") and list(run["classes"]) != labels:
        raise RunError(f"labels.txt and run.json disagree on the classes of {paths.root}")
    return labels, contract


def check_writable(export_dir: Path) -> None:
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=export_dir, prefix=".write-test."):
            pass
    except OSError as e:
        raise ExportError(f"cannot write to the export directory {export_dir}: "
                          f"{e.strerror or e}") from None


def remove_partials(export_dir: Path) -> None:
    """Delete temporary files an earlier, killed export left (names start with a dot; the
    caller holds the run lock, so no live export owns them). An artifact folder whose
    replacement was interrupted between its two renames exists only as its aside copy
    (``.NAME.PID.X.old``): that copy is put back, not deleted."""
    for p in sorted(export_dir.glob(".*")):
        if p.name.endswith(".old"):
            target = partial_target(p)
            if target and not (export_dir / target).exists():
                os.replace(p, export_dir / target)
                log.warning("restored %s (an interrupted export was replacing it)", target)
                continue
        if ".partial" in p.name or p.name.endswith(".old"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            log.info("removed %s left by an interrupted export", p.name)


def export_run(run_dir: str | Path, config: ExportConfig = ExportConfig(), *,
               progress: Progress | None = None) -> ExportResult:
    """Export the run's checkpoint in every requested (format, quantization)."""
    paths = RunPaths(run_dir).require()
    jobs = plan_jobs(config.formats, config.quantizations)
    check_options(config)
    checkpoint = resolve_checkpoint(paths, config.checkpoint)
    labels, contract = _read_run(paths)
    export_dir = paths.export_dir
    check_writable(export_dir)
    with run_lock(paths):
        remove_partials(export_dir)
        model = load_checkpoint(checkpoint)
        size = check_contract(model, len(labels))
        if size != contract.size:
            raise RunError(f"the checkpoint takes {size} images but run.json says "
                           f"{contract.size}")
        model = as_float32(model)
        sha = sha256_file(checkpoint)
        meta = build_metadata(labels, contract, checkpoint_sha256=sha)
        ckpt = {"file": _rel(checkpoint, paths.root), "sha256": sha}
        write_text(export_dir / "labels.txt", "\n".join(labels) + "\n")
        with tempfile.TemporaryDirectory(prefix="edgeclf-export-") as work:
            ctx = ExportContext(model=model, size=size, meta=meta, contract=contract,
                                work_dir=Path(work), split_path=paths.split,
                                opset=config.opset, int8_io=config.int8_io,
                                calibration_size=config.calibration_size, seed=config.seed,
                                ort_web=config.ort_web, onnx_int8=config.onnx_int8)
            rows = []
            for i, (fmt, q) in enumerate(jobs):
                if progress:
                    progress(i, len(jobs), f"{fmt} {q}")
                rows.append(export_one(ctx, export_dir, fmt, q, ckpt))
            if progress:
                progress(len(jobs), len(jobs), "done")
    return ExportResult(run=paths.root, export_dir=export_dir, manifest=paths.manifest,
                        checkpoint=checkpoint, artifacts=_relative_sizes(export_dir, rows))


def _relative_sizes(export_dir: Path, rows: list[ArtifactResult]) -> list[ArtifactResult]:
    """Size versus the float32 artifact of the same format, from the final manifest (the
    float32 one may have been exported after, or before this call)."""
    manifest = read_existing(export_dir)
    out = []
    for row in rows:
        base = float32_bytes(manifest, row.format) if row.status == "ok" else None
        ratio = row.bytes / base if base and row.bytes else None
        out.append(dataclasses.replace(row, size_vs_float32=ratio))
    return out


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def export_one(ctx: ExportContext, export_dir: Path, fmt: str, quantization: str,
               checkpoint: dict) -> ArtifactResult:
    """Export one artifact and record it in the manifest; failures become a result row."""
    spec = FORMATS[fmt]
    final = export_dir / spec.filename(quantization)
    log.info("exporting %s (%s) -> %s", fmt, quantization, final.name)
    t0 = time.perf_counter()
    try:
        with atomic_path(final, is_dir=spec.is_dir) as tmp:
            converter = spec.export(ctx, tmp, quantization)
            inputs, outputs = spec.describe(tmp)
    except EdgeclfError as e:
        log.error("%s (%s) failed: %s", fmt, quantization, e)
        return ArtifactResult(fmt, quantization, "failed", message=str(e))
    except Exception as e:  # noqa: BLE001 - one failing converter must not stop the table
        log.exception("%s (%s) failed unexpectedly", fmt, quantization)
        return ArtifactResult(fmt, quantization, "failed",
                              message=f"unexpected {type(e).__name__}: {e}")
    seconds = time.perf_counter() - t0
    calibration = calibration_set(ctx).to_dict() if quantization == "int8" else None
    entry = make_entry(export_dir=export_dir, path=final, fmt=fmt, quantization=quantization,
                       inputs=inputs, outputs=outputs, meta=ctx.meta, checkpoint=checkpoint,
                       converter=converter, seconds=seconds, calibration=calibration)
    update_manifest(export_dir, entry, meta=ctx.meta, checkpoint=checkpoint,
                               calibration=calibration)
    warnings = []
    for note in export_notes(quantization) if fmt == "onnx" else []:
        log.warning("%s: %s", final.name, note)
        warnings.append(note)
    return ArtifactResult(fmt, quantization, "ok", file=entry["file"], bytes=entry["bytes"],
                          seconds=round(seconds, 2), warnings=tuple(warnings))

