"""Fuzz the preprocessing contract for minutes (the test suite runs a few seconds of it).

    python benchmarks/fuzz_preprocess.py [--seconds 120] [--seed 0] [--write]

Cases: random bytes; real encodings (PNG, JPEG, GIF, BMP, TIFF, WebP) of random Pillow modes
and sizes; the same with flipped bytes, truncated, or with a patched header (huge or zero
dimensions); random arrays; all under random contracts, alone and through
``preprocess_batch``. The only allowed exception is ``ImageError``; anything else is saved
under benchmarks/.work/fuzz/ and makes the exit code 1. A case that runs longer than
``--hang`` seconds aborts the run with a traceback (faulthandler): a hang is a failure too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import io
import os
import platform
import struct
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from edgeclf.runtime import Contract, ImageError, preprocess, preprocess_batch
from edgeclf.runtime.contract import INTERPOLATIONS, RESIZE_MODES

ROOT = Path(__file__).resolve().parents[1]
CRASHES = ROOT / "benchmarks" / ".work" / "fuzz"
MODES = {"1": ["PNG", "BMP", "TIFF"], "L": ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"],
         "P": ["PNG", "GIF", "BMP", "TIFF"], "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
         "RGBA": ["PNG", "TIFF", "WEBP"], "LA": ["PNG"], "CMYK": ["JPEG", "TIFF"],
         "I;16": ["PNG", "TIFF"], "I": ["TIFF"], "F": ["TIFF"], "YCbCr": ["JPEG"]}


def encoded(rng: np.random.Generator) -> bytes:
    mode = rng.choice(sorted(MODES))
    fmt = rng.choice(MODES[mode])
    w, h = (int(v) for v in rng.integers(1, 300, 2))
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).convert(mode)
    buf = io.BytesIO()
    kw = {}
    if fmt == "JPEG" and rng.random() < 0.3:
        exif = Image.Exif()
        exif[0x0112] = int(rng.integers(0, 10))  # orientation, valid or not
        kw["exif"] = exif
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = rng.integers(0, 4)
    if kind == 0:   # flip bytes
        for _ in range(int(rng.integers(1, 16))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(1, len(b)))]
    elif kind == 2 and b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) > 24:  # PNG dimensions
        b[16:24] = struct.pack(">II", *(int(v) for v in rng.choice(
            [0, 1, 7, 65535, 40000, 2**31 - 1], 2)))
    else:           # splice random bytes in
        at = int(rng.integers(0, len(b)))
        b[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8).tobytes()
    return bytes(b)


def case(rng: np.random.Generator):
    r = rng.random()
    if r < 0.15:
        return rng.integers(0, 256, int(rng.integers(0, 2000)), np.uint8).tobytes()
    if r < 0.45:
        return encoded(rng)
    if r < 0.9:
        return mutate(encoded(rng), rng)
    shape = tuple(int(v) for v in rng.integers(0, 40, int(rng.integers(1, 5))))
    dtype = rng.choice([np.uint8, np.int8, np.uint16, np.float32, np.bool_])
    return np.zeros(shape, dtype)


def contract(rng: np.random.Generator) -> Contract:
    h, w = (int(v) for v in rng.integers(1, 256, 2))
    return Contract(size=(h, w), resize=str(rng.choice(RESIZE_MODES)),
                    interpolation=str(rng.choice(INTERPOLATIONS)))


def run(seconds: float, seed: int, hang: float) -> tuple[Counter, list[str], int]:
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    crashes: list[str] = []
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        src, c = case(rng), contract(rng)
        faulthandler.dump_traceback_later(hang, exit=True)
        try:
            if rng.random() < 0.1:
                res = preprocess_batch([src, src], c, threads=2)
                counts["batch_ok" if res.ok else "batch_errors"] += 1
            else:
                out = preprocess(src, c)
                assert out.shape == (c.height, c.width, 3) and out.dtype == np.uint8
                counts["ok"] += 1
        except ImageError:
            counts["ImageError"] += 1
        except Exception as e:  # noqa: BLE001 - the point of the fuzzer
            counts[f"UNEXPECTED {type(e).__name__}"] += 1
            CRASHES.mkdir(parents=True, exist_ok=True)
            f = CRASHES / f"crash-{seed}-{n}.bin"
            f.write_bytes(src.tobytes() if isinstance(src, np.ndarray) else src)
            crashes.append(f"{f}: {c.to_json()}\n{traceback.format_exc()}")
        finally:
            faulthandler.cancel_dump_traceback_later()
    return counts, crashes, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang", type=float, default=30, help="seconds one case may take")
    ap.add_argument("--write", action="store_true",
                    help="write benchmarks/results/predictor-fuzz-DATE.md")
    args = ap.parse_args()
    # Pillow warns (UserWarning) about the corrupt EXIF/TIFF tags it skips: expected here
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
    t = time.monotonic()
    counts, crashes, n = run(args.seconds, args.seed, args.hang)
    took = time.monotonic() - t
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    lines = [f"# Preprocessing fuzz ({date[:10]})", "",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
             f"- command: `python {' '.join(sys.argv)}`",
             f"- {n} cases in {took:.0f} s (seed {args.seed}); hang limit {args.hang:.0f} s per case",
             "", "| outcome | cases |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    lines += ["", f"Unexpected exceptions: {len(crashes)}."]
    text = "\n".join(lines) + "\n"
    print(text)
    for c in crashes[:5]:
        print(c, file=sys.stderr)
    if args.write:
        out = ROOT / "benchmarks" / "results" / f"predictor-fuzz-{date[:10]}.md"
        out.write_text(text)
        print(f"wrote {out}")
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
