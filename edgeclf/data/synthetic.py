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


#: The demo's classes: each shape has its own edge orientations and corners, so a small
#: network trained from scratch separates them within a few hundred steps.
DEMO_SHAPES = ("circle", "square", "triangle", "plus", "stripes")


def _draw_demo(shape: str, rng: np.random.Generator, size: int) -> Image.Image:
    """One demo image: a shape in a random colour on a contrasting random background.

    Light shape on dark ground or the reverse (the luminance gap is at least ~100 of 255),
    random size and position, upright (a rotated square would be a diamond, a rotated plus
    an X: the classes would share their edges), mild noise.
    """
    dark = rng.integers(0, 90, 3)
    light = rng.integers(170, 256, 3)
    bg, fg = (dark, light) if rng.random() < 0.5 else (light, dark)
    noise = rng.integers(-12, 13, (size, size, 3))
    img = Image.fromarray(np.clip(bg[None, None, :] + noise, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    fill = tuple(int(v) for v in fg)
    r = size * rng.uniform(0.22, 0.36)
    cx, cy = size / 2 + rng.uniform(-0.12, 0.12, 2) * size
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = r * 0.85
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        h = r * math.sqrt(3) / 2
        d.polygon([(cx, cy - r), (cx - r, cy + h * 0.9), (cx + r, cy + h * 0.9)], fill=fill)
    elif shape == "plus":
        t = r / 3.5
        d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fill)
        d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fill)
    else:  # stripes: horizontal bars across the whole image
        step = int(rng.integers(size // 12, size // 6 + 1))
        for y in range(int(rng.integers(0, step)), size, step * 2):
            d.rectangle([0, y, size, y + step - 1], fill=fill)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6)))


def make_demo_dataset(out: str | Path, *, per_class: int = 300, size: int = 64,
                      seed: int = 0) -> Path:
    """The demo's dataset: ``out/<shape>/<n>.jpg`` (every fifth a .png) of
    :data:`DEMO_SHAPES`; returns ``out``."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for shape in DEMO_SHAPES:
        (out / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = _draw_demo(shape, rng, size)
            if i % 5 == 0:
                img.save(out / shape / f"{shape}_{i:03d}.png")
            else:
                img.save(out / shape / f"{shape}_{i:03d}.jpg", quality=90)
    return out
