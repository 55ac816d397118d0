"""Operating characteristics of the map's boundary procedure, by simulation (no training).

The procedure the map runs on its eps x lr_max block (the first wave: the log grid x the
seeds; refinement waves through study.refine.next_wave until every bracket is within the
tolerance or the trial budget is spent; the regime test of analysis.boundary) is run many
times on a planted boundary, and each regime's slope interval is checked against the
planted slope.

Planted truth: column e (one eps) has the boundary B_e = planted(eps_e) * exp(shift), the
shift drawn once per study uniformly over one grid step so the truth sits anywhere
between grid values. Seed s of column e has the boundary
    log B_es = log B_e + u_s + e_es,   u_s ~ N(0, seed_sd) shared by seed s in every column
(common random numbers), e_es ~ N(0, noise_sd); a run at lr fails (side lower) when
    log lr < log B_es + r,             r ~ N(0, run_sd) drawn per run,
so run_sd > 0 makes a column's outcomes non-monotone near its boundary.

    python benchmarks/sim_boundary.py --reps 400     # the table in benchmarks/RESULTS.md
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import boundary
from analysis.load import Block
from analysis.record import BoundarySpec
from study import refine
from study.planner import first_wave

EPS = (1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 0.1, 1.0)  # the map's columns
LR = (1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2, 3e-2)  # the map's lr_max grid
SPEC = BoundarySpec(tolerance=1.25, expand=3.0, limits=(1e-5, 0.3),
                    regimes={"large_eps": [1e-2, 0.1, 1.0], "small_eps": [1e-10, 1e-8, 1e-6]})
BLOCK = Block(axes=("eps", "lr_max"))


def planted(slope_large: float = 1.0, small: float = 5e-4, large_at_1: float = 2.5e-2
            ) -> Callable[[float], float]:
    """The boundary lr of each eps column: `small` for eps <= 1e-4, and
    large_at_1 * eps ** slope_large for larger eps (slope 0 and slope_large)."""
    def boundary_lr(eps: float) -> float:
        return small if eps <= 1e-4 else large_at_1 * eps ** slope_large
    return boundary_lr


@dataclass(frozen=True)
class Scenario:
    name: str
    boundary_lr: Callable[[float], float]
    slopes: dict[str, float]  # the planted slope of each regime
    seeds: int = 2
    seed_sd: float = 0.0  # log-lr units
    noise_sd: float = 0.0
    run_sd: float = 0.0
    refine: bool = True
    max_trials: int = 49 * 2 + 60  # the design, then at most 60 refinement runs
    wave_trials: int = 14
    shift: bool = True  # draw the truth's position between grid values


@dataclass
class Study:
    """One simulated study: its runs, its points and waves, and the regime test."""

    runs: pd.DataFrame
    points: list[dict[str, float]]
    waves: int
    stopped: str
    result: boundary.BoundaryAnalysis


def simulate(scenario: Scenario, rng: np.random.Generator) -> Study:
    shift = rng.uniform(-0.5, 0.5) * math.log(3.0) if scenario.shift else 0.0
    seed_effect = rng.normal(0.0, scenario.seed_sd, scenario.seeds)
    column_noise = {(eps, s): rng.normal(0.0, scenario.noise_sd) for eps in EPS
                    for s in range(scenario.seeds)}

    def outcome(point: dict[str, float], seed: int) -> str:
        log_b = (math.log(scenario.boundary_lr(point["eps"])) + shift + seed_effect[seed]
                 + column_noise[(point["eps"], seed)] + rng.normal(0.0, scenario.run_sd))
        return "slow" if math.log(point["lr_max"]) < log_b else "stable"

    points = [{"eps": eps, "lr_max": lr} for eps in EPS for lr in LR]
    trials = first_wave(len(points), scenario.seeds).trials
    rows: list[dict] = []
    waves, stopped = 0, "refinement off"
    while True:
        waves += 1
        for cell, seed in trials:
            point = points[cell]
            rows.append({**point, "cell": cell, "seed": seed, "status": "finished",
                         "outcome": outcome(point, seed), "wave": waves,
                         "median_eps_dominance": 0.99 if point["eps"] > 1e-3 else 0.01})
        if not scenario.refine:
            break
        runs = pd.DataFrame(rows)
        done = {(r["cell"], r["seed"]) for r in rows}
        capacity = min(scenario.wave_trials, scenario.max_trials - len(rows))
        plan, points = refine.next_wave(SPEC, runs, BLOCK, points, done, capacity)
        if not plan.trials:
            stopped = plan.reason
            break
        trials = plan.trials
    runs = pd.DataFrame(rows)
    return Study(runs=runs, points=points, waves=waves, stopped=stopped,
                 result=boundary.regime_test(runs, SPEC))


def coverage(scenario: Scenario, reps: int, seed: int = 0) -> pd.DataFrame:
    """One row per (study, regime): the interval, whether it holds the planted slope, the
    verdict, whether the data separated, and the trials the study ran."""
    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(reps):
        study = simulate(scenario, rng)
        for _, row in study.result.table.iterrows():
            truth = scenario.slopes[row["regime"]]
            rows.append({"scenario": scenario.name, "rep": rep, "regime": row["regime"],
                         "truth": truth, "slope": row["slope"], "low": row["slope_low"],
                         "high": row["slope_high"],
                         "covered": bool(row["slope_low"] <= truth <= row["slope_high"]),
                         "verdict": row["verdict"], "separated": row["separated"] == "yes",
                         "trials": len(study.runs), "waves": study.waves})
    return pd.DataFrame(rows)


PREDICTED = {"large_eps": 1.0, "small_eps": 0.0}
# The audit's pattern: at eps 0.01, 0.1 and 1 the first fine lr_max of the grid is 1e-3,
# 5e-3 and 3e-2 (every line through it has slope 0.5 to 1), produced here by a boundary
# of slope 0.95, without noise.
AUDIT = planted(0.95, small=5e-4, large_at_1=0.027)
SCENARIOS = {
    "separated_grid": Scenario("separated_grid", AUDIT, {"large_eps": 0.95, "small_eps": 0.0},
                               refine=False, shift=False),
    "separated_grid_32_seeds": Scenario("separated_grid_32_seeds", AUDIT,
                                        {"large_eps": 0.95, "small_eps": 0.0}, seeds=32,
                                        refine=False, shift=False),
    "low_noise": Scenario("low_noise", planted(1.0), PREDICTED, seed_sd=0.05, noise_sd=0.05,
                          run_sd=0.02),
    "moderate_noise": Scenario("moderate_noise", planted(1.0), PREDICTED, seed_sd=0.2,
                               noise_sd=0.15, run_sd=0.05),
    "high_noise": Scenario("high_noise", planted(1.0), PREDICTED, seed_sd=0.3, noise_sd=0.4,
                           run_sd=0.1),
    "shallow": Scenario("shallow", planted(0.7), {"large_eps": 0.7, "small_eps": 0.0},
                        seed_sd=0.2, noise_sd=0.15, run_sd=0.05),
    "eps_irrelevant": Scenario("eps_irrelevant", planted(0.0, large_at_1=5e-4),
                               {"large_eps": 0.0, "small_eps": 0.0}, seed_sd=0.2,
                               noise_sd=0.15, run_sd=0.05),
}
