"""``--strategy auto``: which path gives the best model in the time this machine allows.

On an accelerator: the head on images, then the whole backbone fine-tuned. On a CPU: the
convex head on cached features, then (when the measured costs fit ``--time-budget``) the
layers above a cut of the backbone fine-tuned on cached activations of several views of
each image (:mod:`.cut`); the deepest cut and the most views that fit are chosen. The
choice and its reason are printed and recorded in ``run.json`` (``strategy_choice``).
Pure functions of measured costs, so they are tested without timing anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

from .config import DEFAULT_FINE_TUNE_EPOCHS as FINE_TUNE_EPOCHS

#: Views cached per training image are chosen so that images x views is about this many
#: (at least 2: clean + mirrored/augmented, at most MAX_VIEWS).
VIEW_IMAGES = 8000
MIN_VIEWS, MAX_VIEWS = 2, 6
#: Phase-2 epochs of the cut fine-tune: each view seen about four times (twice left the top
#: still improving when its cosine schedule ended: time-to-model-2026-12-02T0836.md, 97.1% ->
#: 98.6% and 95.4% -> 95.6% test on two datasets, ~1 minute more each).
EPOCHS_PER_VIEW = 4
MIN_EPOCHS, MAX_EPOCHS = 8, 24
#: Where even the fewest views at ``MIN_EPOCHS`` do not fit (large datasets: each epoch is
#: many steps already), fewer epochs at the same cut are tried before a shallower cut.
SHORT_EPOCHS = (6, 4)
#: Share of the budget kept back for evaluation, checkpoints and estimation error.
SAFETY = 0.15


@dataclass
class CutCost:
    """Measured seconds per image at one cut: ``bottom`` (frozen part, caching engine),
    ``step`` (one training step of the top), ``forward`` (the top, inference)."""

    cut: str
    bottom: float
    step: float
    forward: float
    fixed: float = 0.0            # seconds once (e.g. converting this cut's bottom)


@dataclass
class Plan:
    strategy: str                 # what runs: linear-probe | cut-fine-tune | fine-tune
    reason: str
    requested: str = "auto"
    head: str = "convex"          # phase 1: convex | sgd (cached features) | images
    cut: str | None = None
    views: int = 0
    epochs: int = 0               # phase-2 epochs
    unfreeze: str | None = None   # fine-tune: layers unfrozen in phase 2
    estimate_seconds: float | None = None
    budget_seconds: float | None = None
    measured: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def cached(self) -> bool:
        return self.head != "images"


def views_for(n_train: int) -> int:
    return int(min(MAX_VIEWS, max(MIN_VIEWS, math.ceil(VIEW_IMAGES / max(n_train, 1)))))


def epochs_for(views: int) -> int:
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, EPOCHS_PER_VIEW * views)))


def candidates(n_train: int, fine_tune_epochs: int | None) -> list[tuple[int, int]]:
    """(views, epochs) to try at one cut, best first: the most views down to the fewest,
    each with its epochs; then the fewest views with shorter schedules."""
    out = [(v, fine_tune_epochs or epochs_for(v))
           for v in range(views_for(n_train), MIN_VIEWS - 1, -1)]
    if not fine_tune_epochs:
        out += [(MIN_VIEWS, e) for e in SHORT_EPOCHS if e < epochs_for(MIN_VIEWS)]
    return out


def cut_seconds(cost: CutCost, *, n_train: int, n_eval: int, n_val: int, views: int,
                epochs: int) -> float:
    """Caching (train views + val/test clean), pooling for the convex head, then training
    epochs with validation."""
    cache = (n_train * views + n_eval) * cost.bottom + (2 * n_train + n_eval) * cost.forward
    train = epochs * (n_train * cost.step + n_val * cost.forward)
    return cost.fixed + cache + train


def plan_fixed(strategy: str, *, head: str, fine_tune_epochs: int | None,
               unfreeze: str | None) -> Plan:
    """``linear-probe`` / ``fine-tune`` as requested (fine-tune runs its phase 2 unless
    ``fine_tune_epochs`` is 0)."""
    probe_head = "convex" if head == "linear" else "sgd"
    if strategy == "linear-probe":      # + --fine-tune-epochs N: then N epochs on images
        return Plan("linear-probe", "requested", requested=strategy, head=probe_head,
                    epochs=fine_tune_epochs or 0, unfreeze=unfreeze)
    epochs = FINE_TUNE_EPOCHS if fine_tune_epochs is None else fine_tune_epochs
    return Plan("fine-tune", "requested" + ("" if epochs else " (--fine-tune-epochs 0: "
                                            "one phase, no second fine-tuning phase)"),
                requested=strategy, head="images", epochs=epochs, unfreeze=unfreeze)


def plan_cut(cut: str | None, *, head: str, n_train: int,
              fine_tune_epochs: int | None) -> Plan:
    """``--strategy cut-fine-tune``: the auto CPU path at the deepest cut, unmeasured."""
    if cut is None:
        from edgeclf.errors import ConfigError

        raise ConfigError("--strategy cut-fine-tune needs a single backbone with a block "
                          "boundary to cut at; use auto, fine-tune or linear-probe")
    views = views_for(n_train)
    epochs = fine_tune_epochs or epochs_for(views)
    return Plan("cut-fine-tune", f"requested: the layers above {cut} fine-tuned on {views} "
                f"cached views for {epochs} epochs", requested="cut-fine-tune",
                head="convex" if head == "linear" else "sgd", cut=cut, views=views,
                epochs=epochs)


def plan_auto(*, head: str, pretrained: bool, accelerator: bool, single_backbone: bool,
              fine_tune_epochs: int | None, n_train: int, n_val: int, n_test: int,
              budget: float, elapsed: float,
              costs: Callable[[int], CutCost | None]) -> Plan:
    """The auto choice. ``costs(k)`` measures candidate cut ``k`` (deepest fine-tune first;
    None when there is no such cut)."""
    probe_head = "convex" if head == "linear" else "sgd"
    if not pretrained:
        return Plan("fine-tune", "no pretrained weights (--weights none): the whole network "
                    "trains on images", head="images", epochs=0)
    if accelerator:
        return Plan("fine-tune", "an accelerator is present: the head on images, then the "
                    "whole backbone fine-tuned", head="images",
                    epochs=FINE_TUNE_EPOCHS if fine_tune_epochs is None else fine_tune_epochs,
                    unfreeze="all")
    probe = Plan("linear-probe", "", head=probe_head, budget_seconds=budget)
    if fine_tune_epochs == 0:
        probe.reason = "CPU, --fine-tune-epochs 0: the head on cached features"
        return probe
    if not single_backbone:
        probe.reason = "CPU, an ensemble: the head on cached features (no cut fine-tuning)"
        return probe
    left = budget * (1 - SAFETY) - elapsed
    cheapest: float | None = None
    measured: dict = {}
    k = 0
    while (cost := costs(k)) is not None:
        measured[cost.cut] = {"bottom": cost.bottom, "step": cost.step,
                              "forward": cost.forward}
        for views, epochs in candidates(n_train, fine_tune_epochs):
            need = cut_seconds(cost, n_train=n_train, n_eval=n_val + n_test, n_val=n_val,
                               views=views, epochs=epochs)
            cheapest = need if cheapest is None else min(cheapest, need)
            if need <= left:
                return Plan("cut-fine-tune",
                            f"CPU: the layers above {cost.cut} fine-tuned on {views} cached "
                            f"views of each training image for {epochs} epochs, estimated "
                            f"{need:.0f}s, within the {budget:.0f}s budget "
                            f"({elapsed:.0f}s already spent)", head=probe_head,
                            cut=cost.cut, views=views, epochs=epochs,
                            estimate_seconds=round(need, 1), budget_seconds=budget,
                            measured=measured)
        k += 1
    probe.measured = measured
    if cheapest is None:
        probe.reason = "CPU, no block boundary to cut the backbone at: the head on cached features"
    else:
        probe.reason = (f"CPU: the time budget ({budget:.0f}s, {elapsed:.0f}s already spent) "
                        f"is too small for any fine-tuning (the cheapest needs ~"
                        f"{cheapest:.0f}s more); falling back to the head on cached features")
    return probe
