"""How the claims' effects move with the training budget (the evidence for the main job's
default budget).

    python benchmarks/budget_sensitivity.py run [--out DIR] [--budgets 400 800 1600]
                                                [--seeds 2] [--workers 2]
    python benchmarks/budget_sensitivity.py summary [--out DIR]

`run` trains the cells the claims in configs/claims.yaml compare, at several step budgets
(warm-up and cosine decay stretched to each budget exactly as a study does), 20
evaluations per run, one process per CPU; each run's reports go to one JSON-lines file,
and runs already on disk are skipped, so an interrupted measurement continues.
`summary` prints, per budget, each cell's outcomes and final/best val PER by seed, and
the paired effects the claims rest on (cell minus official setting, same seed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

CELLS = {  # (eps, lr_max, white_noise_std, constant_offset_std)
    "official": (0.1, 0.005, 1.0, 0.2),
    "weak_aug": (0.1, 0.005, 0.25, 0.05),
    "low_lr": (0.1, 0.002, 1.0, 0.2),
    "tiny_eps": (1e-8, 0.005, 1.0, 0.2),
    "tiny_eps_weak_aug": (1e-8, 0.005, 0.25, 0.05),
    "low_lr_weak_aug": (0.1, 0.002, 0.25, 0.05),
}
EVALUATIONS = 20


def _overrides(cell: str, budget: int, seed: int) -> list[str]:
    from study.plan import budget_overrides
    from trainable.config import CONFIG_DIR, read_yaml

    eps, lr, noise, offset = CELLS[cell]
    tree = read_yaml(CONFIG_DIR / "train" / "proxy.yaml")
    plan = {"steps": budget, "eval_every": max(1, budget // EVALUATIONS)}
    return [*budget_overrides(plan, tree), f"optim.eps={eps}", f"optim.lr_max={lr}",
            f"augment.white_noise_std={noise}", f"augment.constant_offset_std={offset}",
            f"train.seed={seed}", f"data.seed={seed}", "train.num_threads=1"]


def _run_one(job: tuple[str, int, int, str]) -> str:
    cell, budget, seed, out = job
    from trainable.config import CONFIG_DIR, load_config
    from trainable.data import load_dataset
    from trainable.loop import TrainingRun
    from trainable.source import resolve_data_root

    cfg = load_config(CONFIG_DIR / "train" / "proxy.yaml", _overrides(cell, budget, seed))
    root, _ = resolve_data_root(None, progress=False)
    dataset = load_dataset(root, cfg)
    path = Path(out) / f"{cell}__{budget}__{seed}.jsonl"
    start = time.perf_counter()
    lines = []
    for report in TrainingRun(cfg, dataset):
        report.pop("val_per_by_day", None)
        lines.append(json.dumps({"cell": cell, "budget": budget, "seed": seed, **report}))
    tmp = path.with_suffix(".partial")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(path)
    last = json.loads(lines[-1])
    return (f"{cell} budget {budget} seed {seed}: {last['outcome']}, final PER "
            f"{last['val_per']:.3f}, best {last['best_val_per']:.3f} "
            f"({time.perf_counter() - start:.0f} s)")


def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from trainable.source import resolve_data_root

    resolve_data_root(None)  # generate the synthetic data once, before the workers start
    jobs = [(cell, budget, seed, str(out)) for budget in args.budgets
            for seed in range(args.seeds) for cell in args.cells
            if not (out / f"{cell}__{budget}__{seed}.jsonl").is_file()]
    # Longest first, so the two workers finish together.
    jobs.sort(key=lambda j: -j[1])
    total = sum(j[1] for j in jobs)
    done, start = 0, time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for (line, job) in zip(pool.imap(_run_one, jobs), jobs):
            done += job[1]
            elapsed = time.perf_counter() - start
            eta = elapsed * (total - done) / max(done, 1)
            print(f"[{done}/{total} steps, ETA {eta / 60:.0f} min] {line}", flush=True)


def load(out: Path):
    import pandas as pd

    rows = [json.loads(line) for path in sorted(out.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows)


def summary(args) -> None:
    import pandas as pd

    curves = load(Path(args.out))
    if curves.empty:
        sys.exit(f"{args.out}: no runs yet; run 'budget_sensitivity.py run' first")
    final = curves.sort_values("step").groupby(["cell", "budget", "seed"]).tail(1)
    pd.set_option("display.width", 160)
    table = final.pivot_table(index=["budget", "cell"], columns="seed",
                              values=["val_per", "best_val_per"], aggfunc="first")
    print("final / best val PER by seed\n" + table.round(3).to_string())
    outcomes = final.groupby(["budget", "cell"])["outcome"].agg(lambda s: " ".join(s))
    print("\noutcomes by seed\n" + outcomes.to_string())
    print("\npaired effect on final val PER (cell minus official, same seed), mean over seeds")
    ref = final[final["cell"] == "official"].set_index(["budget", "seed"])["val_per"]
    for cell in CELLS:
        if cell == "official":
            continue
        sub = final[final["cell"] == cell].set_index(["budget", "seed"])["val_per"]
        diff = (sub - ref).dropna().groupby("budget").mean()
        print(f"  {cell:>18}: " + ", ".join(f"{b}: {d:+.3f}" for b, d in diff.items()))
    print("\nthe same effect over the run (fraction of the budget), budget "
          f"{max(curves['budget'])}")
    top = curves[curves["budget"] == curves["budget"].max()].copy()
    top["fraction"] = (top["step"] / top["budget"]).round(2)
    wide = top.pivot_table(index=["fraction"], columns="cell", values="val_per")
    for cell in CELLS:
        if cell != "official" and cell in wide:
            wide[f"{cell}-off"] = wide[cell] - wide["official"]
    print(wide[[c for c in wide.columns if c.endswith("-off")]].round(3).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--out", default="results/budget-sensitivity")
    p.add_argument("--budgets", type=int, nargs="+", default=[400, 800, 1600])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--workers", type=int, default=2)
    s = sub.add_parser("summary")
    s.add_argument("--out", default="results/budget-sensitivity")
    args = parser.parse_args()
    run(args) if args.command == "run" else summary(args)


if __name__ == "__main__":
    main()
