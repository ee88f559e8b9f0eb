"""``edgeclf demo``: the whole path on a dataset edgeclf generates itself (no download).

generate data -> train -> export -> parity -> bench -> predict -> report. Each stage is the
real library call the matching command makes; a stage that fails is reported as failed,
the stages that need it are reported as skipped (with the reason), and nothing is faked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgeclf.errors import EdgeclfError
from edgeclf.run import RunPaths

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """The demo's own settings (not the product's defaults for real data): a small backbone
    trained from scratch (nothing to download) on generated shapes it can really learn."""

    out: Path = Path("models")
    name: str = "demo"
    data: Path | None = None            # None: generate the shapes dataset under out/
    weights: str = "none"
    backbone: str = "mobilenetv2_0.35"
    image_size: int = 48                # the generated images' size too (no resize)
    # fresh images rather than epochs: at 300 per class the network overfits (train 99.5%,
    # test 91.7% after 12 epochs); at 600 it sees each image 8 times and generalises
    epochs: int = 8
    lr: float = 0.003
    fine_tune_epochs: int = 0
    per_class: int = 600
    # the generator already varies colour, size and position; augmenting on top only slows
    # a from-scratch network down. 15% test (450 images): parity's 1-point int8 budget is
    # 4 images, not a coin flip on one.
    augment: bool = False
    split: str = "70,15,15"
    batch_size: int = 32
    formats: tuple[str, ...] = ("all",)
    quantizations: tuple[str, ...] = ("none", "int8")
    bench_runs: int = 20
    overwrite: bool = True


@dataclass
class StageResult:
    name: str
    status: str                         # ok | failed | skipped
    seconds: float = 0.0
    summary: str = ""


@dataclass
class DemoResult:
    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status == "ok" for s in self.stages)


StageHook = Callable[[StageResult], None]


def run_demo(cfg: DemoConfig, on_stage: StageHook | None = None) -> DemoResult:
    """Run every stage in order; returns one row per stage (never raises for a stage)."""
    run_dir = Path(cfg.out) / cfg.name
    result = DemoResult(run_dir=run_dir)
    state: dict = {}
    stages: list[tuple[str, Callable[[], str], tuple[str, ...]]] = [
        ("data", lambda: _data(cfg, state), ()),
        ("train", lambda: _train(cfg, state), ("data",)),
        ("export", lambda: _export(cfg, run_dir), ("train",)),
        ("parity", lambda: _parity(run_dir), ("export",)),
        ("bench", lambda: _bench(cfg, run_dir), ("export",)),
        ("predict", lambda: _predict(run_dir), ("export",)),
        ("report", lambda: _report(run_dir), ("train",)),
    ]
    status: dict[str, str] = {}
    for name, fn, needs in stages:
        missing = [n for n in needs if status.get(n) != "ok"]
        if missing:
            stage = StageResult(name, "skipped", summary=f"needs {', '.join(missing)}")
        else:
            stage = _timed(name, fn)
        status[name] = stage.status
        result.stages.append(stage)
        if on_stage:
            on_stage(stage)
    return result


def _timed(name: str, fn: Callable[[], str]) -> StageResult:
    t0 = time.perf_counter()
    try:
        summary = fn()
        return StageResult(name, "ok", time.perf_counter() - t0, summary)
    except EdgeclfError as e:
        log.error("demo stage %s failed: %s", name, e)
        return StageResult(name, "failed", time.perf_counter() - t0, str(e))


def _data(cfg: DemoConfig, state: dict) -> str:
    if cfg.data is not None:
        state["data"] = Path(cfg.data)
        return f"using {cfg.data}"
    from edgeclf.data.synthetic import DEMO_SHAPES, make_demo_dataset

    data = Path(cfg.out) / f"demo-data-{cfg.per_class}x{cfg.image_size}"
    if not data.is_dir():
        make_demo_dataset(data, per_class=cfg.per_class, size=cfg.image_size)
    state["data"] = data
    return f"generated {len(DEMO_SHAPES)} classes x {cfg.per_class} images in {data}"


def _train(cfg: DemoConfig, state: dict) -> str:
    from edgeclf.train import TrainConfig, train

    tc = TrainConfig(data_dir=str(state["data"]), out=str(cfg.out), name=cfg.name,
                     backbone=cfg.backbone, weights=cfg.weights, image_size=cfg.image_size,
                     strategy="fine-tune", epochs=cfg.epochs, lr=cfg.lr,
                     fine_tune_epochs=cfg.fine_tune_epochs, augment=cfg.augment,
                     split=cfg.split, batch_size=cfg.batch_size, overwrite=cfg.overwrite,
                     patience=0)
    res = train(tc)
    test = res.metrics.get("test", {})
    return (f"test accuracy {test.get('accuracy', float('nan')):.3f} on {test.get('n')} images, "
            f"{res.train_seconds:.0f}s")


def _export(cfg: DemoConfig, run_dir: Path) -> str:
    from edgeclf.export import ExportConfig, export_run

    res = export_run(run_dir, ExportConfig(formats=cfg.formats, quantizations=cfg.quantizations,
                                           calibration_size=100))
    ok = [a for a in res.artifacts if a.status == "ok"]
    failed = [a for a in res.artifacts if a.status == "failed"]
    if failed:
        raise EdgeclfError("export failed for " + ", ".join(
            f"{a.format}/{a.quantization}: {a.message}" for a in failed))
    return ", ".join(f"{a.file} ({(a.bytes or 0) / 1e6:.1f} MB)" for a in ok)


def _parity(run_dir: Path) -> str:
    from edgeclf.parity import check_parity

    res = check_parity(run_dir)
    rows = [f"{a.file} {'PASS' if a.passed else 'BREACH'} ({a.agreement:.1%} agree)"
            for a in res.artifacts]
    if not res.passed:       # an artifact that breaks its budget is a failed stage
        raise EdgeclfError("budget breached (see parity.json): " + "; ".join(rows))
    return f"{len(rows)} artifacts within budget: " + "; ".join(rows)


def _bench(cfg: DemoConfig, run_dir: Path) -> str:
    from edgeclf.bench import BenchConfig, run_bench, save_bench

    res = run_bench(run_dir, BenchConfig(batch_sizes=(1, 8), runs=cfg.bench_runs, warmup=2,
                                         baselines=False, formats=("onnx", "tflite")))
    save_bench(res, run_dir)
    ok = [r for r in res.results if r.get("status") == "ok" and r.get("batch_size") == 1]
    return "; ".join(f"{r['artifact']} {r['p50_ms']:.2f} ms (batch 1)" for r in ok) or \
        "no artifact could be benchmarked"


def _predict(run_dir: Path) -> str:
    from edgeclf.data.split import Split
    from edgeclf.runtime import Predictor

    split = Split.read(RunPaths(run_dir).split)
    first: dict[str, str] = {}          # one test image per class
    for rel in split.test:
        first.setdefault(rel.split("/", 1)[0], rel)
    files = [split.root / p for p in first.values()]
    predictor = Predictor.from_path(run_dir)
    preds = predictor.predict(files, top_k=1)
    hits = sum(p.label == f.parent.name for p, f in zip(preds, files))
    return (f"{hits}/{len(files)} test images right with {predictor.path.name} "
            f"({predictor.provider}): " + ", ".join(f"{f.name}→{p.label}" for p, f in zip(preds, files)))


def _report(run_dir: Path) -> str:
    from edgeclf.report.html import write_report

    return str(write_report(run_dir))
