"""The official trainer's rnn_args.yaml, in and out.

A researcher's rnn_args.yaml (nejm-brain-to-text model_training/, the keys listed in
official_baseline.md section 4) is read as a training config: every key is mapped to this
project's config key, or is an output / logging / loader setting with no effect on the
training dynamics (listed as ignored, with the reason), or has a value this trainer does not
implement (one clear line naming the key). `explain` prints the mapping one line per key.
`to_official` writes a complete rnn_args.yaml from a config: every key the official
train_model.py / rnn_trainer.py reads, so a stable setting found here can be trained there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainable.errors import ConfigError
from trainable.tree import flatten, read_yaml, set_dotted

# official key -> this project's key. Keys under dataset.data_transforms map to augment.*.
MAPPED = {
    "model.n_input_features": "data.n_features",
    "model.n_units": "model.n_units",
    "model.rnn_dropout": "model.rnn_dropout",
    "model.n_layers": "model.n_layers",
    "model.patch_size": "model.patch_size",
    "model.patch_stride": "model.patch_stride",
    "model.input_network.input_layer_dropout": "model.input_dropout",
    "use_amp": "train.amp",
    "seed": "train.seed",
    "num_training_batches": "train.num_steps",
    "batches_per_val_step": "train.eval_every",
    "lr_scheduler_type": "optim.schedule",
    "lr_max": "optim.lr_max",
    "lr_min": "optim.lr_min",
    "lr_decay_steps": "optim.lr_decay_steps",
    "lr_warmup_steps": "optim.lr_warmup_steps",
    "lr_max_day": "optim.lr_max_day",
    "lr_min_day": "optim.lr_min_day",
    "lr_decay_steps_day": "optim.lr_decay_steps_day",
    "lr_warmup_steps_day": "optim.lr_warmup_steps_day",
    "beta0": "optim.beta1",      # the official names are shifted by one
    "beta1": "optim.beta2",
    "epsilon": "optim.eps",
    "weight_decay": "optim.weight_decay",
    "weight_decay_day": "optim.weight_decay_day",
    "grad_norm_clip_value": "optim.grad_clip",
    "dataset.neural_dim": "data.n_features",
    "dataset.batch_size": "data.batch_size",
    "dataset.n_classes": "model.n_classes",
    "dataset.days_per_batch": "data.days_per_batch",
    "dataset.seed": "data.seed",
    "dataset.sessions": "data.sessions",
    **{f"dataset.data_transforms.{k}": f"augment.{k}" for k in (
        "white_noise_std", "constant_offset_std", "random_walk_std", "random_walk_axis",
        "static_gain_std", "random_cut", "smooth_data", "smooth_kernel_size",
        "smooth_kernel_std")},
}

# official key -> (the only value this trainer implements, what to do otherwise)
REQUIRED = {
    "mode": ("train", "only training is supported; set mode: train"),
    "model.rnn_trainable": (True, "frozen GRU layers are not supported; set it true"),
    "model.input_network.input_trainable": (True, "frozen day layers are not supported"),
    "model.input_network.n_input_layers": (1, "one day layer per session is implemented"),
    "init_from_checkpoint": (False, "training starts from scratch here; set it false"),
    "early_stopping": (False, "studies train full budgets (early stopping is the "
                              "scheduler's job); set it false"),
    "dataset.loader_shuffle": (False, "batches come from the day sampler; set it false"),
    "dataset.must_include_days": (None, "not implemented; set it null"),
    "dataset.feature_subset": (None, "not implemented; set it null"),
    "dataset.bad_trials_dict": (None, "not implemented; remove bad trials from the files"),
}

# official key -> why it does not change training here
IGNORED = {
    "gpu_number": "the device is train.device (auto: CUDA when present)",
    "output_dir": "a study writes under --storage; a run prints its reports",
    "checkpoint_dir": "checkpoints are written by --save / by the study",
    "init_checkpoint_path": "only read when init_from_checkpoint is true",
    "save_best_checkpoint": "output only",
    "save_all_val_steps": "output only",
    "save_final_model": "output only",
    "save_val_metrics": "output only",
    "early_stopping_val_steps": "only read when early_stopping is true",
    "batches_per_train_log": "logging only",
    "batches_per_save": "output only",
    "log_individual_day_val_PER": "per-day PER is always reported",
    "log_val_skip_logs": "logging only",
    "save_val_logits": "output only",
    "save_val_data": "output only",
    "dataset.num_dataloader_workers": "batches are built ahead by one background thread "
                                      "(train.prefetch_batches)",
    "dataset.max_seq_elements": "unused by the official trainer",
    "dataset.test_percentage": "unused: the splits come from the data_train / data_val files",
    "dataset.dataset_probability_val": "every session with a data_val.hdf5 is validated",
    "dataset.dataset_dir": "the data folder, used when --data is not given (relative to "
                           "the config file's folder)",
    "model.input_network.input_layer_sizes": "must equal [n_input_features] (checked)",
}

# Values written for the keys that have no counterpart here (the official defaults).
OFFICIAL_ONLY = {
    "gpu_number": "1", "mode": "train", "output_dir": "trained_models/baseline_rnn",
    "checkpoint_dir": "trained_models/baseline_rnn/checkpoint", "init_checkpoint_path": "None",
    "save_best_checkpoint": True, "save_all_val_steps": False, "save_final_model": False,
    "save_val_metrics": True, "early_stopping": False, "early_stopping_val_steps": 20,
    "init_from_checkpoint": False, "batches_per_train_log": 200, "batches_per_save": 0,
    "log_individual_day_val_PER": True, "log_val_skip_logs": False, "save_val_logits": True,
    "save_val_data": False,
}


def is_official(tree: dict) -> bool:
    """An rnn_args.yaml has top-level lr_max / epsilon / num_training_batches and a
    dataset section, and none of this project's sections."""
    ours = {"optim", "train", "augment", "monitor", "loss"}
    return not (ours & tree.keys()) and bool(
        {"lr_max", "epsilon", "num_training_batches"} & tree.keys()) and "dataset" in tree


