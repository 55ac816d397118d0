"""The map's refinement waves: which lr values the rule adds (geometric bisection per column
and seed, stepping out of censored columns within the limits), that the waves end, that
the procedure covers a planted slope, and that a refined study's new points are recorded
and resumed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.load import Block
from analysis.record import BoundarySpec
from study import boundary_sim, refine

SPEC = BoundarySpec(tolerance=1.25, expand=3.0, limits=(1e-5, 0.3))
AUGMENT = {"white_noise_std": 1.0, "constant_offset_std": 0.2}
BLOCK = Block(axes=("eps", "lr_max"), fixed=AUGMENT)
LR = (1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2, 3e-2)


def design(eps=(1e-8, 0.1), lrs=LR) -> list[dict]:
    """The block's grid, then a point of another block that must be left alone."""
    points = [{"eps": e, "lr_max": lr, **AUGMENT} for e in eps for lr in lrs]
    return [*points, {"eps": 0.1, "lr_max": 5e-3, "white_noise_std": 0.25,
                      "constant_offset_std": 0.05}]


def runs_of(points, boundary_lr, seeds=(0, 1)) -> pd.DataFrame:
    return pd.DataFrame([{**p, "seed": s, "status": "finished",
                          "outcome": "slow" if p["lr_max"] < boundary_lr(p["eps"], s)
                          else "stable"} for p in points for s in seeds])


@pytest.mark.parametrize(("low", "high", "tried", "expected"), [
    (1e-3, 2e-3, [1e-3, 2e-3], (1.41e-3, "")),  # sqrt(2) e-3, 3 significant digits
    (3e-4, 1e-3, [3e-4, 1e-3], (5.48e-4, "")),
    (1e-3, 1.25e-3, [1e-3, 1.25e-3], (None, "resolved")),  # exactly at the tolerance
    (0.0, 1e-4, [1e-4, 3e-4], (3.33e-5, "")),  # every value fine: step down by 3
    (0.0, 2e-5, [2e-5], (1e-5, "")),  # ... but not past the lower limit
    (0.0, 1e-5, [1e-5], (None, "censored at the lower limit")),
    (3e-2, math.inf, [1e-2, 3e-2], (9e-2, "")),  # every value failed: step up by 3
    (0.2, math.inf, [0.2], (0.3, "")),
    (0.3, math.inf, [0.3], (None, "censored at the upper limit")),
])
def test_next_value_bisects_in_log_and_steps_out_of_censored_brackets(low, high, tried,
                                                                      expected):
    assert refine.next_value(low, high, tried, SPEC) == expected


def test_without_limits_a_censored_bracket_stays_censored():
    spec = BoundarySpec()
    assert refine.next_value(3e-2, math.inf, [3e-2], spec) == (
        None, "censored; the preset sets no limits to step out to")


def test_next_wave_adds_each_seeds_midpoint_as_a_new_point_of_the_block():
    points = design()
    # Seed 1's boundary at eps 0.1 is above 5e-3, seed 0's between 2e-3 and 5e-3; both
    # seeds' boundaries at 1e-8 lie between 3e-4 and 1e-3.
    runs = runs_of(points[:-1], lambda e, s: 5e-4 if e < 1e-3 else (3e-3 if s == 0 else 7e-3))
    plan, new_points = refine.next_wave(SPEC, runs, BLOCK, points, set(), capacity=10)
    assert new_points[:len(points)] == points
    added = new_points[len(points):]
    assert added == [{"eps": 1e-8, "lr_max": 5.48e-4, **AUGMENT},  # widest first: 3.33x
                     {"eps": 0.1, "lr_max": 3.16e-3, **AUGMENT},  # sqrt(2e-3 x 5e-3)
                     {"eps": 0.1, "lr_max": 7.07e-3, **AUGMENT}]  # sqrt(5e-3 x 1e-2)
    first = len(points)
    assert plan.trials == [(first, 0), (first + 1, 0), (first, 1), (first + 2, 1)]
    assert plan.reason == "boundary refinement: 4 (column, seed) bracket(s) wider than a " \
                          "factor 1.25"


def test_a_small_wave_takes_the_widest_brackets_and_a_spent_budget_stops():
    points = design()
    runs = runs_of(points[:-1], lambda e, s: 5e-4 if e < 1e-3 else 3e-3)
    plan, new_points = refine.next_wave(SPEC, runs, BLOCK, points, set(), capacity=2)
    assert [new_points[c]["eps"] for c, _ in plan.trials] == [1e-8, 1e-8]
    assert len(new_points) == len(points) + 1  # the untaken midpoint is not recorded
    assert plan.reason.endswith("2 left for later waves")
    plan, same = refine.next_wave(SPEC, runs, BLOCK, points, set(), capacity=0)
    assert plan.trials == [] and same == points
    assert plan.reason == "the budget is spent (4 bracket(s) still wider than a factor 1.25)"


