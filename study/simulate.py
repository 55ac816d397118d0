"""Operating characteristics of the adaptive main job, by simulation (no training).

The whole procedure the main job runs (first wave = the design x its seeds, then
claim-directed waves through study.planner.after_wave until every claim is decided or the
trial budget is spent, verdicts from analysis.claims) is run many times on a generative
outcome model whose truth is planted per cell. Counting verdicts against the truth gives
each false-verdict rate (SUPPORTED where the effect is null or smaller than claimed; an
effect shown where there is none; the claimed size excluded where the effect is exactly
at it), power, and the trials each study used.

Generative model, per cell: probabilities of blank_collapse, diverged, exploding, a stuck
run (final PER 0.7-0.99, outcome slow) and a run that explodes and then collapses (the
`exploded` flag latched, final outcome blank_collapse), else stable with final PER ~
N(mean, sd); the step at which a run first reaches its final PER, log-normal around the
cell's median; runs that error (never complete), possibly more often when they fail
(missing not at random).
Seeds are common random numbers as in the real study: replicate k of every cell shares a
seed-level latent (a Gaussian copula with correlation `rho`), so cells' outcomes are
correlated within a seed and independent across seeds; each cell's marginal rates are
exactly the planted ones.

    python benchmarks/sim_adaptive.py --reps 1000     # the full table
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.special import ndtr

from analysis import claims as claims_mod
from study import planner
from study.diff import Difference, claims_tree, design

# The main job's design: eps x lr_max x augmentation (both strengths moved together).
STRONG = {"white_noise_std": 1.0, "constant_offset_std": 0.2}
WEAK = {"white_noise_std": 0.25, "constant_offset_std": 0.05}
POINTS = [{"eps": eps, "lr_max": lr, **aug} for eps in (1e-8, 0.1) for lr in (0.002, 0.005)
          for aug in (WEAK, STRONG)]
BUDGET = 1000  # steps; the simulated curves reach their final PER at a planted step


@dataclass(frozen=True)
class CellTruth:
    blank_collapse: float = 0.0
    diverged: float = 0.0
    exploding: float = 0.0
    stuck: float = 0.0  # final PER 0.7-0.99, outcome slow
    explode_then_collapse: float = 0.0  # exploded flag latched, final outcome blank_collapse
    per_mean: float = 0.1
    per_sd: float = 0.01
    steps_median: float = 300.0  # step at which the run reaches its final PER
    steps_spread: float = 0.25  # sd of log steps
    # Runs that error (never complete): with this probability when the run fails (any
    # outcome but stable and slow), else `errored`: missing not at random when they differ.
    errored_if_failed: float = 0.0
    errored: float = 0.0

    @property
    def failure(self) -> float:
        return (self.blank_collapse + self.diverged + self.exploding + self.stuck
                + self.explode_then_collapse)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    truth: Callable[[dict], CellTruth]
    # claim id -> "null" (no effect: SUPPORTED and SMALLER would be false), "between" (an
    # effect between none and the claimed size: SUPPORTED would be false), "margin" (the
    # effect exactly at its claimed size: REFUTED and SMALLER would be false), "bound" (a
    # rate exactly at a rate bound: SUPPORTED and REFUTED would both be false), "effect"
    # (an effect well past its size: SUPPORTED is power), "true" (the claim holds with
    # room: REFUTED would be false).
    truths: dict[str, str] = field(default_factory=dict)
    # The design and claims simulated: "main" (the main job's factorial and claims) or
    # "diff" (a diff study of three differences a, b, c: DIFF_POINTS, diff_claims()).
    family: str = "main"


def _is(point: dict, eps=None, lr=None, weak=None) -> bool:
    return ((eps is None or math.isclose(point["eps"], eps))
            and (lr is None or math.isclose(point["lr_max"], lr))
            and (weak is None or (point["white_noise_std"] < 0.5) == weak))


def _nothing(point: dict) -> CellTruth:
    return CellTruth()


def _same_events(point: dict) -> CellTruth:
    return CellTruth(blank_collapse=0.1, diverged=0.05, exploding=0.05, per_sd=0.02)


def _stuck_everywhere(point: dict) -> CellTruth:
    return CellTruth(stuck=0.2)


def _noisy_per(point: dict) -> CellTruth:
    """Final PER varies 30% across seeds, and the step it is reached by 50% (log sd)."""
    return CellTruth(per_mean=0.2, per_sd=0.06, steps_spread=0.5)


def _at_margin(point: dict) -> CellTruth:
    """Every failure effect exactly at its claim's size (0.25; the steps ratio 1.5)."""
    if _is(point, eps=0.1, lr=0.005, weak=False):  # official
        return CellTruth(blank_collapse=0.05)
    if _is(point, eps=0.1, lr=0.005, weak=True):
        return CellTruth(blank_collapse=0.30)
    if _is(point, eps=1e-8, lr=0.005):  # augmentation has no effect here
        return CellTruth(diverged=0.125, exploding=0.125)
    if _is(point, eps=0.1, lr=0.002):  # nor here
        return CellTruth(blank_collapse=0.30, steps_median=450.0)
    return CellTruth()