def from_official(tree: dict, source: str = "rnn_args.yaml") -> tuple[dict, list[str]]:
    """(this project's config tree, one explanation line per official key). Unknown keys
    and unsupported values raise ConfigError naming the key."""
    flat = flatten(tree, leaves=("dataset.bad_trials_dict",))
    ours: dict = {}
    lines = []
    for key, value in flat.items():
        if key in MAPPED:
            target = MAPPED[key]
            if key == "dataset.neural_dim" and "model.n_input_features" in flat and \
                    value != flat["model.n_input_features"]:
                raise ConfigError(f"{source}: dataset.neural_dim={value!r} differs from "
                                  f"model.n_input_features={flat['model.n_input_features']!r};"
                                  " make them equal")
            if key == "grad_norm_clip_value" and not value:
                raise ConfigError(f"{source}: grad_norm_clip_value={value!r}: training "
                                  "without clipping is not supported; give a positive value")
            set_dotted(ours, target, value)
            lines.append(f"{key} = {value!r} -> {target}")
        elif key in REQUIRED:
            wanted, advice = REQUIRED[key]
            if value != wanted and not (wanted is None and value in ("None", "null")):
                raise ConfigError(f"{source}: {key}={value!r} is not supported: {advice}")
            lines.append(f"{key} = {value!r} -> required value, nothing to set")
        elif key in IGNORED:
            if key == "model.input_network.input_layer_sizes":
                n = flat.get("model.n_input_features", flat.get("dataset.neural_dim"))
                if list(value or []) != [n]:
                    raise ConfigError(f"{source}: {key}={value!r}: the day layer maps "
                                      f"n_input_features to itself; set it to [{n}]")
            lines.append(f"{key} = {value!r} -> ignored: {IGNORED[key]}")
        else:
            raise ConfigError(f"{source}: unknown official key {key!r}; remove it or check "
                              "the spelling against the official rnn_args.yaml")
    # The official run compiles the model and uses autocast on CUDA; CPU runs use neither.
    set_dotted(ours, "train.compile", True)
    set_dotted(ours, "train.device", "auto")
    set_dotted(ours, "train.prefetch_batches", 2)
    lines.append("(not in rnn_args.yaml) -> train.compile: true, train.device: auto, "
                 "train.prefetch_batches: 2, as the official trainer (compile and bf16 "
                 "autocast apply on CUDA only; its loader workers build batches ahead)")
    return ours, lines


