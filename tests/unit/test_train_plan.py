"""--strategy auto's choice, from measured costs (no timing here): the path, the cut, the
views, the fallback to the probe when the budget is too small, and the recorded reason."""

from __future__ import annotations

import pytest

from edgeclf.train.plan import (SHORT_EPOCHS, CutCost, Plan, candidates, cut_seconds, epochs_for,
                                plan_auto, plan_cut, plan_fixed, views_for)
from edgeclf.errors import ConfigError

CUTS = [CutCost("deep", bottom=0.010, step=0.004, forward=0.001),
        CutCost("shallow", bottom=0.012, step=0.001, forward=0.0003, fixed=5.0)]


def _auto(budget, *, n_train=1000, accelerator=False, pretrained=True, single=True,
          fine_tune_epochs=None, elapsed=10.0, costs=CUTS):
    return plan_auto(head="linear", pretrained=pretrained, accelerator=accelerator,
                     single_backbone=single, fine_tune_epochs=fine_tune_epochs,
                     n_train=n_train, n_val=300, n_test=150, budget=budget, elapsed=elapsed,
                     costs=lambda k: costs[k] if k < len(costs) else None)


def test_a_generous_budget_fine_tunes_above_the_deepest_cut_with_the_most_views():
    plan = _auto(3600)
    assert plan.strategy == "cut-fine-tune" and plan.cut == "deep" and plan.head == "convex"
    assert plan.views == views_for(1000) and plan.epochs == epochs_for(plan.views)
    need = cut_seconds(CUTS[0], n_train=1000, n_eval=450, n_val=300, views=plan.views,
                       epochs=plan.epochs)
    assert plan.estimate_seconds == pytest.approx(need, abs=0.1)
    assert "deep" in plan.reason and "3600s budget" in plan.reason
    assert set(plan.measured) == {"deep"}


def test_a_tighter_budget_takes_fewer_views_then_a_shallower_cut():
    full = cut_seconds(CUTS[0], n_train=1000, n_eval=450, n_val=300, views=views_for(1000),
                       epochs=epochs_for(views_for(1000)))
    fewer = _auto((full - 1 + 10) / 0.85)
    assert fewer.cut == "deep" and fewer.views < views_for(1000)
    fewest = cut_seconds(CUTS[0], n_train=1000, n_eval=450, n_val=300, views=2,
                         epochs=epochs_for(2))
    short = _auto((fewest - 1 + 10) / 0.85)       # fewer epochs at the deep cut first
    assert short.cut == "deep" and short.views == 2 and short.epochs == SHORT_EPOCHS[0]
    cheap_deep = cut_seconds(CUTS[0], n_train=1000, n_eval=450, n_val=300, views=2,
                             epochs=SHORT_EPOCHS[-1])
    shallow = _auto((cheap_deep - 1 + 10) / 0.85)
    assert shallow.strategy == "cut-fine-tune" and shallow.cut == "shallow"


def test_candidates_go_from_most_views_to_shorter_schedules():
    assert candidates(1000, None) == [(6, 24), (5, 20), (4, 16), (3, 12), (2, 8), (2, 6),
                                      (2, 4)]
    assert candidates(100_000, 3) == [(2, 3)]        # --fine-tune-epochs: as given


def test_too_small_a_budget_falls_back_to_the_probe_and_says_so():
    plan = _auto(20)
    assert plan.strategy == "linear-probe" and plan.cut is None
    assert "too small for any fine-tuning" in plan.reason and "falling back" in plan.reason
    assert set(plan.measured) == {"deep", "shallow"}


def test_views_follow_the_data_size():
    assert views_for(100) == 6 and views_for(100_000) == 2
    assert views_for(2000) == 4 and epochs_for(4) == 16
    assert epochs_for(2) == 8 and epochs_for(6) == 24       # each view seen about 4 times


@pytest.mark.parametrize("kwargs,strategy,epochs", [
    ({"accelerator": True}, "fine-tune", 5), ({"pretrained": False}, "fine-tune", 0),
    ({"single": False}, "linear-probe", 0), ({"fine_tune_epochs": 0}, "linear-probe", 0)])
def test_other_machines_and_models(kwargs, strategy, epochs):
    plan = _auto(3600, **kwargs)
    assert plan.strategy == strategy and plan.epochs == epochs and plan.reason
    if kwargs.get("accelerator"):
        assert plan.unfreeze == "all" and plan.head == "images"


def test_fixed_strategies_mean_what_they_say():
    assert plan_fixed("fine-tune", head="linear", fine_tune_epochs=None,
                      unfreeze=None).epochs == 5
    assert plan_fixed("fine-tune", head="linear", fine_tune_epochs=0, unfreeze=None).epochs == 0
    probe = plan_fixed("linear-probe", head="mlp", fine_tune_epochs=None, unfreeze=None)
    assert probe.head == "sgd" and probe.cached
    assert plan_cut("c", head="linear", n_train=50, fine_tune_epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="cut"):
        plan_cut(None, head="linear", n_train=50, fine_tune_epochs=None)


def test_the_plan_round_trips_through_run_json():
    plan = _auto(3600)
    assert Plan.from_dict({**plan.to_dict(), "unknown": 1}) == plan
