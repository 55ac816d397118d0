"""Tiny hand-made datasets in the Brain-to-Text '25 layout, with optional defects."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def write_trial(group: h5py.Group, features: np.ndarray, labels: list[int] | None,
                session: str, block: int, trial: int, pad_to: int = 500,
                drop: tuple[str, ...] = (), seq_len: int | None = None) -> None:
    if "input_features" not in drop:
        group.create_dataset("input_features", data=features.astype(np.float32))
    group.attrs["n_time_steps"] = features.shape[0]
    group.attrs["session"] = session
    group.attrs["block_num"] = block
    group.attrs["trial_num"] = trial
    if labels is not None:
        ids = np.zeros(pad_to, dtype=np.int32)
        ids[: len(labels)] = labels
        if "seq_class_ids" not in drop:
            group.create_dataset("seq_class_ids", data=ids)
        text = np.zeros(pad_to, dtype=np.int32)
        group.create_dataset("transcription", data=text)
        group.attrs["seq_len"] = len(labels) if seq_len is None else seq_len
        group.attrs["sentence_label"] = "test"


def write_dataset(root: Path, n_sessions: int = 3, n_train: int = 6, n_val: int = 3,
                  n_features: int = 16, n_frames: int = 80, n_labels: int = 6, seed: int = 0,
                  defect: str | None = None) -> Path:
    """Write <root>/<session>/data_{train,val}.hdf5. `defect` plants one problem in
    session 0's train file: missing_features, missing_attr, nan, label_range, seq_len_long,
    too_short, all_too_short, wrong_features."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for s in range(n_sessions):
        session = f"t15.2023.08.{11 + s:02d}"
        (root / session).mkdir(exist_ok=True)
        for split, n in (("train", n_train), ("val", n_val)):
            with h5py.File(root / session / f"data_{split}.hdf5", "w") as f:
                for t in range(n):
                    labels = list(rng.integers(1, 41, n_labels))
                    x = rng.standard_normal((n_frames, n_features))
                    kwargs: dict = {}
                    planted = s == 0 and split == "train" and (t == 1 or defect ==
                                                                  "all_too_short")
                    if planted or (defect == "all_too_short" and split == "train"):
                        if defect == "missing_features":
                            kwargs["drop"] = ("input_features",)
                        elif defect == "nan":
                            x[3, 2] = np.nan
                        elif defect == "label_range":
                            labels[0] = 41
                        elif defect == "seq_len_long":
                            kwargs["seq_len"] = 501
                        elif defect in ("too_short", "all_too_short"):
                            x = x[:16]
                        elif defect == "wrong_features":
                            x = rng.standard_normal((n_frames, n_features + 1))
                    grp = f.create_group(f"trial_{t:04d}")
                    write_trial(grp, x, labels, session, block=t // 3, trial=t, **kwargs)
                    if planted and defect == "missing_attr":
                        del grp.attrs["n_time_steps"]
    return root


def write_trials(root: Path, trials: dict[str, dict[str, list[tuple[int, list[int]]]]],
                 n_features: int = 16, seed: int = 0) -> Path:
    """Write exactly the given trials: {session: {split: [(n_frames, labels), ...]}}, with
    random features, for tests that need chosen lengths and labels."""
    rng = np.random.default_rng(seed)
    for session, splits in trials.items():
        (root / session).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            with h5py.File(root / session / f"data_{split}.hdf5", "w") as f:
                for t, (n_frames, labels) in enumerate(rows):
                    write_trial(f.create_group(f"trial_{t:04d}"),
                                rng.standard_normal((n_frames, n_features)), labels,
                                session, block=0, trial=t)
    return root
