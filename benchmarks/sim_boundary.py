"""Coverage of the map's boundary slope interval, by simulation (no training).

    python benchmarks/sim_boundary.py [--reps 400] [--workers 2]

Runs the map's procedure on its eps x lr_max block (study.boundary_sim: the 7 x 7 grid
with 2 seeds, refinement waves of study.refine to a factor 1.25 within 60 more trials, the
regime test of analysis.boundary) `--reps` times per planted scenario and prints, per
regime, how often the 95% interval held the planted slope (with a Clopper-Pearson
interval), how often the data separated and the coverage in those studies, the median
interval width, the verdicts and the trials used.

Then the separated case of the audit: the grid alone, no noise, a planted slope of 0.95
at large eps, 2 and 32 seeds, every seed with the same pattern. Beside the new interval
it prints the method this replaced (Firth logistic regression of failure on log lr and log
eps, Fieller interval of -b_eps / b_lr at alpha/2), which narrows with replicates of the
same pattern and excludes the planted slope.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit
from statsmodels.stats.proportion import proportion_confint

from study import boundary_sim


def _one(job: tuple[str, int, int]) -> pd.DataFrame:
    name, reps, seed = job
    return boundary_sim.coverage(boundary_sim.SCENARIOS[name], reps, seed=seed)


def firth_fieller(runs: pd.DataFrame, columns: list[float], alpha: float = 0.025
                  ) -> tuple[float, float, float]:
    """The replaced method: Firth fit of failure on centred log lr and log eps within the
    regime's columns, slope -b_eps / b_lr with its Fieller interval (Fieller 1954)."""
    from firthmodels import FirthLogisticRegression

    sub = runs[runs["eps"].isin(columns)]
    log_lr, log_eps = np.log(sub["lr_max"].to_numpy()), np.log(sub["eps"].to_numpy())
    X = np.column_stack([np.ones(len(sub)), log_lr - log_lr.mean(), log_eps - log_eps.mean()])
    y = (sub["outcome"] != "stable").to_numpy(dtype=float)
    beta = FirthLogisticRegression(fit_intercept=False, max_iter=200).fit(X, y).coef_
    p = expit(X @ beta)
    cov = np.linalg.inv((X.T * (p * (1 - p))) @ X)
    b_lr, b_eps = beta[1], beta[2]
    z2 = sps.norm.ppf(1 - alpha / 2) ** 2
    a = b_lr**2 - z2 * cov[1, 1]
    b = -2 * (b_eps * b_lr - z2 * cov[1, 2])
    c = b_eps**2 - z2 * cov[2, 2]
    disc = b * b - 4 * a * c
    if a <= 0 or disc < 0:
        return -b_eps / b_lr, -math.inf, math.inf
    low, high = (-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)
    return -b_eps / b_lr, -high, -low


def separated_case() -> None:
    print("\nThe audit's separated pattern (grid only, no noise, planted large-eps slope "
          "0.95):")
    for name in ("separated_grid", "separated_grid_32_seeds"):
        scenario = boundary_sim.SCENARIOS[name]
        study = boundary_sim.simulate(scenario, np.random.default_rng(0))
        row = study.result.table.set_index("regime").loc["large_eps"]
        old = firth_fieller(study.runs, boundary_sim.SPEC.regimes["large_eps"])
        print(f"  {scenario.seeds:>2} seeds: new {row['slope']:.2f} [{row['slope_low']:.2f}, "
              f"{row['slope_high']:.2f}] (identified set [{row['identified_low']:.2f}, "
              f"{row['identified_high']:.2f}], separated: {row['separated']}, "
              f"{row['verdict']}); old Firth + Fieller {old[0]:.2f} [{old[1]:.2f}, "
              f"{old[2]:.2f}]: planted 0.95 "
              f"{'inside' if old[1] <= 0.95 <= old[2] else 'EXCLUDED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    random = [n for n, s in boundary_sim.SCENARIOS.items() if s.shift]
    parser.add_argument("--scenarios", nargs="+", default=random)
    args = parser.parse_args()
    start = time.perf_counter()
    chunk = 50
    jobs = [(name, min(chunk, args.reps - k), 7919 * i + k)
            for i, name in enumerate(args.scenarios) for k in range(0, args.reps, chunk)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        parts = []
        for n, part in enumerate(pool.imap_unordered(_one, jobs), start=1):
            parts.append(part)
            elapsed = time.perf_counter() - start
            print(f"[{n}/{len(jobs)} chunks, {elapsed / 60:.1f} min, ETA "
                  f"{elapsed / n * (len(jobs) - n) / 60:.1f} min]", flush=True)
    runs = pd.concat(parts)
    runs["width"] = runs["high"] - runs["low"]
    rows = []
    for (name, regime), group in runs.groupby(["scenario", "regime"], sort=False):
        covered = int(group["covered"].sum())
        low, high = proportion_confint(covered, len(group), method="beta")
        verdicts = group["verdict"].value_counts()
        separated = group[group["separated"]]
        rows.append({"scenario": name, "regime": regime, "truth": group["truth"].iloc[0],
                     "reps": len(group), "coverage": covered / len(group),
                     "cp_low": low, "cp_high": high,
                     "separated": group["separated"].mean(),
                     "coverage_if_separated": separated["covered"].mean()
                     if len(separated) else float("nan"),
                     "median_width": group["width"].median(),
                     **{v: int(verdicts.get(v, 0)) for v in
                        ("supported", "inconclusive", "refuted")},
                     "mean_trials": group["trials"].mean()})
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    separated_case()
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
