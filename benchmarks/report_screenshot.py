"""Render a run's report.html in headless Chromium and save a PNG screenshot.

    python benchmarks/report_screenshot.py models/flowers-mnv2 \
        --out benchmarks/results/report-flowers.png

Writes the report first (``edgeclf report``'s library call) unless ``--no-write``. Needs a
Chromium binary (Debian: ``apt-get install chromium``); no network is used or needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    env = os.environ.get("EDGECLF_CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def screenshot(html: Path, out: Path, *, width: int = 1280, height: int = 4000,
               chromium: str | None = None, timeout: float = 120.0) -> Path:
    """Render ``html`` headless and write ``out`` (PNG). Raises RuntimeError on failure."""
    binary = chromium or find_chromium()
    if binary is None:
        raise RuntimeError("no Chromium found (install Debian's `chromium` or set "
                           "EDGECLF_CHROMIUM)")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeclf-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={out}",
               f"--window-size={width},{height}", html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=profile)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return out


def trim_bottom(png: Path, margin: int = 24) -> tuple[int, int]:
    """Cut the empty band below the page (the window is taller than the page); returns the
    new size. A page taller than the window keeps the full height: raise --height."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        arr = np.asarray(im.convert("RGB"))
        differs = np.nonzero((arr != arr[-1]).any(axis=(1, 2)))[0]
        height = min(arr.shape[0], int(differs[-1]) + 1 + margin) if len(differs) else 1
        if height < arr.shape[0]:
            im.crop((0, 0, arr.shape[1], height)).save(png)
        return arr.shape[1], height


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="run directory (models/<name>)")
    ap.add_argument("--out", type=Path, default=None, help="PNG path (default RUN/report.png)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=12000,
                    help="window height; the empty band below the page is trimmed")
    ap.add_argument("--no-write", action="store_true", help="use the existing report.html")
    args = ap.parse_args(argv)
    if args.no_write:
        html = args.run / "report.html"
    else:
        from edgeclf.report.html import write_report

        html = write_report(args.run)
    out = screenshot(html, args.out or args.run / "report.png", width=args.width,
                     height=args.height)
    width, height = trim_bottom(out)
    if height >= args.height:
        print(f"warning: the page is taller than {args.height} px; raise --height",
              file=sys.stderr)
    print(f"{out} ({width}x{height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
