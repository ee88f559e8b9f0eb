"""Registry of pretrained Keras backbones: size, normalisation and official weight files.

Every model edgeclf builds takes uint8-valued RGB (0..255) as float32; each backbone's own
normalisation is added in front of it as built-in Keras layers (no ``Lambda``), so a
checkpoint loads with ``safe_mode=True`` and exports to ONNX/TFLite unchanged:

- ``"tf"``: ``x / 127.5 - 1`` (MobileNetV2, InceptionV3, Xception) -> ``Rescaling``;
- ``"caffe"``: RGB->BGR then minus the ImageNet BGR mean (ResNet50, VGG) -> one frozen 1x1
  ``Conv2D`` whose kernel permutes the channels and whose bias subtracts the mean;
- ``"none"``: the Keras application already rescales inside (EfficientNet, MobileNetV3).

Keras is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from edgeclf.errors import ConfigError

log = logging.getLogger(__name__)

#: ImageNet channel means in BGR order, as ``keras.applications.imagenet_utils`` (caffe mode).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
NORMALISATIONS = ("tf", "caffe", "none")
#: Members of ``ensemble`` when none are given (the Simpsons tutorial's ensemble).
DEFAULT_ENSEMBLE = ("inceptionv3", "xception", "resnet50")


@dataclass(frozen=True, kw_only=True)
class Backbone:
    """One registry entry. ``params`` is the parameter count of the no-top backbone
    (``include_top=False``), measured with Keras 3.15 (see ``tests/unit/test_backbones.py``)."""

    name: str
    family: str                       # the keras.applications constructor name
    default_size: int
    min_size: int
    normalisation: str
    params: int
    top_file: str = ""                # official with-top ImageNet weight file name
    notop_file: str = ""              # official no-top file name
    kwargs: dict = field(default_factory=dict)
    description: str = ""

    @property
    def weight_files(self) -> tuple[str, str]:
        return self.notop_file, self.top_file

    def constructor(self) -> Any:
        import keras

        return getattr(keras.applications, self.family)

    def build(self, size: int, *, include_top: bool = False, name: str | None = None) -> Any:
        """The Keras application with random weights (``weights=None``)."""
        check_image_size(self, size)
        kwargs = dict(self.kwargs)
        if include_top:
            kwargs.update(include_top=True, weights=None, classes=1000,
                          input_shape=(self.default_size, self.default_size, 3))
        else:
            kwargs.update(include_top=False, weights=None, input_shape=(size, size, 3),
                          pooling=None)
        if name:
            kwargs["name"] = name
        return self.constructor()(**kwargs)


def _mnv2(alpha: float, params: int) -> Backbone:
    a = str(float(alpha))                          # Keras spells 1.0, 0.35, 0.5, 0.75
    stem = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{a}_224"
    name = "mobilenetv2" if alpha == 1.0 else f"mobilenetv2_{a}"
    return Backbone(name=name, family="MobileNetV2", default_size=224, min_size=32,
                    normalisation="tf", params=params, top_file=f"{stem}.h5",
                    notop_file=f"{stem}_no_top.h5", kwargs={"alpha": alpha},
                    description=f"MobileNetV2 alpha {a}")


def _mnv3(kind: str, params: int) -> Backbone:
    stem = f"weights_mobilenet_v3_{kind}_224_1.0_float"
    return Backbone(name=f"mobilenetv3{kind}", family=f"MobileNetV3{kind.title()}",
                    default_size=224, min_size=32, normalisation="none", params=params,
                    top_file=f"{stem}.h5", notop_file=f"{stem}_no_top_v2.h5",
                    kwargs={"include_preprocessing": True},
                    description=f"MobileNetV3 {kind} (rescales inside)")


def _effnet(b: int, size: int, params: int) -> Backbone:
    return Backbone(name=f"efficientnetb{b}", family=f"EfficientNetB{b}", default_size=size,
                    min_size=32, normalisation="none", params=params,
                    top_file=f"efficientnetb{b}.h5", notop_file=f"efficientnetb{b}_notop.h5",
                    description=f"EfficientNet B{b} (rescales inside)")


def _classic(name: str, family: str, size: int, min_size: int, norm: str, stem: str,
             params: int, description: str) -> Backbone:
    return Backbone(name=name, family=family, default_size=size, min_size=min_size,
                    normalisation=norm, params=params, top_file=f"{stem}.h5",
                    notop_file=f"{stem}_notop.h5", description=description)


_ENTRIES = [
    _mnv2(0.35, 410_208), _mnv2(0.5, 706_224), _mnv2(0.75, 1_382_064),
    _mnv2(1.0, 2_257_984),
    _mnv3("small", 939_120), _mnv3("large", 2_996_352),
    _effnet(0, 224, 4_049_571), _effnet(1, 240, 6_575_239), _effnet(2, 260, 7_768_569),
    _effnet(3, 300, 10_783_535),
    _classic("resnet50", "ResNet50", 224, 32, "caffe",
             "resnet50_weights_tf_dim_ordering_tf_kernels", 23_587_712,
             "ResNet50 (caffe BGR normalisation)"),
    _classic("vgg16", "VGG16", 224, 32, "caffe", "vgg16_weights_tf_dim_ordering_tf_kernels",
             14_714_688, "VGG16 (the Caltech101 tutorial)"),
    _classic("vgg19", "VGG19", 224, 32, "caffe", "vgg19_weights_tf_dim_ordering_tf_kernels",
             20_024_384, "VGG19"),
    _classic("inceptionv3", "InceptionV3", 299, 75, "tf",
             "inception_v3_weights_tf_dim_ordering_tf_kernels", 21_802_784,
             "InceptionV3"),
    _classic("xception", "Xception", 299, 71, "tf",
             "xception_weights_tf_dim_ordering_tf_kernels", 20_861_480,
             "Xception"),
]
#: name -> Backbone. ``ensemble`` is a composite (see :func:`ensemble_members`).
BACKBONES: dict[str, Backbone] = {b.name: b for b in _ENTRIES}
BACKBONES["ensemble"] = Backbone(
    name="ensemble", family="", default_size=299, min_size=75, normalisation="none",
    params=sum(BACKBONES[m].params for m in DEFAULT_ENSEMBLE),
    description="pooled features of " + " + ".join(DEFAULT_ENSEMBLE) + " concatenated")
_ALIASES = {"mobilenetv2_1.0": "mobilenetv2", "mobilenetv2_1": "mobilenetv2",
            "mobilenet_v2": "mobilenetv2", "efficientnet": "efficientnetb0"}


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name`` (case-insensitive); :class:`ConfigError` otherwise."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: "
                          f"{', '.join(BACKBONES)} (see `edgeclf backbones`)")
    return BACKBONES[key]


def ensemble_members(members: tuple[str, ...] | list[str] | None) -> list[Backbone]:
    names = list(members or DEFAULT_ENSEMBLE)
    specs = [get_backbone(n) for n in names]
    if len(specs) < 2 or any(s.name == "ensemble" for s in specs):
        raise ConfigError(f"an ensemble needs at least two plain backbones; got {names}")
    if len({s.name for s in specs}) != len(specs):
        raise ConfigError(f"ensemble members must differ; got {names}")
    return specs


def check_image_size(spec: Backbone, size: int) -> None:
    if int(size) < spec.min_size:
        raise ConfigError(f"image size {size} is too small for {spec.name}: it needs at "
                          f"least {spec.min_size} px (default {spec.default_size})")


def normalisation_layers(spec: Backbone, prefix: str) -> list[Any]:
    """Built-in Keras layers mapping 0..255 RGB to what ``spec`` expects."""
    import keras
    import numpy as np

    if spec.normalisation == "tf":
        return [keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{prefix}_rescale")]
    if spec.normalisation == "caffe":
        kernel = np.zeros((1, 1, 3, 3), np.float32)
        for out_ch, in_ch in enumerate((2, 1, 0)):     # BGR output from RGB input
            kernel[0, 0, in_ch, out_ch] = 1.0
        bias = -np.array(CAFFE_MEAN_BGR, np.float32)
        conv = keras.layers.Conv2D(3, 1, name=f"{prefix}_rgb2bgr_mean", trainable=False,
                                   kernel_initializer=keras.initializers.Constant(kernel),
                                   bias_initializer=keras.initializers.Constant(bias))
        return [conv]
    return []


def describe(spec: Backbone) -> dict:
    """A row for ``edgeclf backbones``."""
    return {"name": spec.name, "default_size": spec.default_size, "min_size": spec.min_size,
            "params": spec.params, "megabytes": round(spec.params * 4 / 1e6, 1),
            "normalisation": spec.normalisation, "weights": spec.notop_file or "per member",
            "description": spec.description}
