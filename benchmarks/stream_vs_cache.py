"""Streaming vs the decode cache (issue 17 item 2): training images/s side by side, one
process, one compiled model, same loader settings, runs interleaved (cached, streamed,
cached, streamed) so the shared machine's load hits both alike.

- cached: the decode cache (memmap) -> BatchLoader -> ``train_on_batch``, as ``edgeclf train``;
- streamed: the same dataset above ``--cache-budget``: the loader's workers decode every
  file every epoch (``StreamImages``), same batches and augmentation.

Also the loaders alone (no model): the raw cost of decoding per epoch.

    python benchmarks/stream_vs_cache.py --size 224 --batch 32 --steps 12 --mode head

Writes benchmarks/results/stream-vs-cache-<date>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data_scale import RESULTS, machine  # noqa: E402
from train_throughput import build, endless  # noqa: E402


def loader(images, rows, labels, args):  # noqa: ANN001, ANN201
    from edgeclf.data.augment import AugmentConfig
    from edgeclf.data.loader import BatchLoader

    return BatchLoader(images, rows, labels, batch_size=args.batch, shuffle=True,
                       drop_remainder=True, augment=AugmentConfig(),
                       workers=args.workers or None, seed=0)


def loader_alone(images, rows, labels, args) -> float:  # noqa: ANN001
    ld = loader(images, rows, labels, args)
    batches = endless(ld)
    next(batches)
    n, t0 = max(args.steps, 8), time.perf_counter()
    for _ in range(n):
        next(batches)
    rate = n * args.batch / (time.perf_counter() - t0)
    batches.close()
    ld.close()
    return rate


def train_rate(model, images, rows, labels, n_classes: int, args) -> dict:  # noqa: ANN001
    ld = loader(images, rows, labels, args)
    eye = np.eye(n_classes, dtype=np.float32)
    batches = endless(ld)
    for _ in range(args.warmup):
        b = next(batches)
        model.train_on_batch(b.x, eye[b.y])
    for _ in range(ld.ahead):                    # drain the warm-up's prefetch
        next(batches)
    ld.stats.reset()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        b = next(batches)
        model.train_on_batch(b.x, eye[b.y])
    seconds = time.perf_counter() - t0
    batches.close()
    ld.close()
    return {"images_per_second": args.steps * args.batch / seconds, "seconds": seconds,
            "input_wait_fraction": ld.stats.wait_seconds / seconds,
            "loader": "processes" if ld.processes else "threads", "workers": ld.workers,
            "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data" / "flowers"))
    p.add_argument("--backbone", default="mobilenetv2")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--mode", choices=("finetune", "head"), default="head",
                   help="head: frozen backbone (edgeclf train's phase 1); finetune: all layers")
    p.add_argument("--mixed-precision", default=None)
    args = p.parse_args()
    import keras

    from edgeclf.data import load_or_build, scan_dataset
    from edgeclf.runtime.contract import Contract

    contract = Contract(size=(args.size, args.size))
    ds = scan_dataset(args.data)
    cached = load_or_build(ds, contract)
    streamed = load_or_build(ds, contract, budget=0)
    assert not cached.streaming and streamed.streaming
    rows = np.flatnonzero(cached.ok)
    labels = np.array([ds.classes.index(cached.relpaths[i].split("/")[0]) for i in rows])
    n_classes = len(ds.classes)
    alone = {"cached": loader_alone(cached.images, rows, labels, args),
             "streamed": loader_alone(streamed.images, rows, labels, args)}
    print(f"loaders alone: {alone}", flush=True)
    model = build(args, n_classes)
    runs: dict[str, list] = {"cached": [], "streamed": []}
    for _ in range(args.rounds):
        for name, c in (("cached", cached), ("streamed", streamed)):
            r = train_rate(model, c.images, rows, labels, n_classes, args)
            runs[name].append(r)
            print(f"{name:9s} {r['images_per_second']:.2f} img/s (wait "
                  f"{r['input_wait_fraction']:.2f}, load {r['load_average']})", flush=True)
    mean = {k: float(np.mean([r["images_per_second"] for r in v])) for k, v in runs.items()}
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "command": "python " + " ".join(sys.argv),
           "backend": keras.backend.backend(), "args": vars(args), "loaders_alone": alone,
           "runs": runs, "mean_images_per_second": mean,
           "streamed_over_cached": mean["streamed"] / mean["cached"],
           "cache": {"bytes": cached.plan.bytes if cached.plan else None,
                     "decode_rate_per_worker": streamed.decode_rate}}
    stem = RESULTS / f"stream-vs-cache-{out['date'][:10]}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    m = out["machine"]
    rows_md = "\n".join(f"| {name} | {i + 1} | {r['images_per_second']:.2f} | "
                        f"{r['input_wait_fraction']:.2f} | {r['loader']} x{r['workers']} | "
                        f"{r['load_average']} |"
                        for name, rs in runs.items() for i, r in enumerate(rs))
    stem.with_suffix(".md").write_text(
        f"# Streaming vs decode cache: training images/s ({out['date']})\n\n"
        f"- machine: {m['cpu']}, {m['cores']} cores; load average at the end "
        f"{m['load_average']} (a shared machine)\n- command: `{out['command']}`\n"
        f"- {args.backbone} at {args.size}px, batch {args.batch}, mode {args.mode}, "
        f"{args.steps} timed steps per run after {args.warmup} warm-up steps, "
        f"backend {out['backend']}; dataset {args.data} ({len(rows)} images)\n\n"
        f"| input | run | images/s | input wait | loader | load avg |\n|---|---|---|---|---|---|\n"
        f"{rows_md}\n\n"
        f"Mean: cached {mean['cached']:.2f}, streamed {mean['streamed']:.2f} images/s: "
        f"**streamed / cached = {out['streamed_over_cached']:.2f}** (goal >= 0.8).\n\n"
        f"Loaders alone (no model, augmentation on): cached {alone['cached']:.0f}, "
        f"streamed {alone['streamed']:.0f} images/s: the throughput cost of streaming is "
        f"decoding every image every epoch.\n")
    print(f"wrote {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
