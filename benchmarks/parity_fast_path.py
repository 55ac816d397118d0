"""Parity of the fast CPU training path with the reference path: same dynamics within seed noise.

    python benchmarks/parity_fast_path.py [--seeds 3] [--steps 400] [--eval-every 20]
                                          [--workers 2] [--out results/parity-fast-path]

Trains the proxy at three settings (the official proxy setting; eps = 1e-8; lr_max = 0.002,
the others official) with seeds 1..N on both paths (train.cpu_path = fast | reference), the
budget and schedule of the grid study's default trials. Seed k draws the same initial weights,
batches and augmentation noise on both paths; the dropout masks differ (the fast path draws
them with torch.rand, and the masks between GRU layers over the valid patches only), and the
fast path computes only the valid patches and uses the fused AdamW kernel, which agree with
the reference to float rounding; so a pair of runs differs by dropout noise plus rounding.

Prints per setting: each path's final val PER (mean, seed sd, runs), outcomes, the paired
difference fast - reference with a t interval, and the seed noise it is measured against; then
for eps_dominance, blank fraction and gradient norm the largest difference between the two
paths' seed-mean curves relative to the seed sd at that step. Writes every evaluation of every
run to <out>/runs.csv.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

SETTINGS = {
    "official": {},
    "eps=1e-8": {"optim.eps": 1e-8},
    "lr_max=0.002": {"optim.lr_max": 0.002},
}
CURVES = ("eps_dominance", "blank_fraction", "grad_norm_mean")


def train(job: tuple) -> list[dict]:
    setting, seed, path, steps, eval_every, data = job
    import torch

    from trainable.config import load_config
    from trainable.data import load_dataset
    from trainable.loop import TrainingRun
    from trainable.source import resolve_data_root

    torch.set_num_threads(1)
    overrides = {"train.num_threads": 1, "train.num_steps": steps, "train.eval_every": eval_every,
                 "optim.lr_decay_steps": steps, "optim.lr_warmup_steps": max(1, steps // 10),
                 "train.seed": seed, "data.seed": seed, "train.cpu_path": path,
                 **SETTINGS[setting]}
    cfg = load_config(overrides=overrides)
    root, _ = resolve_data_root(data, progress=False)
    start = time.perf_counter()
    rows = [{"setting": setting, "seed": seed, "path": path,
             **{k: v for k, v in r.items() if k != "val_per_by_day"}}
            for r in TrainingRun(cfg, load_dataset(root, cfg))]
    for row in rows:
        row["wall_s"] = time.perf_counter() - start
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default="results/parity-fast-path")
    args = parser.parse_args()
    from trainable.source import resolve_data_root

    resolve_data_root(args.data, progress=False)  # generate the synthetic data once, up front
    jobs = [(s, seed, p, args.steps, args.eval_every, args.data) for s in SETTINGS
            for seed in range(1, args.seeds + 1) for p in ("fast", "reference")]
    rows, start = [], time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for done, result in enumerate(pool.map(train, jobs), start=1):
            rows.extend(result)
            elapsed = time.perf_counter() - start
            print(f"  {done}/{len(jobs)} runs, {elapsed / 60:.1f} min, ETA "
                  f"{elapsed / done * (len(jobs) - done) / 60:.1f} min", flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "runs.csv", index=False)

    last = df.sort_values("step").groupby(["setting", "seed", "path"]).tail(1)
    print(f"\n{args.seeds} seeds x {len(SETTINGS)} settings x 2 paths, {args.steps} steps, "
          f"evaluation every {args.eval_every}")
    for setting in SETTINGS:
        sub = last[last.setting == setting].pivot(index="seed", columns="path",
                                                  values="val_per")
        outcomes = last[last.setting == setting].groupby("path")["outcome"].agg(
            lambda s: ", ".join(f"{k} {v}" for k, v in s.value_counts().items()))
        diff = sub["fast"] - sub["reference"]
        n = len(diff)
        half = (stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)) if n > 1 else np.inf
        noise = np.sqrt((sub["fast"].var(ddof=1) + sub["reference"].var(ddof=1)) / 2)
        print(f"\n{setting}: final val PER")
        for path in ("reference", "fast"):
            print(f"  {path:<9} {sub[path].mean():.3f} (seed sd {sub[path].std(ddof=1):.3f}; "
                  f"runs {', '.join(f'{v:.3f}' for v in sub[path])}); outcomes: "
                  f"{outcomes[path]}")
        print(f"  fast - reference, paired by seed: {diff.mean():+.3f} "
              f"[{diff.mean() - half:+.3f}, {diff.mean() + half:+.3f}] (95% t, n={n}); "
              f"seed noise (pooled sd of one run) {noise:.3f}")
        curves = df[df.setting == setting]
        for key in CURVES:
            g = curves.groupby(["path", "step"])[key]
            mean, sd = g.mean().unstack(0), g.std(ddof=1).unstack(0)
            gap = (mean["fast"] - mean["reference"]).abs()
            spread = np.sqrt((sd["fast"] ** 2 + sd["reference"] ** 2) / 2).clip(lower=1e-12)
            ratio = gap / spread
            print(f"  {key:<15} largest |fast - reference| of seed means "
                  f"{gap.max():.4g} (step {gap.idxmax()}); median over steps "
                  f"{(ratio.median()):.2f} seed sd, max {ratio.max():.2f} seed sd")
    wall = last.groupby("path")["wall_s"].sum()
    print(f"\ntraining wall time, all runs: reference {wall['reference'] / 60:.1f} min, "
          f"fast {wall['fast'] / 60:.1f} min ({wall['reference'] / wall['fast']:.2f}x)")
    print(f"every evaluation: {out / 'runs.csv'}")


if __name__ == "__main__":
    main()
