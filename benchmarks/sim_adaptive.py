"""Error control and cost of the adaptive main job, by simulation (no training).

    python benchmarks/sim_adaptive.py [--reps 1000] [--max-trials 400] [--workers 2]
                                      [--out sim.csv]

Runs the whole claim-directed procedure (study.simulate: first wave, then waves planned by
study.planner from analysis.claims' verdicts) `--reps` times per planted scenario and
prints, per scenario and claim, how often each verdict came out, the seeds and trials
used, then the error table (study.simulate.error_rates: false support, a false effect,
a false exclusion of the claimed size), each with a Clopper-Pearson 95% interval, against
alpha / 2 = 0.025 per side. With --out, every finished chunk of 50 studies is appended to
a CSV, and a second run with the same --out skips the chunks already there (a long run
may be stopped and continued).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from study import simulate


def _one(job: tuple[str, int, int, int]) -> pd.DataFrame:
    name, reps, max_trials, seed = job
    scenario = simulate.SCENARIOS[name]
    return simulate.operating_characteristics(simulate.claims_for(scenario), scenario, reps,
                                              seed=seed, max_trials=max_trials
                                              ).assign(chunk_seed=seed, max_trials=max_trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--max-trials", type=int, default=400,
                        help="trial budget of each simulated study (first wave included)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenarios", nargs="+", default=list(simulate.SCENARIOS))
    parser.add_argument("--out", type=Path, help="CSV to append finished chunks to (and to "
                        "continue from)")
    args = parser.parse_args()
    unknown = [s for s in args.scenarios if s not in simulate.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(simulate.SCENARIOS)}")
    start = time.perf_counter()
    # Each scenario in chunks of 50 reps with their own seeds, spread over the workers;
    # the first chunk of every scenario first, so a run stopped early covers all of them.
    chunk = 50
    jobs = [(name, min(chunk, args.reps - k), args.max_trials, 7919 * i + k)
            for k in range(0, args.reps, chunk)
            for i, name in enumerate(simulate.SCENARIOS) if name in args.scenarios]
    parts = []
    if args.out is not None and args.out.is_file():
        done = pd.read_csv(args.out, keep_default_na=False)  # "null" is a scenario name
        done = done[done["max_trials"] == args.max_trials]
        parts.append(done)
        finished = set(zip(done["scenario"], done["chunk_seed"]))
        jobs = [j for j in jobs if (j[0], j[3]) not in finished]
        print(f"{len(finished)} chunk(s) already in {args.out}; {len(jobs)} to run", flush=True)
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for n, part in enumerate(pool.imap_unordered(_one, jobs), start=1):
            parts.append(part)
            if args.out is not None:
                part.to_csv(args.out, mode="a", header=not args.out.is_file(), index=False)
            elapsed = time.perf_counter() - start
            print(f"[{n}/{len(jobs)} chunks, {elapsed / 60:.1f} min, ETA "
                  f"{elapsed / n * (len(jobs) - n) / 60:.1f} min]", flush=True)
    table = pd.concat(parts)
    table = table[table["scenario"].isin(args.scenarios)]
    # mean_seeds and mean_trials weighted by each chunk's reps
    table = table.assign(seed_sum=table["mean_seeds"] * table["reps"],
                         trial_sum=table["mean_trials"] * table["reps"],
                         decided_sum=table["all_decided"] * table["reps"])
    table = table.groupby(["scenario", "claim", "truth"], sort=False).agg(
        reps=("reps", "sum"), supported=("supported", "sum"),
        smaller_than_claimed=("smaller_than_claimed", "sum"), refuted=("refuted", "sum"),
        inconclusive=("inconclusive", "sum"), seed_sum=("seed_sum", "sum"),
        trial_sum=("trial_sum", "sum"), decided_sum=("decided_sum", "sum")).reset_index()
    table["mean_seeds"] = table.pop("seed_sum") / table["reps"]
    table["mean_trials"] = table.pop("trial_sum") / table["reps"]
    table["all_decided"] = table.pop("decided_sum") / table["reps"]
    pd.set_option("display.width", 200)
    for name in args.scenarios:
        print(f"\n{name}: {simulate.SCENARIOS[name].description}")
        print(table[table["scenario"] == name].drop(columns="scenario").round(2)
              .to_string(index=False))
    errors = simulate.error_rates(table)
    low, high = proportion_confint(errors["count"], errors["reps"], alpha=0.05, method="beta")
    errors["ci"] = [f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(low, high)]
    print(f"\nerrors (alpha = 0.05, each side at most 0.025), {int(table['reps'].max())} "
          f"simulated studies per scenario, at most {args.max_trials} trials each:")
    print(errors.round(4).to_string(index=False))
    worst = errors.groupby("error")["rate"].max()
    print("\nworst rate per kind of error: " + ", ".join(
        f"{kind} {rate:.3f}" for kind, rate in worst.items())
        + f" (target <= 0.025); {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
