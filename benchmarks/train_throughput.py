"""Training throughput, side by side in one process: edgeclf's pipeline vs a naive baseline
vs synthetic tensors, same model, same batch size.

- ``edgeclf``: the decode cache (memmap) -> BatchLoader (augmentation in worker processes
  from 4 workers on, threads below; background prefetch) -> ``train_on_batch`` — exactly
  what ``edgeclf train`` runs. Timed in steady state: the batches prefetched during the
  warm-up (compile) are drained first, and the steps run across epochs.
- ``naive``: the Simpsons tutorial's pipeline: a Python generator that opens, decodes,
  resizes and augments each JPEG one by one, feeding ``model.fit`` (batch 64).
- ``synthetic``: random float32 tensors already in memory -> ``train_on_batch``: the rate
  the model itself allows (the ceiling a pipeline should reach).

    python benchmarks/train_throughput.py --data ../shared/data/flowers --size 128 --steps 8
    # the GPU machine (H100; see benchmarks/results/train-gpu-2026-11-22.md):
    KERAS_BACKEND=jax python benchmarks/train_throughput.py --size 224 --batch 64 \
        --steps 150 --warmup 3 --pipelines synthetic,edgeclf --loader processes --workers 6,10,15

Writes ``benchmarks/results/train-throughput-<backend>-<date>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "flowers"))
    p.add_argument("--backbone", default="mobilenetv2")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=8, help="timed steps per pipeline")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps (compile)")
    p.add_argument("--mode", choices=("finetune", "head"), default="finetune",
                   help="finetune: every layer trains; head: frozen backbone")
    p.add_argument("--workers", default="0",
                   help="loader workers (0: edgeclf's default); a comma list times the "
                        "edgeclf pipeline once per count, on the same compiled model")
    p.add_argument("--mixed-precision", choices=("bfloat16", "float16"), default=None,
                   help="Keras mixed precision policy (as `edgeclf train --mixed-precision`)")
    p.add_argument("--loader", choices=("auto", "threads", "processes"), default="auto",
                   help="edgeclf loader workers: threads, processes, or auto (processes from "
                        "4 workers on)")
    p.add_argument("--pipelines", default="synthetic,edgeclf,naive",
                   help="comma-separated subset of synthetic,edgeclf,naive")
    p.add_argument("--machine", default=f"{os.cpu_count()}-core CPU, no GPU")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    p.add_argument("--no-write", action="store_true")
    return p.parse_args()


def build(args: argparse.Namespace, n_classes: int):  # noqa: ANN201
    import keras

    from edgeclf.backbones import get_backbone
    from edgeclf.train import build_model
    from edgeclf.train.model import unfreeze
    from edgeclf.train.optim import compile_model

    model = build_model([get_backbone(args.backbone)], n_classes, image_size=args.size,
                        mixed_precision=args.mixed_precision)
    if args.mode == "finetune":
        unfreeze(model, None)
    compile_model(model, keras.optimizers.Adam(1e-4), label_smoothing=0.1)
    return model


def time_steps(step, warmup: int, steps: int) -> float:  # noqa: ANN001
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


def run_synthetic(model, args, n_classes: int) -> dict:  # noqa: ANN001
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32)
    y = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, args.batch)]
    seconds = time_steps(lambda: model.train_on_batch(x, y), args.warmup, args.steps)
    return {"images_per_second": args.steps * args.batch / seconds, "seconds": seconds}


def make_loader(args, prepared, labels=None, workers: int = 0):  # noqa: ANN001, ANN201
    from edgeclf.data.augment import AugmentConfig
    from edgeclf.data.loader import BatchLoader

    cache = prepared.cache
    rows = np.flatnonzero(cache.ok)
    if labels is None:
        labels = np.zeros(len(rows), np.int32)
    processes = None if args.loader == "auto" else args.loader == "processes"
    return BatchLoader(cache.images, rows, labels, batch_size=args.batch, shuffle=True,
                       drop_remainder=True, augment=AugmentConfig(),
                       workers=workers or None, processes=processes)


def worker_counts(args) -> list[int]:  # noqa: ANN001
    return [int(w) for w in str(args.workers).split(",") if w.strip()]


def endless(loader):  # noqa: ANN001, ANN201
    """Batches over as many epochs as asked for (steady state, not one epoch's tail)."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def run_edgeclf(model, args, prepared, n_classes: int, workers: int) -> dict:  # noqa: ANN001
    cache = prepared.cache
    rows = np.flatnonzero(cache.ok)
    labels = np.array([prepared.dataset.classes.index(cache.relpaths[i].split("/")[0])
                       for i in rows])
    loader = make_loader(args, prepared, labels, workers)
    eye = np.eye(n_classes, dtype=np.float32)
    batches = endless(loader)
    for _ in range(args.warmup):
        b = next(batches)
        model.train_on_batch(b.x, eye[b.y])
    # drain what the loader prefetched during the warm-up (compile) so the timed steps see
    # the loader's steady rate, not a full buffer
    for _ in range(loader.ahead):
        b = next(batches)
    loader.stats.reset()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        b = next(batches)
        model.train_on_batch(b.x, eye[b.y])
    seconds = time.perf_counter() - t0
    batches.close()
    loader.close()
    return {"images_per_second": args.steps * args.batch / seconds, "seconds": seconds,
            "input_wait_fraction": loader.stats.wait_seconds / seconds,
            "loader": "processes" if loader.processes else "threads",
            "workers": loader.workers}


def naive_generator(prepared, args):  # noqa: ANN001, ANN201
    """Per image: PIL open + decode + resize + augment in Python, one at a time."""
    from PIL import Image

    from edgeclf.data.augment import AugmentConfig, augment_image

    items = prepared.dataset.items
    classes = prepared.dataset.classes
    cfg, rng = AugmentConfig(), np.random.default_rng(0)
    eye = np.eye(len(classes), dtype=np.float32)
    i = 0
    while True:
        xs, ys = [], []
        for _ in range(args.batch):
            it = items[i % len(items)]
            i += 1
            with Image.open(prepared.dataset.root / it.relpath) as img:
                arr = np.asarray(img.convert("RGB").resize((args.size, args.size)))
            xs.append(augment_image(arr, cfg, rng).astype(np.float32))
            ys.append(eye[it.label])
        yield np.stack(xs), np.stack(ys)


def run_naive(model, args, prepared) -> dict:  # noqa: ANN001
    gen = naive_generator(prepared, args)
    model.fit(gen, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(gen, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - t0
    return {"images_per_second": args.steps * args.batch / seconds, "seconds": seconds}


def input_only(args, prepared, n_classes: int) -> dict:  # noqa: ANN001
    """Images/s each input pipeline produces with no model attached (its ceiling)."""
    loader = make_loader(args, prepared, workers=worker_counts(args)[-1])
    batches = endless(loader)
    next(batches)                                    # workers started
    n = max(args.steps, 4)
    t0 = time.perf_counter()
    for _ in range(n):
        next(batches)
    edgeclf_rate = n * args.batch / (time.perf_counter() - t0)
    batches.close()
    loader.close()
    gen = naive_generator(prepared, args)
    t0 = time.perf_counter()
    for _ in range(max(2, n // 8)):
        next(gen)
    naive_rate = max(2, n // 8) * args.batch / (time.perf_counter() - t0)
    return {"edgeclf_loader": edgeclf_rate, "naive_generator": naive_rate,
            "loader": "processes" if loader.processes else "threads",
            "workers": loader.workers}


def ratio(pipelines: dict, a: str, b: str) -> float | None:
    """``a`` over ``b``; for a list of edgeclf worker counts, the best of them."""
    rates = [r["images_per_second"] for k, r in pipelines.items() if k.split("-")[0] == a]
    if rates and b in pipelines:
        return max(rates) / pipelines[b]["images_per_second"]
    return None


def write(results: dict, args: argparse.Namespace) -> Path:
    args.out.mkdir(parents=True, exist_ok=True)
    policy = f"-{args.mixed_precision}" if args.mixed_precision else ""
    stem = f"train-throughput-{results['backend']}{policy}-{results['date'][:10]}"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    synth = results["pipelines"].get("synthetic", {}).get("images_per_second", float("nan"))
    rows = "\n".join(
        f"| {name} | {r['images_per_second']:.1f} | {r['images_per_second'] / synth:.2f} | "
        f"{r.get('input_wait_fraction', float('nan')):.2f} |"
        for name, r in results["pipelines"].items())
    over_naive = results["edgeclf_over_naive"]
    md = (f"# Training throughput: edgeclf pipeline vs naive vs synthetic\n\n"
          f"- date: {results['date']}\n- machine: {results['machine']}\n"
          f"- backend: {results['backend']} (Keras {results['keras']})\n"
          f"- command: `{results['command']}`\n"
          f"- model: {args.backbone} at {args.size}px, batch {args.batch}, mode {args.mode}, "
          f"precision {args.mixed_precision or 'float32'}, "
          f"{args.steps} timed steps after {args.warmup} warmup steps\n\n"
          f"| pipeline | images/s | vs synthetic | input wait |\n|---|---|---|---|\n{rows}\n\n"
          + (f"edgeclf / naive = {over_naive:.2f}x\n\n" if over_naive else "")
          + f"Input pipelines alone (no model; augmentation on): edgeclf loader "
          f"{results['input_only']['edgeclf_loader']:.0f} img/s, naive per-image generator "
          f"{results['input_only']['naive_generator']:.0f} img/s.\n")
    (args.out / f"{stem}.md").write_text(md)
    return args.out / f"{stem}.md"


def main() -> None:
    args = parse_args()
    import keras

    from edgeclf.data import prepare_data
    from edgeclf.runtime.contract import Contract

    prepared = prepare_data(args.data, Contract(size=(args.size, args.size)))
    n_classes = len(prepared.dataset.classes)
    pipelines = {}
    inputs = input_only(args, prepared, n_classes)
    print(f"input only: {inputs}", flush=True)
    for name in args.pipelines.split(","):
        model = build(args, n_classes)            # a fresh model per pipeline: same compile
        if name == "synthetic":
            pipelines[name] = run_synthetic(model, args, n_classes)
        elif name == "edgeclf":
            counts = worker_counts(args)
            for i, w in enumerate(counts):
                r = run_edgeclf(model, args, prepared, n_classes, w)
                key = name if len(counts) == 1 else f"edgeclf-{r['loader']}-{r['workers']}"
                key += f"-run{i + 1}" if key in pipelines else ""
                pipelines[key] = r
                print(f"{key:10s} {r['images_per_second']:8.1f} img/s", flush=True)
            continue
        else:
            pipelines[name] = run_naive(model, args, prepared)
        print(f"{name:10s} {pipelines[name]['images_per_second']:8.1f} img/s", flush=True)
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": args.machine, "platform": platform.platform(),
               "backend": keras.backend.backend(), "keras": keras.__version__,
               "command": "python " + " ".join(sys.argv),
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "pipelines": pipelines, "input_only": inputs,
               "edgeclf_over_naive": ratio(pipelines, "edgeclf", "naive"),
               "edgeclf_over_synthetic": ratio(pipelines, "edgeclf", "synthetic")}
    if not args.no_write:
        print(f"wrote {write(results, args)}")
    print(json.dumps({k: results[k] for k in ("edgeclf_over_naive", "edgeclf_over_synthetic")}))
    return results


if __name__ == "__main__":
    main()
