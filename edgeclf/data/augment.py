"""Training-time augmentation on uint8 images, in CPU workers (numpy + Pillow only).

The Simpsons tutorial's ``ImageDataGenerator`` options — rotation, width/height shift,
shear, zoom, channel shift, horizontal flip — composed into one affine matrix per image and
applied with a single Pillow resampling (Pillow releases the GIL while it resamples, so a
thread pool scales over cores). Augmentation never touches the model: a checkpoint holds
the plain network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from edgeclf.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """``rotation`` and ``shear`` in degrees; shifts and ``zoom`` as fractions of the size;
    ``channel_shift`` in pixel values (0..255) added per channel."""

    rotation: float = 15.0
    width_shift: float = 0.1
    height_shift: float = 0.1
    shear: float = 0.0
    zoom: float = 0.15
    channel_shift: float = 20.0
    horizontal_flip: bool = True

    def __post_init__(self) -> None:
        for name in ("rotation", "width_shift", "height_shift", "shear", "zoom",
                     "channel_shift"):
            if float(getattr(self, name)) < 0:
                raise ConfigError(f"augmentation {name} must be >= 0, got {getattr(self, name)}")
        if self.zoom >= 1:
            raise ConfigError(f"augmentation zoom must be < 1 (a fraction), got {self.zoom}")

    @property
    def geometric(self) -> bool:
        return any((self.rotation, self.width_shift, self.height_shift, self.shear, self.zoom))

    @property
    def enabled(self) -> bool:
        return self.geometric or bool(self.channel_shift) or self.horizontal_flip

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(rotation=0, width_shift=0, height_shift=0, shear=0, zoom=0,
                   channel_shift=0, horizontal_flip=False)


def affine_matrix(cfg: AugmentConfig, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random 3x3 matrix mapping output pixel coordinates to input coordinates."""
    theta = math.radians(rng.uniform(-cfg.rotation, cfg.rotation))
    shear = math.radians(rng.uniform(-cfg.shear, cfg.shear))
    zoom = rng.uniform(1 - cfg.zoom, 1 + cfg.zoom)   # > 1 shows more (zoom out)
    tx = rng.uniform(-cfg.width_shift, cfg.width_shift) * w
    ty = rng.uniform(-cfg.height_shift, cfg.height_shift) * h
    flip = -1.0 if (cfg.horizontal_flip and rng.random() < 0.5) else 1.0
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    shr = np.array([[1, -math.sin(shear), 0], [0, math.cos(shear), 0], [0, 0, 1]])
    scl = np.diag([zoom * flip, zoom, 1.0])
    to_c = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    from_c = np.array([[1, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1]])
    return from_c @ rot @ shr @ scl @ to_c


def augment_image(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Augment one uint8 HxWx3 image (geometry and flip); returns uint8 HxWx3."""
    h, w = img.shape[:2]
    if cfg.geometric:
        m = affine_matrix(cfg, rng, h, w)
        pil = Image.fromarray(img)
        # the uncovered border takes the image's mean colour, estimated on every 4th pixel
        # of every 4th row (the full mean cost as much as the resampling itself)
        fill = tuple(int(v) for v in img[::4, ::4].reshape(-1, 3).mean(axis=0))
        out = pil.transform((w, h), Image.Transform.AFFINE, data=tuple(m[:2].ravel()),
                            resample=Image.Resampling.BILINEAR, fillcolor=fill)
        return np.asarray(out)
    if cfg.horizontal_flip and rng.random() < 0.5:
        return img[:, ::-1]
    return img


def image_rngs(key: Sequence[int], first: int, n: int) -> list[np.random.Generator]:
    """One random stream per image: image ``first + k`` of the batch keyed ``key``. An image's
    augmentation then depends only on the batch and its place in it, not on which images are
    augmented beside it (a process augmenting its slice of a global batch draws what one
    process augmenting the whole batch draws)."""
    return [np.random.default_rng([*key, first + k]) for k in range(n)]


def augment_batch(images: np.ndarray, cfg: AugmentConfig,
                  rng: np.random.Generator | Sequence[np.random.Generator],
                  out: np.ndarray | None = None) -> np.ndarray:
    """Augment a uint8 (B, H, W, 3) batch into float32 (values stay 0..255); ``rng`` is one
    stream for the batch or one per image (:func:`image_rngs`)."""
    if out is None:
        out = np.empty(images.shape, np.float32)
    per_image = not isinstance(rng, np.random.Generator)
    for i in range(len(images)):
        out[i] = augment_image(images[i], cfg, rng[i] if per_image else rng)
    if cfg.channel_shift:
        c = cfg.channel_shift
        shift = (np.stack([r.uniform(-c, c, (1, 1, 3)) for r in rng]) if per_image
                 else rng.uniform(-c, c, (len(images), 1, 1, 3)))
        out += shift.astype(np.float32)
        np.clip(out, 0, 255, out=out)
    return out