def official_data_dir(config_path: str | Path | None) -> str | None:
    """dataset.dataset_dir of an official rnn_args.yaml, relative to the file's folder (the
    official trainer runs from model_training/, next to the file); None for the project's
    own format or when the key is absent."""

    if config_path is None:
        return None
    tree = read_yaml(config_path)
    if not is_official(tree):
        return None
    raw = (tree.get("dataset") or {}).get("dataset_dir")
    if not raw:
        return None
    path = Path(str(raw)).expanduser()
    return str(path if path.is_absolute() else Path(config_path).resolve().parent / path)


def to_official(cfg, sessions: list[str], val_sessions: set[str] | None = None,
                dataset_dir: str = "../data/hdf5_data_final") -> dict:
    """A complete official rnn_args.yaml for `cfg` (a trainable.config.Config). A trainer
    difference the official trainer has no key for (trainable.variants) cannot be written:
    ConfigError names it rather than writing a file that trains something else."""
    from trainable.variants import training_differences

    differing = training_differences(cfg)
    if differing:
        raise ConfigError("the official trainer has no rnn_args.yaml key for "
                          + ", ".join(f"{k}={v!r}" for k, v in differing.items())
                          + "; set the official value to export this config")
    o, d, m, a, t = cfg.optim, cfg.data, cfg.model, cfg.augment, cfg.train
    day_max, day_min, day_warmup, day_decay = o.day_schedule()
    val = set(sessions) if val_sessions is None else val_sessions
    out: dict[str, Any] = {
        "model": {
            "n_input_features": d.n_features, "n_units": m.n_units,
            "rnn_dropout": m.rnn_dropout, "rnn_trainable": True, "n_layers": m.n_layers,
            "patch_size": m.patch_size, "patch_stride": m.patch_stride,
            "input_network": {"n_input_layers": 1, "input_layer_sizes": [d.n_features],
                              "input_trainable": True,
                              "input_layer_dropout": m.input_dropout},
        },
        **{k: v for k, v in OFFICIAL_ONLY.items() if k in ("gpu_number", "mode")},
        "use_amp": t.amp, **{k: v for k, v in OFFICIAL_ONLY.items()
                             if k not in ("gpu_number", "mode")},
        "num_training_batches": t.num_steps, "lr_scheduler_type": o.schedule,
        "lr_max": o.lr_max, "lr_min": o.lr_min, "lr_decay_steps": o.lr_decay_steps,
        "lr_warmup_steps": o.lr_warmup_steps, "lr_max_day": day_max, "lr_min_day": day_min,
        "lr_decay_steps_day": day_decay, "lr_warmup_steps_day": day_warmup,
        "beta0": o.beta1, "beta1": o.beta2, "epsilon": o.eps,
        "weight_decay": o.weight_decay, "weight_decay_day": o.weight_decay_day,
        "seed": t.seed, "grad_norm_clip_value": o.grad_clip,
        "batches_per_val_step": t.eval_every,
        "dataset": {
            "data_transforms": {k: getattr(a, k) for k in (
                "white_noise_std", "constant_offset_std", "random_walk_std",
                "random_walk_axis", "static_gain_std", "random_cut", "smooth_data",
                "smooth_kernel_size", "smooth_kernel_std")},
            "neural_dim": d.n_features, "batch_size": d.batch_size, "n_classes": m.n_classes,
            "max_seq_elements": 500, "days_per_batch": d.days_per_batch, "seed": d.seed,
            "num_dataloader_workers": 4, "loader_shuffle": False, "must_include_days": None,
            "test_percentage": 0.1, "feature_subset": None, "dataset_dir": dataset_dir,
            "bad_trials_dict": None, "sessions": list(sessions),
            "dataset_probability_val": [1 if s in val else 0 for s in sessions],
        },
    }
    return out