def _between(point: dict) -> CellTruth:
    """Every effect about half its claimed size: +0.12 collapse and explosion rates,
    steps ratio 1.2, differences of differences 0.12."""
    if _is(point, eps=0.1, lr=0.005, weak=False):
        return CellTruth(blank_collapse=0.05)
    if _is(point, eps=0.1, lr=0.005, weak=True):
        return CellTruth(blank_collapse=0.17)
    if _is(point, eps=1e-8, lr=0.005):
        return CellTruth(diverged=0.06, exploding=0.06)
    if _is(point, eps=0.1, lr=0.002):
        return CellTruth(blank_collapse=0.17, steps_median=360.0)
    return CellTruth()


def _per_interaction(did: float) -> Callable[[dict], CellTruth]:
    """Nothing fails; weak augmentation raises final PER by `did` at eps 0.1 with lr_max
    0.005 and nowhere else: a difference of differences of exactly `did` on both
    moderators (its median, the noise being symmetric)."""
    def truth(point: dict) -> CellTruth:
        shift = did if _is(point, eps=0.1, lr=0.005, weak=True) else 0.0
        return CellTruth(per_mean=0.2 + shift, per_sd=0.01)
    return truth


def _slow_labels(point: dict) -> CellTruth:
    """Half the runs at lr_max 0.002 with weak augmentation end `slow` (stuck), nothing
    fails: an interaction in `slow` only, which the failure claims do not count."""
    if _is(point, lr=0.002, weak=True):
        return CellTruth(stuck=0.5)
    return CellTruth()


def _errors_hide_failures(point: dict) -> CellTruth:
    """The margin scenario, with 30% of failing runs erroring (missing), against 2% of
    the others: missing not at random, the failures the claims count are under-seen."""
    return replace(_at_margin(point), errored_if_failed=0.3, errored=0.02)


def _explode_then_collapse(point: dict) -> CellTruth:
    """eps 1e-8 runs explode and then collapse in 25% of seeds (the flag latched, the final
    label blank_collapse), exactly the tiny-eps claim's size."""
    if _is(point, eps=1e-8):
        return CellTruth(explode_then_collapse=0.25)
    return CellTruth()


def _official_at_bound(point: dict) -> CellTruth:
    return CellTruth(blank_collapse=0.05, exploding=0.05) if _is(
        point, eps=0.1, lr=0.005, weak=False) else CellTruth()


def _diagnosis(point: dict) -> CellTruth:
    """The practitioner's diagnosis, with effects well past the sizes."""
    if _is(point, eps=1e-8):
        return CellTruth(diverged=0.3, exploding=0.3)
    if _is(point, eps=0.1, lr=0.005, weak=True):
        return CellTruth(blank_collapse=0.8)
    if _is(point, eps=0.1, lr=0.002):
        return CellTruth(blank_collapse=0.5 if not _is(point, weak=True) else 0.9,
                         steps_median=750.0)
    return CellTruth()


def _proxy_like(point: dict) -> CellTruth:
    """Nothing fails; lr_max 0.002 at eps 0.1 converges about twice as slowly."""
    if _is(point, eps=0.1, lr=0.002):
        return CellTruth(per_mean=0.12, steps_median=600.0)
    return CellTruth()


FAILURE_CLAIMS = ("weak_augmentation_collapses", "tiny_eps_explodes",
                  "augmentation_interacts_with_optimizer", "primary")
# Nothing differs between cells: every "X causes / is slower / interacts" claim is null,
# and the official setting is stable with room.
NULL_TRUTHS = {"weak_augmentation_collapses": "null", "low_lr_slow_or_collapse": "null",
               "tiny_eps_explodes": "null", "official_setting_stable": "true",
               "augmentation_interacts_with_optimizer": "null",
               "augmentation_interacts_on_per": "null", "primary": "null"}
MARGIN_TRUTHS = {"weak_augmentation_collapses": "margin", "low_lr_slow_or_collapse": "margin",
                 "tiny_eps_explodes": "margin",
                 "augmentation_interacts_with_optimizer": "margin", "primary": "margin"}
