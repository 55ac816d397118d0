"""Search efficiency: how much of the exhaustive grid's compute random search with ASHA
(`asha`) and TPE with ASHA (`optuna`) spend before they find a configuration within
1 PER point of the grid's best, on the same box.

    python benchmarks/search_efficiency.py [--levels 5] [--samples 16] [--steps 400]
                                           [--repeats 1]

The box is (eps, lr_max) at the official augmentation, on the log ranges of the `map`
preset's first block (eps 1e-10 .. 1, lr_max 1e-4 .. 3e-2), day layers following lr_max
(as in `map`). The grid is levels x levels log-spaced points, one seed each; the searches
draw `samples` configurations from the same box (log-uniform), with the `asha` preset's
scheduler (grace 25% of the budget, reduction factor 2), one study per search seed
(--search-seed 0 .. repeats-1). Everything runs on the built-in synthetic data and the
proxy training config, two trials at a time on the 2-core machine.

Compute is training steps: each trial counts the steps it ran (an ASHA-stopped trial only
its own). The target is a final val PER at most the grid's best final val PER + 0.01,
reached by a trial that ran its whole budget. A search's compute to target is the steps
all its trials had run (by their reports' timestamps) when the first such trial reported
its last evaluation; the goal is at most 30% of the grid's compute. One seed per
configuration: the grid's best is itself a noisy minimum over levels^2 single runs (seed
sd of a proxy PER is about 0.002-0.03 depending on the setting: README, Parity).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

EPS = (1e-10, 1.0)
LR = (1e-4, 3e-2)
TOLERANCE = 0.01  # 1 PER point
GOAL = 0.30


def preset(name: str, search: str, scheduler: str, steps: int, levels: int, samples: int
           ) -> dict:
    common = {"name": name, "search": search, "scheduler": scheduler, "metric": "val_per",
              "mode": "min", "train_config": "train/proxy.yaml", "seeds": 1,
              "budgets": {"default": {"steps": steps, "eval_every": max(1, steps // 16)}},
              "primary_hypothesis": None, "claims": None, "day_lr": "follow"}
    if search == "grid":
        values = {"eps": np.logspace(math.log10(EPS[0]), math.log10(EPS[1]), levels),
                  "lr_max": np.logspace(math.log10(LR[0]), math.log10(LR[1]), levels)}
        return common | {"blocks": [{k: {"values": [float(f"{x:.4g}") for x in v]}
                                     for k, v in values.items()}]}
    return common | {"samples": samples, "asha": {"grace_fraction": 0.25,
                                                  "reduction_factor": 2},
                     "axes": {"eps": {"distribution": "loguniform", "low": EPS[0],
                                      "high": EPS[1]},
                              "lr_max": {"distribution": "loguniform", "low": LR[0],
                                         "high": LR[1]}}}


def run_study(work: Path, spec: dict, command: str, name: str, extra: list[str]) -> Path:
    from study.cli import main as study_main

    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    rc = study_main([command, "--preset", str(path), "--storage", str(work), "--name", name,
                     "--no-report", *extra])
    if rc != 0:
        raise SystemExit(f"study {name} failed with exit {rc}")
    print(f"  {name}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return work / name


def trials(exp: Path) -> list[list[dict]]:
    out = []
    for folder in sorted(exp.glob("trial_*")):
        rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()
                if line.strip()]
        if rows:
            out.append(rows)
    return out


def summary(runs: list[list[dict]], target: float | None = None) -> dict:
    steps = sum(r[-1]["step"] for r in runs)
    full = [r for r in runs if r[-1]["step"] >= r[-1]["budget_steps"]]
    best = min((r[-1]["val_per"] for r in full), default=float("nan"))
    result = {"trials": len(runs), "steps": steps, "best_final_per": best, "to_target": None}
    if target is not None:
        hits = sorted(r[-1]["timestamp"] for r in full if r[-1]["val_per"] <= target)
        if hits:
            moment = hits[0]
            result["to_target"] = sum(max((row["step"] for row in r
                                           if row["timestamp"] <= moment), default=0)
                                      for r in runs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=5, help="grid points per axis")
    parser.add_argument("--samples", type=int, default=16, help="configurations per search")
    parser.add_argument("--steps", type=int, default=400, help="training steps per trial")
    parser.add_argument("--repeats", type=int, default=1, help="search seeds per method")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="b2t-search-"))
    print(f"box eps {EPS}, lr_max {LR}; grid {args.levels}x{args.levels}, searches "
          f"{args.samples} samples x {args.repeats} seed(s), {args.steps} steps; "
          f"folder {work}", flush=True)
    grid = summary(trials(run_study(
        work, preset("grid", "grid", "fifo", args.steps, args.levels, args.samples), "grid",
        "grid", [])))
    target = grid["best_final_per"] + TOLERANCE
    rows = []
    for method, search in (("asha", "random"), ("optuna", "optuna")):
        for seed in range(args.repeats):
            name = f"{method}-{seed}"
            spec = preset(name, search, "asha", args.steps, args.levels, args.samples)
            result = summary(trials(run_study(work, spec, method, name,
                                              ["--search-seed", str(seed)])), target)
            rows.append((method, seed, result))
    print(f"\ngrid: {grid['trials']} trials, {grid['steps']} steps, best final val PER "
          f"{grid['best_final_per']:.3f}; target <= {target:.3f}")
    print(f"{'method':8} {'seed':>4} {'trials':>6} {'steps':>7} {'of grid':>8} "
          f"{'best PER':>8} {'to target':>10} {'of grid':>8}")
    for method, seed, r in rows:
        to = r["to_target"]
        share = f"{to / grid['steps']:.0%}" if to is not None else "missed"
        print(f"{method:8} {seed:>4} {r['trials']:>6} {r['steps']:>7} "
              f"{r['steps'] / grid['steps']:>8.0%} {r['best_final_per']:>8.3f} "
              f"{to if to is not None else '-':>10} {share:>8}")
    for method in ("asha", "optuna"):
        shares = [r["to_target"] / grid["steps"] if r["to_target"] is not None else math.inf
                  for m, _, r in rows if m == method]
        reached = sum(math.isfinite(s) for s in shares)
        med = statistics.median(shares)
        verdict = "meets" if med <= GOAL else "misses"
        print(f"{method}: reached the target in {reached}/{len(shares)} seed(s); median "
              f"compute to target {med:.0%} of the grid's ({verdict} the {GOAL:.0%} goal)"
              if math.isfinite(med) else
              f"{method}: reached the target in {reached}/{len(shares)} seed(s)")


if __name__ == "__main__":
    main()
