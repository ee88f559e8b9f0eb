"""The preprocessing contract: how an image file becomes the model's input.

One small frozen dataclass, serialised to JSON and embedded in every artifact. Training,
evaluation, calibration, parity and the predictor all call :func:`edgeclf.runtime.preprocess`
with the contract of the model at hand, so the pixels a deployed model sees are the pixels
it was trained on.

The model input is always uint8-valued RGB in NHWC layout (values 0..255, fed as float32 to
float models); each backbone's normalisation lives inside the model graph.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

RESIZE_MODES = ("crop", "squash")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
CONTRACT_VERSION = 1
METADATA_KEY = "edgeclf.preprocessing"


@dataclass(frozen=True, kw_only=True)
class Contract:
    """How to turn an image into model input.

    ``size`` is (height, width). ``resize="crop"`` scales the shorter side to fit and
    centre-crops; ``"squash"`` resizes to the exact size, ignoring the aspect ratio.
    """

    size: tuple[int, int]
    resize: str = "crop"
    interpolation: str = "bilinear"
    color: str = "RGB"
    dtype: str = "uint8"
    layout: str = "NHWC"
    value_range: tuple[int, int] = (0, 255)
    version: int = field(default=CONTRACT_VERSION)

    def __post_init__(self) -> None:
        size = tuple(int(s) for s in self.size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"contract size must be (height, width) > 0, got {self.size!r}")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "value_range", tuple(int(v) for v in self.value_range))
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if (self.color, self.dtype, self.layout) != ("RGB", "uint8", "NHWC"):
            raise ValueError("edgeclf models take uint8 RGB NHWC input; got "
                             f"{self.color}/{self.dtype}/{self.layout}")
        if self.version > CONTRACT_VERSION:
            raise ValueError(f"contract version {self.version} is newer than this edgeclf "
                             f"understands ({CONTRACT_VERSION}); upgrade edgeclf")

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["value_range"] = list(self.value_range)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Contract":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "size" not in known:
            raise ValueError(f"preprocessing contract without 'size': {d!r}")
        return cls(**known)

    @classmethod
    def from_json(cls, text: str) -> "Contract":
        return cls.from_dict(json.loads(text))

    def key(self) -> str:
        """A short stable string naming the contract (used in cache keys)."""
        h, w = self.size
        return f"v{self.version}-{h}x{w}-{self.resize}-{self.interpolation}"
