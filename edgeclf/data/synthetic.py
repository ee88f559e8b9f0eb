"""A small generated dataset for the demo and tests (no download): rendered shapes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "cross", "stripes")


def _draw(shape: str, rng: np.random.Generator, size: int) -> Image.Image:
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    noise = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray(np.clip(np.asarray(img, np.int16) + noise - 20, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    fg = tuple(int((b + rng.integers(96, 160)) % 256) for b in bg)
    r = size * rng.uniform(0.2, 0.35)
    cx, cy = (size / 2 + rng.uniform(-0.15, 0.15, 2) * size)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "square":
        a = rng.uniform(0, math.pi / 2)
        pts = [(cx + r * math.cos(a + k * math.pi / 2), cy + r * math.sin(a + k * math.pi / 2))
               for k in range(4)]
        d.polygon(pts, fill=fg)
    elif shape == "triangle":
        a = rng.uniform(0, 2 * math.pi)
        pts = [(cx + r * math.cos(a + k * 2 * math.pi / 3), cy + r * math.sin(a + k * 2 * math.pi / 3))
               for k in range(3)]
        d.polygon(pts, fill=fg)
    elif shape == "cross":
        t = r / 3
        d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fg)
        d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fg)
    else:  # stripes
        step = int(rng.integers(6, 14))
        for x in range(0, size * 2, step * 2):
            d.line([(x, 0), (x - size, size)], fill=fg, width=step // 2 + 1)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))


def make_shapes_dataset(out: str | Path, *, per_class: int = 60, size: int = 96,
                        classes: tuple[str, ...] = SHAPES, seed: int = 0) -> Path:
    """Write ``out/<shape>/<n>.jpg`` (and some .png) images; returns ``out``."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for shape in classes:
        (out / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = _draw(shape, rng, size)
            if i % 5 == 0:
                img.save(out / shape / f"{shape}_{i:03d}.png")
            else:
                img.save(out / shape / f"{shape}_{i:03d}.jpg", quality=90)
    return out
