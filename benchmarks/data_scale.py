"""Datasets at scale (issue 17): decode-cache size and scan speed, on generated folders.

    # 50,000 JPEGs of 32x32: cache size and time of `edgeclf data check` (224 contract),
    # and the flowers cache at 224 next to the fixed-row layout it replaces
    python benchmarks/data_scale.py cache --n 50000 --work /tmp/edgeclf-scale
    # scan + check (decode excluded) of 100k, 300k and 1M tiny files: linear? <= 60 s/M?
    python benchmarks/data_scale.py scan --n 1000000 --work /tmp/edgeclf-scale

Generated files go under --work and are deleted at the end (--keep keeps them). Writes
benchmarks/results/data-scale-<what>-<date>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
               platform.machine()) if Path("/proc/cpuinfo").exists() else platform.machine()
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def tiny_jpegs(n: int, classes: int, size: int = 32) -> list[bytes]:
    """A few hundred distinct small JPEGs (smooth blobs + noise, ~1 KB like CIFAR-style
    photos); every generated file gets 4 unique bytes after the end marker."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(256):
        base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
        arr = np.clip(np.asarray(img, np.int16) + rng.integers(-12, 12, (size, size, 3)), 0, 255)
        buf = io.BytesIO()
        Image.fromarray(arr.astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def generate(root: Path, n: int, classes: int) -> float:
    """``n`` unique tiny JPEGs in ``classes`` folders; returns the seconds it took."""
    blobs = tiny_jpegs(n, classes)
    t0 = time.perf_counter()
    per = -(-n // classes)
    for c in range(classes):
        folder = root / f"c{c:03d}"
        want = range(c * per, min(n, (c + 1) * per))
        if folder.is_dir() and sum(1 for _ in os.scandir(folder)) == len(want):
            continue                                   # left by an earlier --keep run
        folder.mkdir(parents=True, exist_ok=True)
        for i in want:
            (folder / f"{i:07d}.jpg").write_bytes(blobs[i % len(blobs)] + i.to_bytes(4, "little"))
    return time.perf_counter() - t0


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def data_check(data: Path, cache: Path, size: int) -> dict:
    env = {**os.environ, "EDGECLF_CACHE_DIR": str(cache), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "edgeclf", "data", "check", str(data), "--image-size",
           str(size), "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    report = json.loads(out.stdout[out.stdout.index("{"):])
    return {"seconds": round(seconds, 1), "usable": report["n_usable"],
            "cache_bytes": du(cache / "decode"), "command": " ".join(cmd[1:])}


def run_cache(args: argparse.Namespace) -> dict:
    work = args.work / "cache"
    data = work / "small"
    gen = generate(data, args.n, 10)
    res = {"generated": {"images": args.n, "bytes_on_disk": du(data), "seconds": round(gen, 1)}}
    res["small_224"] = data_check(data, work / "cache-small", 224)
    res["small_224"]["fixed_row_bytes"] = args.n * 224 * 224 * 3   # the layout it replaces
    if FLOWERS.is_dir() and not args.no_flowers:
        res["flowers_224"] = data_check(FLOWERS, args.work / "cache-flowers", 224)
        res["flowers_224"]["fixed_row_bytes"] = res["flowers_224"]["usable"] * 224 * 224 * 3
    return res


def _cpu_seconds() -> float:
    """CPU time of this process: with ``--workers 1`` the whole scan runs here, so this is
    what it costs whatever else the shared machine runs (forkserver workers are not this
    process's children, so with more workers only the wall time is reported)."""
    return time.process_time()


def run_scan(args: argparse.Namespace) -> dict:
    """Scan + check (decode excluded) of the first 10%, 30% and all of a generated tree."""
    from edgeclf.data import check_dataset, scan_dataset
    from edgeclf.data.cache import DecodeCache

    tree = args.work / "tree"
    classes = 100
    gen = generate(tree, args.n, classes)
    res = {"generated": {"files": args.n, "seconds": round(gen, 1)}, "runs": []}
    for frac in (float(f) for f in args.fractions.split(",")):
        k = max(1, int(classes * frac))
        view = args.work / f"view-{k}"               # the first k class folders, symlinked
        shutil.rmtree(view, ignore_errors=True)
        view.mkdir()
        for c in range(k):
            os.symlink(tree / f"c{c:03d}", view / f"c{c:03d}")
        subprocess.run(["sync"], check=False)
        calls = []
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        ds = scan_dataset(view, workers=args.workers or None,
                          progress=lambda done, total: calls.append(done))
        t_scan = time.perf_counter() - t0
        fp = ds.fingerprint
        rel = [it.relpath for it in ds.items]
        cache = DecodeCache(path=view, relpaths=rel, images=np.zeros((0, 1, 1, 3), np.uint8),
                            ok=np.ones(len(rel), bool), errors={},
                            sizes={it.relpath: (it.width, it.height) for it in ds.items})
        report = check_dataset(ds, cache)
        total = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0 if args.workers == 1 else float("nan")
        run = {"workers": args.workers or os.cpu_count(), "cpu_seconds": round(cpu, 1),
               "cpu_seconds_per_million": round(cpu / (len(rel) / 1e6), 1),"files": len(ds.items) + len(ds.problems), "scan_seconds": round(t_scan, 1),
               "scan_and_check_seconds": round(total, 1),
               "seconds_per_million": round(total / (len(rel) / 1e6), 1),
               "progress_updates": len(calls), "usable": report.n_usable,
               "fingerprint": fp[:12], "load_average": [round(x, 2) for x in os.getloadavg()]}
        res["runs"].append(run)
        print(run, flush=True)
        shutil.rmtree(view)
    return res


def write(what: str, res: dict, args: argparse.Namespace) -> Path:
    day = datetime.now(timezone.utc).date().isoformat()
    res = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "command": "python " + " ".join(sys.argv), **res}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"data-scale-{what}{args.tag}-{day}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    m = res["machine"]
    lines = [f"# Datasets at scale: {what} ({res['date']})", "",
             f"- machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; load average at the "
             f"end {m['load_average']} (a shared machine: 7 agents on 2 cores)",
             f"- command: `{res['command']}`", ""]
    if what == "cache":
        lines += ["| dataset | images | on disk | cache bytes | fixed-row layout | `data check` s |",
                  "|---|---|---|---|---|---|"]
        for key in ("small_224", "flowers_224"):
            if key in res:
                r = res[key]
                src = (f"{res['generated']['bytes_on_disk'] / 1e6:.1f} MB"
                       if key == "small_224" else "")
                lines.append(f"| {key} | {r['usable']:,} | {src} | {r['cache_bytes'] / 1e6:.1f} MB"
                             f" | {r['fixed_row_bytes'] / 1e6:.1f} MB | {r['seconds']} |")
    else:
        lines += ["| files | scan s | scan + check s (wall) | wall s per million | CPU s "
                  "(all processes) | CPU s per million | progress updates | load |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in res["runs"]:
            lines.append(f"| {r['files']:,} | {r['scan_seconds']} | {r['scan_and_check_seconds']}"
                         f" | {r['seconds_per_million']} | {r['cpu_seconds']} | "
                         f"{r['cpu_seconds_per_million']} | {r['progress_updates']} | "
                         f"{r['load_average'][0]} |")
        lines += ["", "CPU seconds (runs with --workers 1 only: the whole scan in one "
                  "process) do not depend on the machine's load; 2 worker processes on 2 idle "
                  "cores take about CPU / 2 of wall time."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem.with_suffix(".md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("cache", "scan"))
    p.add_argument("--n", type=int, default=50000)
    p.add_argument("--work", type=Path, default=Path("/tmp/edgeclf-scale"))
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--fractions", default="0.1,0.3,1.0",
                   help="scan: the share of the generated tree each run reads")
    p.add_argument("--no-flowers", action="store_true")
    p.add_argument("--tag", default="", help="appended to the results file name")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        res = run_cache(args) if args.what == "cache" else run_scan(args)
        print(f"wrote {write(args.what, res, args)}")
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
