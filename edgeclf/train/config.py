"""``TrainConfig``: every option of ``edgeclf train``, frozen and keyword-only.

``None`` means "the backbone's / strategy's default"; :meth:`TrainConfig.resolve` fills them
in, and the resolved config is what ``run.json`` records, so ``edgeclf train --config
models/<name>/run.json`` reproduces a run. Files may be TOML, YAML or a ``run.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edgeclf.backbones import Backbone, ensemble_members, get_backbone
from edgeclf.data.augment import AugmentConfig
from edgeclf.data.budget import parse_size
from edgeclf.errors import ConfigError

from .cluster import ProcessGroup, process_group

STRATEGIES = ("auto", "fine-tune", "linear-probe", "cut-fine-tune")
HEADS = ("linear", "mlp")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adadelta", "adagrad")
SCHEDULES = ("cosine", "constant")
BACKENDS = ("tensorflow", "jax")
PRECISIONS = ("bfloat16", "float16")
CLASS_WEIGHTS = ("auto", "none", "balanced")
#: ``class_weights auto``: balanced when the largest training class is this many times the
#: smallest (said in the output), none otherwise.
IMBALANCE_RATIO = 2.0
#: Phase-2 epochs of ``--strategy fine-tune`` when not given (auto: chosen by its plan).
DEFAULT_FINE_TUNE_EPOCHS = 5
#: ``--time-budget`` default: what a user waits for on a laptop.
DEFAULT_TIME_BUDGET = 600.0
#: Fraction of the backbone's layers unfrozen in phase 2 when ``unfreeze`` is not given.
DEFAULT_UNFREEZE_FRACTION = 0.5
#: Keys that are not part of a run's identity (never saved as the run's config).
_TRANSIENT = ("resume", "overwrite", "num_processes", "process_id", "coordinator")
#: Strategies that run in one process (their features are cached by that process).
SINGLE_PROCESS_STRATEGIES = ("linear-probe", "cut-fine-tune")

_AUG = AugmentConfig()


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    data_dir: str | None = None
    out: str = "models"
    name: str | None = None
    backbone: str = "mobilenetv2"
    ensemble: tuple[str, ...] | None = None
    weights: str = "imagenet"
    image_size: int | None = None
    resize: str = "crop"
    interpolation: str = "bilinear"
    strategy: str = "auto"
    head: str = "linear"
    dropout: float | None = None
    epochs: int | None = None
    fine_tune_epochs: int | None = None
    unfreeze: str | None = None
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float | None = None
    fine_tune_lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float | None = None
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    class_weights: str = "auto"
    augment: bool = True
    rotation: float = _AUG.rotation                  # defaults: edgeclf.data.augment
    width_shift: float = _AUG.width_shift
    height_shift: float = _AUG.height_shift
    shear: float = _AUG.shear
    zoom: float = _AUG.zoom
    channel_shift: float = _AUG.channel_shift
    horizontal_flip: bool = _AUG.horizontal_flip
    patience: int = 5
    split: str = "70,20,10"
    seed: int = 0
    backend: str | None = None
    mixed_precision: str | None = None
    workers: int | None = None
    cache_budget: str | None = None      # "20G", "0" (stream); None: $EDGECLF_CACHE_BUDGET
    steps_per_epoch: int | None = None
    time_budget: float | None = None
    resume: bool = False
    overwrite: bool = False
    num_processes: int | None = None     # None: $JAX_NUM_PROCESSES or 1 (edgeclf.train.cluster)
    process_id: int | None = None        # None: $JAX_PROCESS_ID or 0
    coordinator: str | None = None       # HOST:PORT; None: $JAX_COORDINATOR_ADDRESS

    def __post_init__(self) -> None:
        if self.ensemble is not None:
            object.__setattr__(self, "ensemble", tuple(self.ensemble))
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("head", self.head, HEADS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        if self.backend is not None:
            _check_choice("backend", self.backend, BACKENDS)
        if self.mixed_precision is not None:
            _check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        for name in ("batch_size",):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "fine_tune_epochs", "patience", "steps_per_epoch"):
            v = getattr(self, name)
            if v is not None and int(v) < 0:
                raise ConfigError(f"{name} must be >= 0, got {v}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.unfreeze is not None:
            object.__setattr__(self, "unfreeze", str(self.unfreeze).lower())
            if self.unfreeze != "all" and not self.unfreeze.isdigit():
                raise ConfigError(f"--unfreeze must be a number of layers or 'all', got "
                                  f"{self.unfreeze!r}")
        if self.time_budget is not None:
            object.__setattr__(self, "time_budget", parse_duration(self.time_budget))
        self.augmentation()  # validates the ranges
        if self.cache_budget is not None:
            parse_size(str(self.cache_budget))
        self.process_group()       # validates --num-processes, --process-id, --coordinator

    def process_group(self) -> ProcessGroup:
        return process_group(self.num_processes, self.process_id, self.coordinator)

    # ----------------------------------------------------------------- derived values
    @property
    def spec(self) -> Backbone:
        return get_backbone(self.backbone)

    def members(self) -> list[Backbone]:
        return ensemble_members(self.ensemble) if self.spec.name == "ensemble" else [self.spec]

    def augmentation(self) -> AugmentConfig:
        if not self.augment:
            return AugmentConfig.off()
        return AugmentConfig(rotation=self.rotation, width_shift=self.width_shift,
                             height_shift=self.height_shift, shear=self.shear, zoom=self.zoom,
                             channel_shift=self.channel_shift,
                             horizontal_flip=self.horizontal_flip)

    def resolve(self) -> "TrainConfig":
        """Fill every ``None`` with the backbone's or the strategy's default."""
        spec = self.spec
        group = self.process_group()
        strategy = self.strategy
        if group.multi:
            if strategy in SINGLE_PROCESS_STRATEGIES:
                raise ConfigError(f"--strategy {strategy} runs in one process; use "
                                  "--strategy fine-tune (auto's choice across processes) with "
                                  f"--num-processes {group.num_processes}")
            strategy = "fine-tune"
        probe = strategy != "fine-tune"      # auto on a CPU starts with the probe
        size = self.image_size or (spec.default_size if spec.name != "ensemble" else
                                   max(m.default_size for m in self.members()))
        lr = self.lr or {"sgd": 1e-2, "adadelta": 1.0, "adagrad": 1e-2}.get(self.optimizer,
                                                                           1e-3)
        return dataclasses.replace(
            self, backbone=spec.name, image_size=int(size),
            ensemble=tuple(m.name for m in self.members()) if spec.name == "ensemble" else None,
            dropout=self.dropout if self.dropout is not None else (0.5 if self.head == "mlp"
                                                                   else 0.2),
            epochs=self.epochs if self.epochs is not None else (100 if probe else 10),
            fine_tune_epochs=self.fine_tune_epochs if self.fine_tune_epochs is not None else
            {"linear-probe": 0, "fine-tune": DEFAULT_FINE_TUNE_EPOCHS}.get(strategy),
            time_budget=self.time_budget or DEFAULT_TIME_BUDGET,
            lr=lr, fine_tune_lr=self.fine_tune_lr or lr / 10,
            weight_decay=self.weight_decay if self.weight_decay is not None else 1e-4,
            backend=_backend(self.backend, group), strategy=strategy,
            name=self.name or _default_name(spec.name, self.data_dir))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in _TRANSIENT:
            d.pop(k, None)
        if d["ensemble"] is not None:
            d["ensemble"] = list(d["ensemble"])
        return d

    @classmethod
    def from_dict(cls, d: dict, **overrides: Any) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}; known keys: "
                              f"{', '.join(sorted(known))}")
        merged = {**d, **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return cls(**merged)
        except TypeError as e:
            raise ConfigError(f"bad config: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Read a TOML/YAML file, or a run's ``run.json`` (its ``config`` key); keyword
        ``overrides`` (CLI flags; ``None`` = not given) take precedence."""
        return cls.from_dict(read_config_file(path), **overrides)


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"reading {path} needs PyYAML: pip install pyyaml "
                                  "(or use a .toml config)") from None
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path}: use .toml, .yaml/.yml or a run.json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as e:
        raise ConfigError(f"cannot parse config file {path}: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]                         # a run.json
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = data["train"]                          # a [train] table
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of options")
    return {k.replace("-", "_"): v for k, v in data.items()}


def parse_duration(value: Any) -> float:
    """Seconds from ``600``, ``"600"``, ``"90s"``, ``"10m"`` or ``"1.5h"`` (> 0)."""
    text = str(value).strip().lower()
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None) if text else None
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        raise ConfigError(f"time budget must be seconds or a duration like 90s, 10m, 1h; "
                          f"got {value!r}") from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"time budget must be positive, got {value!r}")
    return seconds


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _env_backend(default: str = "tensorflow") -> str:
    env = os.environ.get("KERAS_BACKEND", default)
    return env if env in BACKENDS else default


def _backend(requested: str | None, group: ProcessGroup) -> str:
    """The requested backend, else $KERAS_BACKEND, else tensorflow (jax across processes:
    the only engine that trains across them)."""
    backend = requested or _env_backend("jax" if group.multi else "tensorflow")
    if group.multi and backend != "jax":
        raise ConfigError(f"--num-processes {group.num_processes} trains with Keras's "
                          f"distribution API on JAX; --backend {backend} cannot (use "
                          "--backend jax)")
    return backend


def _default_name(backbone: str, data_dir: str | None) -> str:
    stem = Path(str(data_dir)).name if data_dir else "run"
    return f"{stem}-{backbone}"