SCENARIOS = {
    "null": Scenario("null", "nothing fails anywhere, equal speeds", _nothing, NULL_TRUTHS),
    "null_events": Scenario(
        "null_events", "every cell fails at the same 20% (collapse 10%, divergence 5%, "
        "explosion 5%), equal speeds", _same_events,
        {**NULL_TRUTHS, "official_setting_stable": "-"}),
    "null_stuck": Scenario(
        "null_stuck", "20% of runs in every cell are stuck (final PER 0.7-0.99, label "
        "slow), nothing fails", _stuck_everywhere, NULL_TRUTHS),
    "null_noisy_per": Scenario(
        "null_noisy_per", "nothing differs; final PER varies 30% across seeds and the step "
        "it is reached by 50%", _noisy_per, NULL_TRUTHS),
    "between": Scenario(
        "between", "every failure effect about half its size: +0.12 collapse/explosion "
        "rates, steps ratio 1.2, differences of differences 0.12", _between,
        {**{k: "between" for k in MARGIN_TRUTHS}, "official_setting_stable": "true"}),
    "margin": Scenario(
        "margin", "every failure effect exactly at its size: +0.25 collapse/divergence "
        "rates, steps ratio 1.5, differences of differences 0.25", _at_margin,
        MARGIN_TRUTHS),
    "per_null": Scenario(
        "per_null", "nothing fails; final PER does not depend on augmentation",
        _per_interaction(0.0), {"augmentation_interacts_on_per": "null"}),
    "per_between": Scenario(
        "per_between", "nothing fails; a PER difference of differences of 0.01 (half the "
        "size) on both moderators", _per_interaction(0.01),
        {"augmentation_interacts_on_per": "between"}),
    "per_margin": Scenario(
        "per_margin", "nothing fails; a PER difference of differences of exactly 0.02 on "
        "both moderators", _per_interaction(0.02), {"augmentation_interacts_on_per": "margin"}),
    "slow_labels": Scenario(
        "slow_labels", "half the runs at lr_max 0.002 with weak augmentation end slow, "
        "nothing fails", _slow_labels,
        {k: "null" for k in FAILURE_CLAIMS}),
    "errors_hide_failures": Scenario(
        "errors_hide_failures", "the margin scenario with 30% of failing runs erroring "
        "(2% of the others): missing not at random", _errors_hide_failures, MARGIN_TRUTHS),
    "explode_then_collapse": Scenario(
        "explode_then_collapse", "eps 1e-8 runs explode then collapse in 25% of seeds "
        "(flag latched, final label blank_collapse)", _explode_then_collapse,
        {"tiny_eps_explodes": "margin"}),
    "official_bound": Scenario(
        "official_bound", "the official setting fails in exactly 10% of seeds",
        _official_at_bound, {"official_setting_stable": "bound"}),
    "diagnosis": Scenario(
        "diagnosis", "the diagnosis holds: eps 1e-8 fails 60%, weak augmentation collapses "
        "80% at eps 0.1, lr 0.002 collapses 50-90% and is 2.5x slower", _diagnosis, {
            "weak_augmentation_collapses": "effect", "low_lr_slow_or_collapse": "effect",
            "tiny_eps_explodes": "effect", "official_setting_stable": "true",
            "augmentation_interacts_with_optimizer": "effect", "primary": "effect"}),
    "proxy_like": Scenario(
        "proxy_like", "nothing fails; lr_max 0.002 at eps 0.1 is 2x slower", _proxy_like,
        {**NULL_TRUTHS, "low_lr_slow_or_collapse": "effect",
         "augmentation_interacts_on_per": "-"}),
}
# A diff study of three differences (study/diff.py): the full 2^3 factorial holds both
# endpoints and each difference applied alone and removed alone.
DIFF_FACTORS = ("a", "b", "c")
DIFF_POINTS = [dict(zip(DIFF_FACTORS, point, strict=True)) for point in design(3)]


def _diff_planted(point: dict) -> CellTruth:
    """a is the cause (collapse 90% and PER +0.3 when applied), b is inert, c moves the PER
    by half its claimed size and changes no failure."""
    if point["a"]:
        return CellTruth(blank_collapse=0.9, per_mean=0.55, per_sd=0.03)
    return CellTruth(blank_collapse=0.05, per_mean=0.25 + 0.025 * point["c"], per_sd=0.03)


