"""Error control and cost of the adaptive main job, by simulation (no training).

    python benchmarks/sim_adaptive.py [--reps 1000] [--max-trials 120] [--workers 2]

Runs the whole claim-directed procedure (study.simulate: first wave, then waves planned by
study.planner from analysis.claims' verdicts) `--reps` times per planted scenario and
prints, per scenario and claim, how often each verdict came out, the seeds and trials
used, then the error table: false support where the claim's effect is null, false
refutation where the claimed effect is present at exactly its margin (or the claim holds),
each with a Clopper-Pearson 95% interval, against alpha = 0.05.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from study import simulate


def _one(job: tuple[str, int, int, int]) -> pd.DataFrame:
    name, reps, max_trials, seed = job
    claims = simulate.main_job_claims()
    return simulate.operating_characteristics(claims, simulate.SCENARIOS[name], reps,
                                              seed=seed, max_trials=max_trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--max-trials", type=int, default=120,
                        help="trial budget of each simulated study (first wave included)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenarios", nargs="+", default=list(simulate.SCENARIOS))
    args = parser.parse_args()
    start = time.perf_counter()
    # Each scenario in chunks of 50 reps with their own seeds, spread over the workers.
    chunk = 50
    jobs = [(name, min(chunk, args.reps - k), args.max_trials, 7919 * i + k)
            for i, name in enumerate(args.scenarios) for k in range(0, args.reps, chunk)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        parts = []
        for n, part in enumerate(pool.imap_unordered(_one, jobs), start=1):
            parts.append(part)
            elapsed = time.perf_counter() - start
            print(f"[{n}/{len(jobs)} chunks, {elapsed / 60:.1f} min, ETA "
                  f"{elapsed / n * (len(jobs) - n) / 60:.1f} min]", flush=True)
    table = pd.concat(parts).groupby(["scenario", "claim", "truth"], sort=False).agg(
        reps=("reps", "sum"), supported=("supported", "sum"),
        smaller_than_claimed=("smaller_than_claimed", "sum"), refuted=("refuted", "sum"),
        inconclusive=("inconclusive", "sum"), mean_seeds=("mean_seeds", "mean"),
        mean_trials=("mean_trials", "mean"), all_decided=("all_decided", "mean"),
    ).reset_index()
    pd.set_option("display.width", 200)
    for name in args.scenarios:
        print(f"\n{name}: {simulate.SCENARIOS[name].description}")
        print(table[table["scenario"] == name].drop(columns="scenario").round(2)
              .to_string(index=False))
    errors = simulate.error_rates(table)
    low, high = proportion_confint(errors["count"], errors["reps"], alpha=0.05, method="beta")
    errors["ci"] = [f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(low, high)]
    print(f"\nerrors (alpha = 0.05), {args.reps} simulated studies per scenario, at most "
          f"{args.max_trials} trials each:")
    print(errors.round(4).to_string(index=False))
    worst = errors.groupby("error")["rate"].max()
    print("\nworst false support {:.3f}, worst false refutation {:.3f} (target <= 0.05); "
          "{:.0f} s".format(worst.get("false support", 0.0), worst.get("false refutation", 0.0),
                            time.perf_counter() - start))


if __name__ == "__main__":
    main()