def test_a_trial_already_run_is_not_repeated_and_the_waves_end():
    points = design(eps=(0.1,), lrs=(2e-3, 5e-3))
    midpoint = {"eps": 0.1, "lr_max": 3.16e-3, **AUGMENT}
    points = [*points, midpoint]
    # The midpoint errored for seed 0: no bracket changed, and it is not run again.
    runs = runs_of(points[:2], lambda e, s: 3e-3, seeds=(0,))
    plan, _ = refine.next_wave(SPEC, runs, BLOCK, points, {(len(points) - 1, 0)}, 5)
    assert plan.trials == []
    assert plan.reason == ("nothing left to refine; not refinable: eps 0.1 seed 0: lr_max "
                           "0.00316 was already run")


def test_every_bracket_within_the_tolerance_ends_the_refinement():
    points = design(eps=(0.1,), lrs=(2e-3, 2.4e-3))
    runs = runs_of(points[:2], lambda e, s: 2.2e-3)
    plan, _ = refine.next_wave(SPEC, runs, BLOCK, points, set(), 10)
    assert plan.trials == []
    assert plan.reason == "every eps column's boundary is bracketed within a factor 1.25"


def test_refinement_converges_on_a_planted_boundary_in_the_predicted_waves():
    # No noise: after the design, every bracket of a grid step of 2 to 3.33 needs 2 or 3
    # bisections to get within 1.25 (log2(log r / log 1.25) rounded up).
    scenario = boundary_sim.Scenario("exact", boundary_sim.planted(1.0),
                                     {"large_eps": 1.0, "small_eps": 0.0}, shift=False,
                                     max_trials=10_000, wave_trials=100)
    study = boundary_sim.simulate(scenario, np.random.default_rng(0))
    table = study.result.brackets
    assert (table["ratio"] <= 1.25).all() and table["monotone"].all()
    for _, row in table.iterrows():
        assert row["low"] < scenario.boundary_lr(row["eps"]) <= row["high"]
    assert study.waves == 1 + 3
    assert study.stopped == "every eps column's boundary is bracketed within a factor 1.25"
    row = study.result.table.set_index("regime").loc["large_eps"]
    assert row["separated"] == "yes" and row["verdict"] == "supported"


def test_a_small_simulation_covers_the_planted_slopes():
    # benchmarks/sim_boundary.py runs 400 studies per scenario; here a fixed-seed few.
    results = boundary_sim.coverage(boundary_sim.SCENARIOS["moderate_noise"], 30, seed=5)
    by_regime = results.groupby("regime")["covered"].mean()
    assert (by_regime >= 0.85).all(), by_regime
    assert results["trials"].max() <= boundary_sim.Scenario("x", None, {}).max_trials
    assert set(results["verdict"]) == {"supported"}
    separated = boundary_sim.coverage(boundary_sim.SCENARIOS["separated_grid_32_seeds"], 1)
    large = separated.set_index("regime").loc["large_eps"]
    assert large["covered"] and large["separated"] and large["truth"] == 0.95


def test_a_refined_studys_record_keeps_its_new_points(tmp_path):
    from analysis.record import (AdaptiveRecord, StudyRecord, WaveRecord, WaveTrial,
                                 read_record)
    from study.runner import wave_space

    points = design(eps=(0.1,), lrs=(2e-3, 5e-3))
    runs = runs_of(points[:2], lambda e, s: 3e-3, seeds=(0,))
    plan, points = refine.next_wave(SPEC, runs, BLOCK, points, set(), 4)
    record = StudyRecord(
        name="m", preset="map", kind="confirmatory", search="grid", scheduler="fifo",
        metric="val_per", mode="min", axes={"eps": {"key": "optim.eps", "values": [0.1]},
                                            "lr_max": {"key": "optim.lr_max",
                                                       "values": [2e-3, 5e-3]}},
        blocks=[{"axes": ["eps", "lr_max"], "fixed": AUGMENT}], points=points, seeds=[0],
        n_trials=2, budget="default", budget_steps=8, eval_every=2,
        adaptive=AdaptiveRecord(max_trials=4, waves=[
            WaveRecord(index=1, folder="wave-01", reason="design", minutes=1.0,
                       trials=[WaveTrial(cell=0, seed=0), WaveTrial(cell=1, seed=0)]),
            WaveRecord(index=2, folder="wave-02", reason=plan.reason,
                       trials=[WaveTrial(cell=c, seed=s) for c, s in plan.trials])]),
        boundary=SPEC, train_config_file="x", train_config={},
        data={"path": "x", "synthetic": True, "fingerprint": "f", "n_sessions": 1,
              "n_train_trials": 1, "n_val_trials": 1},
        resources={"cpus_per_trial": 1}, versions={}, cli="", started="", preset_config={})
    record.write(tmp_path)
    back = read_record(tmp_path)
    assert back.points == points and back.boundary == SPEC
    # What `resume` gives Tune for the unfinished second wave: the refined lr_max.
    space = wave_space(back.points, [(t.cell, t.seed) for t in back.adaptive.waves[1].trials])
    config = {"job": 0}
    assert space["lr_max"].func(config) == 3.16e-3
    assert space["eps"].func(config) == 0.1
