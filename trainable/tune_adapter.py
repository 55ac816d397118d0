"""The Ray Tune function trainable: a thin shell around TrainingRun.

Only `ray.tune.*` names are used (Ray 2.60: ray.train.report fails inside Tune trials).
A sampled config such as {eps, lr_max, white_noise_std, constant_offset_std, seed} becomes
config overrides through the study's axis table; every evaluation is one `tune.report`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from trainable.config import build_config, set_dotted
from trainable.contract import AXES, DAY_PER_PREFIX
from trainable.data import Dataset, open_dataset
from trainable.errors import ConfigError

CHECKPOINT_FILE = "state.pt"


def sample_to_overrides(sample: dict[str, Any], axes: dict[str, str] | None = None,
                        levels: dict[str, list] | None = None) -> dict[str, Any]:
    """Map a Tune sample onto dotted config keys.

    Axis names go through `axes` (default: the four product axes); dotted names are config
    keys already; `cell` and `job` (indices into the design) are skipped; `seed` sets both
    the training seed (init, dropout) and the data seed (batch sampler, augmentation): seed
    k is replicate k in every cell (common random numbers), and different seeds are
    independent replicates. An axis in `levels` is a factor: its sampled value is the
    index of the config value it sets (study/presets.py AxisSpec.levels).
    """
    axes = AXES if axes is None else axes
    levels = levels or {}
    overrides: dict[str, Any] = {}
    for name, value in sample.items():
        if name in ("cell", "job"):  # indices into the design: labels, not settings
            continue
        if name == "seed":
            overrides["train.seed"] = int(value)
            overrides["data.seed"] = int(value)
        elif name in levels:
            overrides[axes[name]] = levels[name][int(value)]
        elif name in axes:
            overrides[axes[name]] = value
        elif "." in name:
            overrides[name] = value
        else:
            raise ConfigError(f"sampled parameter {name!r} is neither a study axis "
                              f"({', '.join(axes)}) nor a dotted config key")
    return overrides


def resolve_trial_config(sample: dict, base_config: dict, axes: dict[str, str] | None = None,
                         levels: dict[str, list] | None = None):
    tree = {section: dict(values) for section, values in base_config.items()}
    for key, value in sample_to_overrides(sample, axes, levels).items():
        set_dotted(tree, key, value)
    return build_config(tree, source="trial config")


def flat_report(report: dict) -> dict:
    """A report as Tune stores it: every value a number or a label, the per-day PER as one
    key per session (contract.DAY_PER_PREFIX)."""
    flat = {k: v for k, v in report.items() if k != "val_per_by_day"}
    flat.update({f"{DAY_PER_PREFIX}{day}": per
                 for day, per in report.get("val_per_by_day", {}).items()})
    return flat


def tune_trainable(config: dict, *, base_config: dict, dataset: Dataset | str,
                   axes: dict[str, str] | None = None, checkpoint_every: int = 2,
                   levels: dict[str, list] | None = None) -> None:
    """Ray Tune function trainable.

    `dataset` is a Dataset (shared through Ray's object store by tune.with_parameters),
    the folder of a Dataset.save_cache, memory-mapped by every trial (for data too large to
    copy into the object store), or an object whose open() gives the Dataset (packed data
    on cloud storage that each node fetches once: study.datashare.PackedData). A
    checkpoint is written every `checkpoint_every` evaluations and with the last report; a
    restored trial continues from it.
    """
    from ray import tune

    from trainable.loop import TrainingRun

    cfg = resolve_trial_config(config, base_config, axes, levels)
    run = TrainingRun(cfg, open_dataset(dataset))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            run.load(Path(directory) / CHECKPOINT_FILE)
    if run.finished:  # restored from the final checkpoint: nothing left to do
        return
    for n_eval, report in enumerate(run, start=1):
        report = flat_report(report)
        if report["completed"] or n_eval % checkpoint_every == 0:
            with tempfile.TemporaryDirectory() as tmp:
                run.save(Path(tmp) / CHECKPOINT_FILE)
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(report)
