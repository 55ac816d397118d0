"""An official-format rnn_args.yaml for tests, written from official_baseline.md section 4."""

from pathlib import Path

import yaml

from trainable.config import load_config

OFFICIAL_SESSIONS = load_config("configs/train/official.yaml").data.sessions


def official_args(**changes) -> dict:
    """An rnn_args.yaml in the official layout with the values of official_baseline.md
    section 4 (written from that list, key by key)."""
    tree = {
        "model": {"n_input_features": 512, "n_units": 768, "rnn_dropout": 0.4,
                  "rnn_trainable": True, "n_layers": 5, "patch_size": 14, "patch_stride": 4,
                  "input_network": {"n_input_layers": 1, "input_layer_sizes": [512],
                                    "input_trainable": True, "input_layer_dropout": 0.2}},
        "gpu_number": "1", "mode": "train", "use_amp": True,
        "output_dir": "trained_models/baseline_rnn",
        "checkpoint_dir": "trained_models/baseline_rnn/checkpoint",
        "init_from_checkpoint": False, "init_checkpoint_path": "None",
        "save_best_checkpoint": True, "save_all_val_steps": False, "save_final_model": False,
        "save_val_metrics": True, "early_stopping": False, "early_stopping_val_steps": 20,
        "num_training_batches": 120000, "lr_scheduler_type": "cosine", "lr_max": 0.005,
        "lr_min": 0.0001, "lr_decay_steps": 120000, "lr_warmup_steps": 1000,
        "lr_max_day": 0.005, "lr_min_day": 0.0001, "lr_decay_steps_day": 120000,
        "lr_warmup_steps_day": 1000, "beta0": 0.9, "beta1": 0.999, "epsilon": 0.1,
        "weight_decay": 0.001, "weight_decay_day": 0, "seed": 10, "grad_norm_clip_value": 10,
        "batches_per_train_log": 200, "batches_per_val_step": 2000, "batches_per_save": 0,
        "log_individual_day_val_PER": True, "log_val_skip_logs": False,
        "save_val_logits": True, "save_val_data": False,
        "dataset": {
            "data_transforms": {"white_noise_std": 1.0, "constant_offset_std": 0.2,
                                "random_walk_std": 0.0, "random_walk_axis": -1,
                                "static_gain_std": 0.0, "random_cut": 3,
                                "smooth_kernel_size": 100, "smooth_data": True,
                                "smooth_kernel_std": 2},
            "neural_dim": 512, "batch_size": 64, "n_classes": 41, "max_seq_elements": 500,
            "days_per_batch": 4, "seed": 1, "num_dataloader_workers": 4,
            "loader_shuffle": False, "must_include_days": None, "test_percentage": 0.1,
            "feature_subset": None, "dataset_dir": "../data/hdf5_data_final",
            "bad_trials_dict": None, "sessions": list(OFFICIAL_SESSIONS),
            "dataset_probability_val": [0 if i in (0, 28, 32, 33) else 1
                                        for i in range(45)]},
    }
    for dotted, value in changes.items():
        node = tree
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return tree


def write(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path