def _diff_margin(point: dict) -> CellTruth:
    """a raises the failure rate by exactly 0.25 (PER of the runs that train unchanged); c
    raises the PER by exactly 0.05 and no failure; b is inert."""
    return CellTruth(blank_collapse=0.05 + 0.25 * point["a"],
                     per_mean=0.25 + 0.05 * point["c"], per_sd=0.03)


DIFF_SCENARIOS = {
    "diff_null": Scenario(
        "diff_null", "a diff study where no difference matters (collapse 10% everywhere, "
        "PER 0.25 +- 0.03)", lambda point: CellTruth(blank_collapse=0.1, per_mean=0.25,
                                                     per_sd=0.03),
        {f"{f}_changes_{e}": "null" for f in DIFF_FACTORS
         for e in ("failure_rate", "final_per")}, family="diff"),
    "diff_planted": Scenario(
        "diff_planted", "a causes collapse (+0.85) and +0.3 PER, b is inert, c moves PER by "
        "+0.025 (half its size)", _diff_planted,
        {"a_changes_failure_rate": "effect", "a_changes_final_per": "effect",
         "b_changes_failure_rate": "null", "b_changes_final_per": "null",
         "c_changes_failure_rate": "null", "c_changes_final_per": "between"}, family="diff"),
    "diff_margin": Scenario(
        "diff_margin", "a raises the failure rate by exactly 0.25, c the PER by exactly 0.05; "
        "b is inert", _diff_margin,
        {"a_changes_failure_rate": "margin", "c_changes_final_per": "margin",
         "b_changes_failure_rate": "null", "b_changes_final_per": "null",
         "c_changes_failure_rate": "null"}, family="diff"),
}
SCENARIOS.update(DIFF_SCENARIOS)
OUTCOME_ORDER = ("blank_collapse", "diverged", "exploding", "stuck", "explode_then_collapse")


