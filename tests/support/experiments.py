"""Fake Ray Tune experiment folders written from a planted outcome model.

`write_fake_experiment` lays out what `study.run` leaves behind (study.yaml, one Tune trial
folder per run with params.json / result.json / progress.csv, error.txt for a crash), with
every report carrying trainable.contract's METRICS and REPORT_EXTRAS, so the analysis can
be tested fast and deterministically without Ray or training.

A planted model maps a cell {eps, lr_max, white_noise_std, constant_offset_std} and a
numpy Generator to a `Planted(outcome, final_per)`; the writer turns that into curves.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from trainable.contract import SENTINEL_GRAD_NORM, SENTINEL_LOSS, SENTINEL_PER

GRID: dict[str, list[float]] = {
    "eps": [1e-8, 0.1],
    "lr_max": [0.002, 0.005],
    "white_noise_std": [0.25, 1.0],
    "constant_offset_std": [0.05, 0.2],
}
AXIS_KEYS = {"eps": "optim.eps", "lr_max": "optim.lr_max",
             "white_noise_std": "augment.white_noise_std",
             "constant_offset_std": "augment.constant_offset_std"}
# The training config's axis values: what a block holds its other axes at.
BASE = {"eps": 0.1, "lr_max": 0.005, "white_noise_std": 1.0, "constant_offset_std": 0.2}
INITIAL_PER = 1.05
INITIAL_LOSS = 700.0


@dataclass(frozen=True)
class Planted:
    outcome: str
    final_per: float
    speed: float = 1.0  # >1 converges more slowly


Model = Callable[[dict, np.random.Generator], Planted]


def diagnosis_model(cell: dict, rng: np.random.Generator) -> Planted:
    """The practitioner's diagnosis as the planted truth: eps=1e-8 blows up, weak
    augmentation or low lr at eps=0.1 collapses, the official cell is stable."""
    tiny_eps = cell["eps"] < 1e-4
    weak = cell["white_noise_std"] < 0.5 and cell["constant_offset_std"] < 0.1
    low_lr = cell["lr_max"] < 0.003
    per = float(rng.normal(0.22 + 0.04 * low_lr, 0.015))
    if tiny_eps and rng.random() < 0.8:
        return Planted("diverged" if rng.random() < 0.6 else "exploding", per)
    if not tiny_eps and weak and rng.random() < 0.9:
        return Planted("blank_collapse", 1.0)
    if not tiny_eps and low_lr and rng.random() < 0.7:
        return Planted("blank_collapse", 1.0)
    return Planted("stable", per, speed=2.5 if low_lr else 1.0)


def null_model(cell: dict, rng: np.random.Generator) -> Planted:
    """Every run stable; PER depends on nothing."""
    return Planted("stable", float(rng.normal(0.25, 0.02)))


def official_failing_model(cell: dict, rng: np.random.Generator) -> Planted:
    """Like the diagnosis, except the official cell collapses in most runs."""
    planted = diagnosis_model(cell, rng)
    official = (cell["eps"] == 0.1 and cell["lr_max"] == 0.005
                and cell["white_noise_std"] == 1.0 and cell["constant_offset_std"] == 0.2)
    if official and rng.random() < 0.8:
        return Planted("blank_collapse", 1.0)
    return planted


def boundary_model(boundary_lr: Callable[[float], float], side: str = "lower") -> Model:
    """Runs fail (outcome slow) on one side of a planted boundary lr of each eps: below it
    (side lower) or above it (side upper, diverged)."""
    def model(cell: dict, rng: np.random.Generator) -> Planted:
        below = cell["lr_max"] < boundary_lr(cell["eps"])
        if side == "lower":
            return Planted("slow", 0.9) if below else Planted("stable",
                                                               float(rng.normal(0.25, 0.01)))
        return Planted("stable", float(rng.normal(0.25, 0.01))) if below else Planted(
            "diverged", 1.0)
    return model


def planted_trials(model: Model, n_seeds: int, seed: int, grid: dict | None = None
                   ) -> pd.DataFrame:
    """The trial table the loader would produce, straight from the model (no files)."""
    rng = np.random.default_rng(seed)
    grid = grid or GRID
    rows = []
    for values in itertools.product(*grid.values()):
        cell = dict(zip(grid, values))
        for s in range(n_seeds):
            planted = model(cell, rng)
            rows.append({**cell, "seed": s, "trial_id": f"t{len(rows):05d}",
                         "status": "diverged" if planted.outcome == "diverged"
                         else "finished", "outcome": planted.outcome,
                         "final_val_per": SENTINEL_PER if planted.outcome == "diverged"
                         else planted.final_per, "initial_val_per": INITIAL_PER,
                         "median_eps_dominance": 0.9 if cell.get("eps", 0.1) > 1e-3 else 0.0,
                         "budget_steps": 1000.0})
    return pd.DataFrame(rows)


def _curve(planted: Planted, cell: dict, budget: int, eval_every: int, stop_at: int | None,
           rng: np.random.Generator) -> list[dict]:
    """Reports of one run at the loop's evaluation steps (1, 1+k*eval_every, budget)."""
    steps = sorted({1, *range(1 + eval_every, budget, eval_every), budget})
    if stop_at is not None:
        steps = [s for s in steps if s <= stop_at]
    if planted.outcome == "diverged":
        steps = steps[: max(2, int(len(steps) * rng.uniform(0.3, 0.7)))]
    tau = budget / 6 * planted.speed
    dominance = 0.9 if cell["eps"] > 1e-3 else 0.01
    rows, best = [], math.inf
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        progress = 1 - math.exp(-(step - 1) / tau)
        per = INITIAL_PER + (planted.final_per - INITIAL_PER) * progress
        blank = 0.95 - 0.5 * progress
        outcome = "stable"
        if planted.outcome == "blank_collapse":
            per, blank = min(INITIAL_PER, 1.0 + 0.01 * rng.random()), 1.0
            outcome = "blank_collapse" if step >= 0.25 * budget else "stable"
        grad = float(rng.lognormal(1.5, 0.2))
        if planted.outcome == "exploding" and i == len(steps) // 2:
            grad *= 200
        if planted.outcome == "exploding" and i >= len(steps) // 2:
            outcome = "exploding"
        if planted.outcome == "slow" and last:
            outcome = "slow"
        diverged_now = planted.outcome == "diverged" and last
        if diverged_now:
            outcome = "diverged"
        loss = SENTINEL_LOSS if diverged_now else INITIAL_LOSS * (0.2 + 0.8 * per)
        per = SENTINEL_PER if diverged_now else per
        best = min(best, per)
        rows.append({
            "step": step, "train_loss": loss * 1.1, "val_loss": loss, "val_per": per,
            "lr": cell["lr_max"], "grad_norm_mean": grad / 2,
            "grad_norm_max": SENTINEL_GRAD_NORM if diverged_now else grad,
            "clip_fraction": 0.1, "nonfinite_steps": int(diverged_now),
            "blank_fraction": 1.0 if diverged_now else blank,
            "unique_phonemes": 0 if blank >= 1.0 else 38,
            "eps_dominance": dominance if step > 1 else 1.0, "steps_per_s": 5.0,
            "collapsed": int(outcome == "blank_collapse"), "diverged": int(diverged_now),
            "exploded": int(planted.outcome == "exploding" and i >= len(steps) // 2),
            "outcome": outcome, "completed": int(diverged_now or step == budget),
            "budget_steps": budget, "best_val_per": best,
            "initial_val_loss": INITIAL_LOSS * (0.2 + 0.8 * INITIAL_PER),
            "initial_val_per": INITIAL_PER,
        })
    return rows


def _write_trial(root: Path, index: int, sample: dict, rows: list[dict], error: bool,
                 restarted: bool = False) -> Path:
    name = ",".join(f"{k}={v:.4g}" for k, v in sample.items() if k != "seed")
    folder = root / f"tune_trainable_a1b2c_{index:05d}_{index}_{name}_2026-11-25_18-00-00"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(sample))
    trial_id = f"a1b2c_{index:05d}"
    records = []
    for it, row in enumerate(rows, start=1):
        records.append({**row, "training_iteration": it, "trial_id": trial_id,
                        "time_total_s": 2.0 * it, "timestamp": 1764093600 + it,
                        "date": "2026-11-25_18-00-00", "hostname": "fake", "pid": 1,
                        "config": dict(sample), "time_this_iter_s": 2.0})
    if restarted and len(records) > 3:
        # A trial restored from a checkpoint repeats its reports since that checkpoint.
        records = records[:-1] + records[-3:-1] + records[-1:]
    with open(folder / "result.json", "w") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    pd.DataFrame([{k: v for k, v in r.items() if k != "config"} for r in records]).to_csv(
        folder / "progress.csv", index=False)
    if records:
        (folder / "checkpoint_000000").mkdir()
    if error:
        (folder / "error.txt").write_text(
            "Failure # 1 (occurred at 2026-11-25_18-05-00)\nTraceback (most recent call "
            "last):\n  ...\nRuntimeError: CUDA out of memory (fake)\n")
    return folder


