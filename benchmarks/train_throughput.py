"""Training throughput, side by side in one process: edgeclf's pipeline vs a naive baseline
vs synthetic tensors, same model, same batch size.

- ``edgeclf``: the decode cache (memmap) -> BatchLoader (augmentation in worker threads,
  background prefetch) -> ``train_on_batch`` — exactly what ``edgeclf train`` runs.
- ``naive``: the Simpsons tutorial's pipeline: a Python generator that opens, decodes,
  resizes and augments each JPEG one by one, feeding ``model.fit`` (batch 64).
- ``synthetic``: random float32 tensors already in memory -> ``train_on_batch``: the rate
  the model itself allows (the ceiling a pipeline should reach).

    python benchmarks/train_throughput.py --data ../shared/data/flowers --size 128 --steps 8
    KERAS_BACKEND=jax python benchmarks/train_throughput.py ...   # the GPU machine

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
    p.add_argument("--workers", type=int, default=0, help="loader threads (0: per core)")
    p.add_argument("--machine", default=f"{os.cpu_count()}-core CPU, no GPU")
    p.add_argument("--no-write", action="store_true")
    return p.parse_args()


def build(args: argparse.Namespace, n_classes: int):  # noqa: ANN201
    import keras

    from edgeclf.backbones import get_backbone
    from edgeclf.train import build_model
    from edgeclf.train.model import unfreeze
    from edgeclf.train.optim import compile_model

    model = build_model([get_backbone(args.backbone)], n_classes, image_size=args.size)
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


def run_edgeclf(model, args, prepared, n_classes: int) -> dict:  # noqa: ANN001
    from edgeclf.data.augment import AugmentConfig
    from edgeclf.data.loader import BatchLoader

    cache = prepared.cache
    rows = np.flatnonzero(cache.ok)
    labels = np.array([prepared.dataset.classes.index(cache.relpaths[i].split("/")[0])
                       for i in rows])
    loader = BatchLoader(cache.images, rows, labels, batch_size=args.batch, shuffle=True,
                         drop_remainder=True, augment=AugmentConfig(),
                         workers=args.workers or None)
    eye = np.eye(n_classes, dtype=np.float32)
    batches = iter(loader.epoch(0))
    for _ in range(args.warmup):
        b = next(batches)
        model.train_on_batch(b.x, eye[b.y])
    loader.stats.reset()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        b = next(batches)
        model.train_on_batch(b.x, eye[b.y])
    seconds = time.perf_counter() - t0
    batches.close()
    return {"images_per_second": args.steps * args.batch / seconds, "seconds": seconds,
            "input_wait_fraction": loader.stats.wait_seconds / seconds}


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
    from edgeclf.data.augment import AugmentConfig
    from edgeclf.data.loader import BatchLoader

    cache = prepared.cache
    rows = np.flatnonzero(cache.ok)
    loader = BatchLoader(cache.images, rows, np.zeros(len(rows), np.int32),
                         batch_size=args.batch, shuffle=True, drop_remainder=True,
                         augment=AugmentConfig(), workers=args.workers or None)
    n = min(len(loader), max(args.steps, 4))
    t0 = time.perf_counter()
    for i, _ in enumerate(loader.epoch(0)):
        if i + 1 >= n:
            break
    edgeclf_rate = n * args.batch / (time.perf_counter() - t0)
    gen = naive_generator(prepared, args)
    t0 = time.perf_counter()
    for _ in range(max(2, n // 4)):
        next(gen)
    naive_rate = max(2, n // 4) * args.batch / (time.perf_counter() - t0)
    return {"edgeclf_loader": edgeclf_rate, "naive_generator": naive_rate}


def write(results: dict, args: argparse.Namespace) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"train-throughput-{results['backend']}-{results['date'][:10]}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = "\n".join(
        f"| {name} | {r['images_per_second']:.1f} | {r['images_per_second'] / results['pipelines']['synthetic']['images_per_second']:.2f} | "
        f"{r.get('input_wait_fraction', float('nan')):.2f} |"
        for name, r in results["pipelines"].items())
    md = (f"# Training throughput: edgeclf pipeline vs naive vs synthetic\n\n"
          f"- date: {results['date']}\n- machine: {results['machine']}\n"
          f"- backend: {results['backend']} (Keras {results['keras']})\n"
          f"- command: `{results['command']}`\n"
          f"- model: {args.backbone} at {args.size}px, batch {args.batch}, mode {args.mode}, "
          f"{args.steps} timed steps after {args.warmup} warmup steps\n\n"
          f"| pipeline | images/s | vs synthetic | input wait |\n|---|---|---|---|\n{rows}\n\n"
          f"edgeclf / naive = {results['edgeclf_over_naive']:.2f}x\n\n"
          f"Input pipelines alone (no model; augmentation on): edgeclf loader "
          f"{results['input_only']['edgeclf_loader']:.0f} img/s, naive per-image generator "
          f"{results['input_only']['naive_generator']:.0f} img/s.\n")
    (RESULTS / f"{stem}.md").write_text(md)
    return RESULTS / f"{stem}.md"


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
    for name in ("synthetic", "edgeclf", "naive"):
        model = build(args, n_classes)            # a fresh model per pipeline: same compile
        if name == "synthetic":
            pipelines[name] = run_synthetic(model, args, n_classes)
        elif name == "edgeclf":
            pipelines[name] = run_edgeclf(model, args, prepared, n_classes)
        else:
            pipelines[name] = run_naive(model, args, prepared)
        print(f"{name:10s} {pipelines[name]['images_per_second']:8.1f} img/s", flush=True)
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": args.machine, "platform": platform.platform(),
               "backend": keras.backend.backend(), "keras": keras.__version__,
               "command": "python " + " ".join(sys.argv), "args": vars(args),
               "pipelines": pipelines, "input_only": inputs,
               "edgeclf_over_naive": pipelines["edgeclf"]["images_per_second"]
               / pipelines["naive"]["images_per_second"],
               "edgeclf_over_synthetic": pipelines["edgeclf"]["images_per_second"]
               / pipelines["synthetic"]["images_per_second"]}
    if not args.no_write:
        print(f"wrote {write(results, args)}")
    print(json.dumps({k: results[k] for k in ("edgeclf_over_naive", "edgeclf_over_synthetic")}))


if __name__ == "__main__":
    main()
