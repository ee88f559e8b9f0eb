"""Decode cache: the first `edgeclf data check` decodes every image, the second none.

Runs `edgeclf data check DATA --json` twice in fresh processes with an empty cache root and
records wall times and the cache log line. Usage:

    python benchmarks/decode_cache.py [DATA_DIR] [--image-size 224]

Writes benchmarks/results/decode-cache-<date>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "flowers"


def _run(data: Path, size: int, env: dict) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "edgeclf", "data", "check", str(data), "--image-size", str(size)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, out.stdout + out.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--image-size", type=int, default=224)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "EDGECLF_CACHE_DIR": cache, "COLUMNS": "200"}
        first, log1 = _run(args.data, args.image_size, env)
        second, log2 = _run(args.data, args.image_size, env)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() \
        else platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    line = lambda log: next((ln.strip() for ln in log.splitlines() if "decode cache" in ln), "")  # noqa: E731
    today = dt.date.today().isoformat()
    text = f"""# Decode cache: first vs second `data check` ({today})

- machine: {cpu}, {os.cpu_count()} cores, {platform.platform()}; load average before: {load:.1f}
- command: `python benchmarks/decode_cache.py {args.data} --image-size {args.image_size}`

| run | wall seconds (incl. process start) | cache |
|---|---|---|
| first | {first:.2f} | {line(log1)} |
| second | {second:.2f} | {line(log2)} |

Ratio first/second: {first / second:.1f}x. The second run decodes nothing (log line above).
"""
    out = HERE / "results" / f"decode-cache-{today}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