def draw_runs(truths: list[CellTruth], trials: list[tuple[int, int]], latents: np.ndarray,
              rng: np.random.Generator, rho: float, start: int,
              points: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """Runs and their (three-point) curves for the given (cell, seed) trials of `points`
    (default: the main job's design)."""
    points = POINTS if points is None else points
    runs, curves = [], []
    for i, (cell, seed) in enumerate(trials):
        truth = truths[cell]
        z = latents[seed]
        u = ndtr(rho * z[0] + math.sqrt(1 - rho**2) * rng.standard_normal())
        outcome, cumulative = "stable", 0.0
        for name in OUTCOME_ORDER:
            cumulative += getattr(truth, name)
            if u < cumulative:
                outcome = name
                break
        per = truth.per_mean + truth.per_sd * (rho * z[1] + math.sqrt(1 - rho**2)
                                               * rng.standard_normal())
        exploded = outcome in ("exploding", "explode_then_collapse")
        if outcome == "stuck":
            outcome, per = "slow", float(rng.uniform(0.7, 0.99))
        elif outcome == "explode_then_collapse":
            outcome, per = "blank_collapse", 1.0
        elif outcome in ("blank_collapse", "diverged"):
            per = 1.0
        failed = outcome not in ("stable", "slow")
        errored = rng.random() < (truth.errored_if_failed if failed else truth.errored)
        steps = truth.steps_median * math.exp(truth.steps_spread * (
            rho * z[2] + math.sqrt(1 - rho**2) * rng.standard_normal()))
        steps = float(min(max(steps, 2.0), BUDGET))
        trial_id = f"t{start + i:06d}"
        runs.append({**points[cell], "seed": seed, "trial_id": trial_id,
                     "status": "errored" if errored else
                     "diverged" if outcome == "diverged" else "finished",
                     "outcome": None if errored else outcome,
                     "final_val_per": max(per, 0.0), "final_exploded": float(exploded),
                     "budget_steps": float(BUDGET)})
        for step, value in ((1.0, 1.05), (steps, max(per, 0.0)), (float(BUDGET), max(per, 0.0))):
            curves.append({"trial_id": trial_id, "step": step, "val_per": value})
    return runs, curves


def simulate_study(claims: claims_mod.ClaimsFile, truths: list[CellTruth], seed: int,
                   first_seeds: int = 2, max_trials: int = 120, wave_trials: int = 12,
                   rho: float = 0.5, points: list[dict] | None = None) -> dict:
    """One adaptive study on the planted truth; returns its final verdicts and cost."""
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((10_000, 3))
    points = POINTS if points is None else points
    plan = planner.first_wave(len(points), first_seeds)
    runs: list[dict] = []
    curves: list[dict] = []
    done: set[tuple[int, int]] = set()
    waves = 0
    open_claims = claims
    while plan.trials:
        waves += 1
        new_runs, new_curves = draw_runs(truths, plan.trials, latents, rng, rho, len(runs),
                                         points)
        runs += new_runs
        curves += new_curves
        done |= set(plan.trials)
        capacity = min(wave_trials, max_trials - len(runs))
        # A final verdict stays final (the confidence sequences only shrink) and the
        # planner serves undecided claims only, so the decided ones need no evaluation
        # until the end: the same plans as evaluating every claim after every wave.
        verdicts, plan = planner.after_wave(open_claims, pd.DataFrame(runs),
                                            pd.DataFrame(curves), points, done, capacity)
        undecided = list(verdicts.loc[verdicts["verdict"] == "inconclusive", "id"])
        if not undecided:
            break
        open_claims = claims.subset(undecided)
    verdicts = claims_mod.evaluate_claims(claims, pd.DataFrame(runs), pd.DataFrame(curves))
    return {"verdicts": verdicts.set_index("id")["verdict"].to_dict(),
            "n": verdicts.set_index("id")["n"].to_dict(), "trials": len(runs),
            "waves": waves, "stopped": plan.reason}


def claims_for(scenario: Scenario) -> claims_mod.ClaimsFile:
    """The claims a scenario's family decides."""
    return diff_claims() if scenario.family == "diff" else main_job_claims()


def diff_claims() -> claims_mod.ClaimsFile:
    """A diff study's claims over three differences a, b, c (study/diff.py, margins 0.25
    and 0.05, as the shipped diff preset)."""
    factors = [Difference(f"k.{name}", 0, 1, name) for name in DIFF_FACTORS]
    return claims_mod.ClaimsFile.model_validate(claims_tree(factors, 0.25, 0.05))


def main_job_claims() -> claims_mod.ClaimsFile:
    """The claims the main job decides: configs/claims.yaml and the grid preset's primary."""
    from study.presets import load_preset

    return claims_mod.with_primary(claims_mod.load_claims(claims_mod.DEFAULT_CLAIMS),
                                   load_preset("grid").primary_hypothesis)


def operating_characteristics(claims: claims_mod.ClaimsFile, scenario: Scenario, reps: int,
                              seed: int = 0, **kwargs) -> pd.DataFrame:
    """Verdict rates per claim over `reps` simulated studies of one scenario."""
    points = DIFF_POINTS if scenario.family == "diff" else POINTS
    truths = [scenario.truth(p) for p in points]
    results = [simulate_study(claims, truths, seed * 1_000_003 + r, points=points, **kwargs)
               for r in range(reps)]
    rows = []
    for claim in claims.claims:
        cid = claim.id
        verdicts = pd.Series([r["verdicts"][cid] for r in results])
        rows.append({"scenario": scenario.name, "claim": cid,
                     "truth": scenario.truths.get(cid, "-"), "reps": reps,
                     "supported": int((verdicts == "supported").sum()),
                     "smaller_than_claimed": int((verdicts == "smaller_than_claimed").sum()),
                     "refuted": int((verdicts == "refuted").sum()),
                     "inconclusive": int((verdicts == "inconclusive").sum()),
                     "mean_seeds": float(np.mean([r["n"][cid] for r in results])),
                     "mean_trials": float(np.mean([r["trials"] for r in results])),
                     "all_decided": float(np.mean([r["stopped"] == "every claim is decided"
                                                   for r in results]))})
    return pd.DataFrame(rows)


def error_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Each verdict that the planted truth makes false, per (scenario, claim):
    false support (SUPPORTED where the effect is null, between none and its size, or a
    rate sits exactly at its bound), false effect (SMALLER THAN CLAIMED, i.e. an effect
    shown, where there is none), false exclusion (REFUTED or SMALLER where the effect is
    at its size or the claim holds; REFUTED where a rate sits exactly at its bound). Each
    side is controlled at alpha/2."""
    rows = []

    def add(error: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
        rows.extend({"error": error, "scenario": r["scenario"], "claim": r["claim"],
                     "truth": r["truth"], "count": int(sum(r[c] for c in columns)),
                     "reps": r["reps"]} for _, r in frame.iterrows())

    add("false support", table[table["truth"].isin(("null", "between", "bound"))],
        ("supported",))
    add("false effect", table[table["truth"] == "null"], ("smaller_than_claimed",))
    add("false exclusion", table[table["truth"].isin(("margin", "true"))],
        ("refuted", "smaller_than_claimed"))
    add("false exclusion", table[table["truth"] == "bound"], ("refuted",))
    frame = pd.DataFrame(rows)
    frame["rate"] = frame["count"] / frame["reps"]
    return frame
