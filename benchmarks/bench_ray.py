"""Ray efficiency: wall time of a study of N identical proxy trials on 2 CPUs divided by
the ideal (sum of the trials' own training times / number of CPUs).

    python benchmarks/bench_ray.py [--trials 8] [--steps 150]

Prints the ratio twice: for the whole study command (Ray start-up, data sharing, trial
start-up, checkpoints, shutdown) and for the span from the first trial's start to the last
trial's end (what Tune adds around the trials). Target: <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    cpus = os.cpu_count() or 2
    work = Path(tempfile.mkdtemp(prefix="b2t-bench-"))
    preset = {
        "name": "bench", "search": "grid", "scheduler": "fifo", "claims": None,
        "blocks": [{"eps": {"values": [0.1]}}], "seeds": args.trials,
        "budgets": {"default": {"steps": args.steps, "eval_every": args.steps // 3}},
    }
    (work / "bench.yaml").write_text(yaml.safe_dump(preset))
    from study.cli import main as study_main

    start = time.perf_counter()
    rc = study_main(["grid", "--preset", str(work / "bench.yaml"), "--storage", str(work),
                     "--name", "exp", "--no-report"])
    wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"study failed with exit {rc}")
    own, starts, ends = [], [], []
    for trial in (work / "exp").glob("trial_*"):
        rows = [json.loads(x) for x in (trial / "result.json").read_text().splitlines() if x]
        last = rows[-1]
        own.append(last["time_total_s"])
        ends.append(last["timestamp"])
        starts.append(last["timestamp"] - last["time_total_s"])
    ideal = sum(own) / cpus
    span = max(ends) - min(starts)
    print(f"{len(own)} trials x {args.steps} steps on {cpus} CPUs; mean trial time "
          f"{sum(own) / len(own):.1f} s; ideal {ideal:.1f} s")
    print(f"whole command: {wall:.1f} s -> ratio {wall / ideal:.3f}")
    print(f"first trial start to last trial end: {span:.1f} s -> ratio {span / ideal:.3f} "
          "(target <= 1.10)")
    print(f"(experiment folder: {work / 'exp'})")


if __name__ == "__main__":
    main()
