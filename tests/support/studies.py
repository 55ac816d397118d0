"""Tiny studies: the `--set` overrides that make a trial take a second, preset and
claims files to run them with, and the study CLI called in-process."""

from __future__ import annotations

from pathlib import Path

import yaml

# `python -m trainable` / load_config overrides for a tiny model on the h5 fixture's data.
TINY_OVERRIDES = {
    "data.n_features": 16, "data.batch_size": 8, "data.days_per_batch": 2,
    "model.n_units": 24, "model.n_layers": 2, "train.num_steps": 12, "train.eval_every": 4,
    "optim.lr_warmup_steps": 2, "optim.lr_decay_steps": 12, "train.num_threads": 1,
}

# The same for a study's trials, as `--set` flags.
TINY_SET = [
    "--set", "data.n_features=16", "--set", "data.batch_size=8",
    "--set", "data.days_per_batch=2", "--set", "model.n_units=16",
    "--set", "model.n_layers=1",
]


def write_preset(path: Path, **fields) -> Path:
    preset = {
        "name": "tiny", "search": "grid", "scheduler": "fifo",
        "blocks": [{"eps": {"values": [1e-8, 0.1]}, "lr_max": {"values": [0.002, 0.005]}}],
        "seeds": 2,
        "budgets": {"default": {"steps": 8, "eval_every": 2}},
        "primary_hypothesis": None, "claims": None,
    }
    preset.update(fields)
    path.write_text(yaml.safe_dump(preset))
    return path


def write_claims(path: Path) -> Path:
    """One claim the tiny studies cannot decide in a few seeds: 14 divergence-free seeds of
    one cell are needed to support it."""
    path.write_text(yaml.safe_dump({"claims": [{
        "id": "fast_cell_stable", "text": "eps 0.1, lr 0.005 does not diverge",
        "test": "rate_bound", "outcomes": ["diverged"],
        "cell": {"eps": 0.1, "lr_max": 0.005}, "max_rate": 0.3}]}))
    return path


def adaptive_preset(tmp_path: Path, steps: int = 8, eval_every: int = 2) -> Path:
    return write_preset(tmp_path / "adaptive.yaml", name="adaptive", seeds=1,
                        claims=str(write_claims(tmp_path / "claims.yaml")),
                        adaptive={"max_trials": 8, "wave_trials": 4},
                        budgets={"default": {"steps": steps, "eval_every": eval_every}})


STEPS, EVAL_EVERY = 100, 10  # 11 evaluations, a checkpoint every 2 (study.run)


def tiny_grid(path: Path, name: str, lr_max=(0.002, 0.005), eps=(1e-8, 0.1), seeds=2,
              steps=STEPS) -> Path:
    blocks = [{"eps": {"values": list(eps)}, "lr_max": {"values": list(lr_max)}}]
    return write_preset(path, name=name, blocks=blocks, seeds=seeds,
                        budgets={"default": {"steps": steps, "eval_every": EVAL_EVERY}})


def run_cli(*argv) -> int:
    """`python -m study.run` in this process, every argument as a string."""
    from study.run import main

    return main([str(a) for a in argv])