def write_fake_experiment(root: str | Path, *, model: Model = diagnosis_model,
                          n_seeds: int = 3, grid: dict | None = None, budget: int = 1000,
                          eval_every: int = 100, seed: int = 0, name: str = "fake",
                          kind: str = "confirmatory", n_errored: int = 1,
                          n_stopped_early: int = 1, claims: str | None = "claims.yaml",
                          primary: dict | None = None,
                          samples: list[dict] | None = None, axes_spec: dict | None = None,
                          scheduler_stop: float = 0.0, blocks: list[dict] | None = None,
                          boundary: dict | None = None, refined: list[dict] | None = None
                          ) -> Path:
    """Write a complete fake experiment folder under root/name and return its path.

    Runs: every cell of `grid` x `n_seeds`; or the union of `blocks` (each {axis: values},
    the other axes at BASE, as study/presets.py builds a multi-block grid); or the given
    `samples` (a random / TPE search; pass `axes_spec` for study.yaml then). Besides those,
    `n_errored` extra runs crash (error.txt, no final report; the first one before any
    report) and `n_stopped_early` extra runs stop at 40% of the budget as an ASHA stop
    would, all at BASE; `scheduler_stop` is the share of the other runs a scheduler stops
    at 30% of the budget (unless they diverged before). The first run is written as if
    restored from a checkpoint (repeated steps in result.json). `boundary` goes to
    study.yaml as the map's boundary; `refined` samples are written as a second wave
    (wave-02/), as a map's refinement wave adds them.
    """
    rng = np.random.default_rng(seed)
    grid = grid or GRID
    path = Path(root) / name
    path.mkdir(parents=True)
    if blocks is not None:
        grid = {a: sorted({v for b in blocks for v in b.get(a, [BASE[a]])}) for a in BASE}
        cells = []
        for block in blocks:
            for values in itertools.product(*block.values()):
                cell = {**BASE, **dict(zip(block, values))}
                if cell not in cells:
                    cells.append(cell)
        samples = [{**cell, "seed": s} for cell in cells for s in range(n_seeds)]
    if samples is None:
        samples = [{**dict(zip(grid, values)), "seed": s}
                   for values in itertools.product(*grid.values()) for s in range(n_seeds)]
    index = 0
    for sample in samples:
        cell = {k: v for k, v in sample.items() if k != "seed"}
        planted = model(cell, rng)
        stop_at = int(budget * 0.3) if rng.random() < scheduler_stop else None
        rows = _curve(planted, cell, budget, eval_every, stop_at, rng)
        _write_trial(path, index, sample, rows, False, restarted=index == 0)
        index += 1
    for sample in refined or []:
        cell = {k: v for k, v in sample.items() if k != "seed"}
        rows = _curve(model(cell, rng), cell, budget, eval_every, None, rng)
        (path / "wave-02").mkdir(exist_ok=True)
        _write_trial(path / "wave-02", index, sample, rows, False)
        index += 1
    for k in range(n_errored):
        rows = [] if k == 0 else _curve(Planted("stable", 0.2), BASE, budget, eval_every,
                                        budget // 3, rng)
        _write_trial(path, index, {**BASE, "seed": 100 + k}, rows, True)
        index += 1
    for k in range(n_stopped_early):
        rows = _curve(Planted("stable", 0.2), BASE, budget, eval_every, int(budget * 0.4),
                      rng)
        _write_trial(path, index, {**BASE, "seed": 200 + k}, rows, False)
        index += 1
    axes = axes_spec or {a: {"key": AXIS_KEYS.get(a, a), "values": list(v)}
                         for a, v in grid.items()}
    if blocks:
        block_records = [{"axes": list(b), "fixed": {a: BASE[a] for a in axes if a not in b}}
                         for b in blocks]
    else:
        block_records = [{"axes": list(axes)}]
    claims_record = None
    if claims is not None:
        from analysis.claims import load_claims, resolve_claims_path

        claims_path = resolve_claims_path(claims)
        claims_record = {"path": str(claims_path), "sha256": load_claims(claims_path).sha256}
    study = {
        "name": name, "preset": "grid" if axes_spec is None else "asha", "kind": kind,
        "search": "grid" if axes_spec is None else "random",
        "scheduler": "fifo" if kind == "confirmatory" else "asha",
        "axes": axes, "blocks": block_records,
        "seeds": list(range(n_seeds)), "n_trials": len(samples), "budget": "default",
        "budget_steps": budget, "eval_every": eval_every, "metric": "val_per",
        "mode": "min", "primary_hypothesis": primary, "claims": claims_record,
        "boundary": boundary,
        "train_config_file": "configs/train/proxy.yaml", "resources": {"cpus_per_trial": 1},
        "preset_config": {"blocks": [{a: {"values": list(v)} for a, v in b.items()}
                                     for b in blocks]} if blocks else {},
        "train_config": {"optim": {"eps": BASE["eps"], "lr_max": BASE["lr_max"],
                                   "lr_warmup_steps": budget // 10, "lr_decay_steps": budget},
                         "data": {"n_features": 64},
                         "model": {"n_units": 128, "n_layers": 2, "patch_size": 14},
                         "augment": {"white_noise_std": BASE["white_noise_std"],
                                     "constant_offset_std": BASE["constant_offset_std"]},
                         "monitor": {"collapse_grace_fraction": 0.25,
                                     "collapse_emit_ratio": 0.1, "diverge_loss_factor": 3.0,
                                     "explode_factor": 50.0, "slow_per": 0.5},
                         "train": {"num_steps": budget, "eval_every": eval_every}},
        "data": {"path": "synthetic", "synthetic": True, "fingerprint": "sha256:fake0123",
                 "n_sessions": 4, "n_train_trials": 400, "n_val_trials": 80},
        "versions": {"ray": "2.60.0", "torch": "2.13.0"},
        "cli": "python -m study.run grid --name fake", "started": "2026-11-25T18:00:00",
    }
    (path / "study.yaml").write_text(yaml.safe_dump(
        {k: v for k, v in study.items() if v is not None}, sort_keys=False))
    # Tune's own state files, which the analysis must ignore.
    (path / "experiment_state-2026-11-25_18-00-00.json").write_text("{}")
    (path / "tuner.pkl").write_bytes(b"\x80\x04N.")
    return path
