"""Brain-to-Text '25 HDF5 reader, validation, packed storage and the official day-batch sampler.

Layout (nejm-brain-to-text README, model_training/dataset.py):
``<root>/<session>/data_{train,val,test}.hdf5``, groups ``trial_0000``... with dataset
``input_features`` [T, n_features] float32, ``seq_class_ids`` (zero-padded, first ``seq_len``
valid), ``transcription``, and attrs ``n_time_steps``, ``seq_len``, ``sentence_label``,
``session``, ``block_num``, ``trial_num``. Test files carry no labels.

Every split is packed into a few flat arrays (one float32 feature matrix plus offsets), so a
single copy can sit in Ray's object store and every trial on a node reads it zero-copy.
For the real dataset (8,072 train trials x ~875 bins x 512 features x 4 bytes = about 14 GB)
``Dataset.save_cache`` writes the packed arrays as .npy files once and ``Dataset.load_cache``
memory-maps them: every trial process then shares the operating system's page cache instead
of holding its own copy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import h5py
import numpy as np

from trainable.config import Config
from trainable.errors import DataError

SPLITS = ("train", "val", "test")


def patched_length(n_frames, patch_size: int, stride: int):
    """Number of unfolded patches: floor((T - patch)/stride) + 1, no padding (official).
    For an int, a numpy array or a torch tensor of frame counts (trainable.model's output
    lengths are this)."""
    return (n_frames - patch_size) // stride + 1


def frames_for_outputs(n_outputs: int, patch_size: int, stride: int) -> int:
    """Fewest frames that give `n_outputs` patches: the inverse of patched_length (the
    synthetic generators size their trials with it)."""
    return patch_size + stride * (n_outputs - 1)


def ctc_min_frames(labels: np.ndarray) -> int:
    """Fewest output frames CTC needs for a label sequence: one per label plus one blank
    between each pair of equal neighbours (a shorter input has zero probability, so an
    infinite loss)."""
    labels = np.asarray(labels)
    return int(len(labels) + np.count_nonzero(labels[1:] == labels[:-1]))


@dataclass
class PackedSplit:
    """All trials of one split. Trial i has features[offsets[i]:offsets[i]+n_frames[i]]."""

    features: np.ndarray  # float32 [sum of T, n_features]
    offsets: np.ndarray  # int64 [N]
    n_frames: np.ndarray  # int64 [N]
    labels: np.ndarray  # int64 [N, max label length], zero padded (empty for test)
    label_lens: np.ndarray  # int64 [N]
    day: np.ndarray  # int64 [N] day index (position of the session in Dataset.sessions)
    block: np.ndarray  # int64 [N]
    trial: np.ndarray  # int64 [N] index of the trial_NNNN group in its file

    def __len__(self) -> int:
        return len(self.offsets)

    def trials_of_day(self, day: int) -> np.ndarray:
        return np.flatnonzero(self.day == day)

    @property
    def days(self) -> np.ndarray:
        return np.unique(self.day)

    def batch(self, indices) -> dict:
        """Zero-padded batch of the given trials (as the official pad_sequence collate)."""
        import torch  # here, so that reading and validating data does not load torch

        indices = np.asarray(indices)
        lens = self.n_frames[indices]
        t_max = int(lens.max())
        x = np.zeros((len(indices), t_max, self.features.shape[1]), dtype=np.float32)
        for row, i in enumerate(indices):
            start = self.offsets[i]
            x[row, : lens[row]] = self.features[start : start + lens[row]]
        s_max = max(int(self.label_lens[indices].max()), 1) if self.labels.size else 1
        y = self.labels[indices, :s_max] if self.labels.size else np.zeros((len(indices), 1))
        return {
            "features": torch.from_numpy(x),
            "n_frames": torch.from_numpy(lens.astype(np.int64)),
            "labels": torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
            "label_lens": torch.from_numpy(self.label_lens[indices].astype(np.int64)),
            "day": torch.from_numpy(self.day[indices].astype(np.int64)),
        }


@dataclass
class ValidationReport:
    """What loading kept and dropped, per split."""

    kept: dict[str, int] = field(default_factory=dict)
    dropped_too_short: dict[str, int] = field(default_factory=dict)
    dropped_nonfinite: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def total_dropped(self) -> int:
        return sum(self.dropped_too_short.values()) + sum(self.dropped_nonfinite.values())

    def dropped_fraction(self) -> float:
        total = sum(self.kept.values()) + self.total_dropped()
        return self.total_dropped() / total if total else 0.0

    def summary(self) -> str:
        parts = [f"{s}: {n} kept" for s, n in self.kept.items()]
        if self.total_dropped():
            parts.append(f"dropped {sum(self.dropped_too_short.values())} too short for their "
                         f"labels, {sum(self.dropped_nonfinite.values())} with non-finite "
                         "features")
        return "; ".join(parts)


@dataclass
class Dataset:
    root: str
    sessions: list[str]
    n_features: int
    splits: dict[str, PackedSplit]
    report: ValidationReport

    @property
    def train(self) -> PackedSplit:
        return self.splits["train"]

    @property
    def val(self) -> PackedSplit:
        return self.splits["val"]

    def fingerprint(self) -> str:
        return dataset_fingerprint(self)

    def save_cache(self, directory: str | Path) -> Path:
        """Write the packed arrays as .npy files (for memory-mapped sharing, see module doc)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for split, packed in self.splits.items():
            for f in fields(PackedSplit):
                np.save(directory / f"{split}.{f.name}.npy", getattr(packed, f.name))
        meta = {"root": self.root, "sessions": self.sessions, "n_features": self.n_features,
                "splits": list(self.splits), "report": self.report.__dict__}
        (directory / "dataset.json").write_text(json.dumps(meta, indent=1))
        return directory

    @classmethod
    def load_cache(cls, directory: str | Path, mmap: bool = True) -> Dataset:
        directory = Path(directory)
        meta = json.loads((directory / "dataset.json").read_text())
        mode = "r" if mmap else None
        splits = {
            split: PackedSplit(**{f.name: np.load(directory / f"{split}.{f.name}.npy",
                                                  mmap_mode=mode)
                                  for f in fields(PackedSplit)})
            for split in meta["splits"]
        }
        return cls(meta["root"], meta["sessions"], meta["n_features"], splits,
                   ValidationReport(**meta["report"]))


def open_dataset(data) -> Dataset:
    """The data a trial receives, opened: a Dataset as it is (Ray's object store), the
    folder of a Dataset.save_cache memory-mapped, or anything whose open() gives the
    Dataset (packed data each node fetches once: study.datashare.PackedData)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return Dataset.load_cache(data, mmap=True)
    return data.open()


def dataset_fingerprint(ds: Dataset) -> str:
    """Stable hash of what training sees: sessions, lengths, labels and a feature sample."""
    h = hashlib.sha256()
    h.update(json.dumps([ds.sessions, ds.n_features]).encode())
    for name in sorted(ds.splits):
        packed = ds.splits[name]
        for arr in (packed.n_frames, packed.labels, packed.day):
            h.update(np.ascontiguousarray(arr).tobytes())
        step = max(len(packed.features) // 4096, 1)
        h.update(np.ascontiguousarray(packed.features[::step]).tobytes())
    return h.hexdigest()[:16]


def _discover_sessions(root: Path, cfg: Config) -> list[str]:
    if not root.exists():
        raise DataError(f"{root}: data folder does not exist; pass --data with a Brain-to-Text "
                        "'25 hdf5_data_final folder, or omit it to use synthetic data")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; --data needs the folder holding the session "
                        "folders (<root>/<session>/data_train.hdf5)")
    on_disk = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and any((p / f"data_{s}.hdf5").exists() for s in SPLITS))
    if cfg.data.sessions is None:
        if not on_disk:
            raise DataError(f"{root}: no session folders with data_train.hdf5 / data_val.hdf5 "
                            "found; expected <root>/<session>/data_train.hdf5")
        return on_disk
    missing = [s for s in cfg.data.sessions if s not in on_disk]
    if missing:
        raise DataError(f"{root}: session {missing[0]!r} listed in data.sessions has no "
                        "data files; remove it from the list or add its folder")
    return list(cfg.data.sessions)


def _attr(f_path: Path, trial: str, group, name: str):
    if name not in group.attrs:
        raise DataError(f"{f_path}: {trial}: missing attribute {name!r}; the file does not "
                        "follow the Brain-to-Text '25 layout")
    return group.attrs[name]


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]}); "
                        "re-download or regenerate it") from None


def _scan_file(path: Path, split: str, day: int, cfg: Config, report: ValidationReport,
               out: dict[str, list]) -> None:
    """First pass: validate every trial's metadata and labels without reading features;
    append the trials that can reach CTC to `out` (the features are read by _fill)."""
    labelled = split != "test"
    max_cut = cfg.augment.max_cut
    n_classes = cfg.model.n_classes
    with _open(path) as handle:
        names = sorted(k for k in handle if k.startswith("trial_"))
        for name in names:
            group = handle[name]
            if "input_features" not in group:
                raise DataError(f"{path}: {name}: missing dataset 'input_features'; the file "
                                "does not follow the Brain-to-Text '25 layout")
            shape = group["input_features"].shape
            if len(shape) != 2:
                raise DataError(f"{path}: {name}: input_features has shape {shape}; "
                                "expected [n_time_steps, n_features]")
            if shape[1] != cfg.data.n_features:
                raise DataError(f"{path}: {name}: {shape[1]} features but data.n_features="
                                f"{cfg.data.n_features}; set --set data.n_features="
                                f"{shape[1]} or use matching data")
            n_frames = int(_attr(path, name, group, "n_time_steps"))
            if n_frames != shape[0]:
                raise DataError(f"{path}: {name}: n_time_steps={n_frames} but input_features "
                                f"has {shape[0]} rows; the file is inconsistent")
            labels = np.zeros(0, dtype=np.int64)
            if labelled:
                if "seq_class_ids" not in group:
                    raise DataError(f"{path}: {name}: missing dataset 'seq_class_ids' in a "
                                    f"{split} file")
                seq_len = int(_attr(path, name, group, "seq_len"))
                stored = group["seq_class_ids"][()]
                if seq_len > len(stored):
                    raise DataError(f"{path}: {name}: seq_len={seq_len} is longer than the "
                                    f"{len(stored)} stored labels; the file is inconsistent")
                if seq_len < 1:
                    raise DataError(f"{path}: {name}: seq_len={seq_len}; every labelled "
                                    "trial needs at least one phoneme")
                labels = np.asarray(stored[:seq_len], dtype=np.int64)
                bad = labels[(labels < 1) | (labels >= n_classes)]
                if bad.size:
                    raise DataError(f"{path}: {name}: label id {int(bad[0])} outside "
                                    f"1..{n_classes - 1}; labels must be phoneme ids of the "
                                    "41-class vocabulary (0 is blank/padding)")
                # CTC needs enough output frames even after the largest random cut; shorter
                # trials would give an infinite loss (official zero_infinity=False), so
                # they never reach the loss.
                out_len = patched_length(n_frames - max_cut, cfg.model.patch_size,
                                         cfg.model.patch_stride)
                if out_len < ctc_min_frames(labels):
                    report.dropped_too_short[split] = report.dropped_too_short.get(split, 0) + 1
                    report.examples.append(f"{path.parent.name}/{split}/{name}: {out_len} "
                                           f"output frames < {ctc_min_frames(labels)} needed")
                    continue
            out["path"].append(path)
            out["name"].append(name)
            out["n_frames"].append(n_frames)
            out["labels"].append(labels)
            out["day"].append(day)
            out["block"].append(int(group.attrs.get("block_num", -1)))
            out["trial"].append(int(name.split("_")[1]))


def _fill(parts: dict[str, list], split: str, cfg: Config, report: ValidationReport
          ) -> PackedSplit:
    """Second pass: read the features straight into one preallocated matrix (no second
    copy, so the ~14 GB real training split needs ~14 GB, not twice that)."""
    n_total = int(sum(parts["n_frames"]))
    features = np.empty((n_total, cfg.data.n_features), dtype=np.float32)
    keep: list[int] = []
    offsets: list[int] = []
    row = 0
    handle, open_path = None, None
    try:
        for i, (path, name, n_frames) in enumerate(
                zip(parts["path"], parts["name"], parts["n_frames"], strict=True)):
            if path != open_path:
                if handle is not None:
                    handle.close()
                handle, open_path = _open(path), path
            try:
                x = handle[name]["input_features"][()]
            except OSError as exc:
                raise DataError(f"{path}: {name}: input_features cannot be read "
                                f"({str(exc).splitlines()[0]}); the file is damaged") from None
            if not np.isfinite(x).all():
                if cfg.data.nonfinite_features == "error":
                    raise DataError(f"{path}: {name}: input_features holds NaN/Inf; clean the "
                                    "data or set data.nonfinite_features=drop to skip such "
                                    "trials")
                report.dropped_nonfinite[split] = report.dropped_nonfinite.get(split, 0) + 1
                report.examples.append(f"{path.parent.name}/{split}/{name}: non-finite")
                continue
            features[row : row + n_frames] = x
            keep.append(i)
            offsets.append(row)
            row += n_frames
    finally:
        if handle is not None:
            handle.close()
    pick = np.asarray(keep, dtype=np.int64)
    n_frames = np.asarray(parts["n_frames"], dtype=np.int64)[pick] if keep else \
        np.zeros(0, dtype=np.int64)
    label_lens = np.array([len(parts["labels"][i]) for i in keep], dtype=np.int64)
    labels = np.zeros((len(keep), int(label_lens.max()) if keep else 0), dtype=np.int64)
    for row_i, i in enumerate(keep):
        labels[row_i, : label_lens[row_i]] = parts["labels"][i]

    def column(key: str) -> np.ndarray:
        return np.asarray(parts[key], dtype=np.int64)[pick] if keep else \
            np.zeros(0, dtype=np.int64)

    return PackedSplit(features=features[:row] if row < n_total else features,
                       offsets=np.asarray(offsets, dtype=np.int64), n_frames=n_frames,
                       labels=labels, label_lens=label_lens, day=column("day"),
                       block=column("block"), trial=column("trial"))


def source_key(root: str | Path, cfg: Config, splits: tuple[str, ...] = ("train", "val")
                ) -> str:
    """A key of what load_dataset would read, without reading it: every HDF5 file's path,
    size and modification time, and the settings the reading applies (features, sessions,
    the too-short filter's patching and random cut, the non-finite rule). Two loads with
    the same key give the same Dataset, so a packed cache found under it can stand in."""
    root = Path(root)
    files = []
    for session in _discover_sessions(root, cfg):
        for split in splits:
            path = root / session / f"data_{split}.hdf5"
            if path.exists():
                stat = path.stat()
                files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    settings = [cfg.data.n_features, cfg.data.sessions, cfg.data.nonfinite_features,
                cfg.model.patch_size, cfg.model.patch_stride, cfg.model.n_classes,
                cfg.augment.max_cut, list(splits)]
    payload = json.dumps([files, settings], default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def load_dataset(root: str | Path, cfg: Config, splits: tuple[str, ...] = ("train", "val")
                 ) -> Dataset:
    """Read and validate every session's files once; raise DataError on a bad file."""
    root = Path(root)
    sessions = _discover_sessions(root, cfg)
    report = ValidationReport()
    packed: dict[str, PackedSplit] = {}
    for split in splits:
        parts: dict[str, list] = {key: [] for key in ("path", "name", "n_frames", "labels",
                                                      "day", "block", "trial")}
        for day, session in enumerate(sessions):
            path = root / session / f"data_{split}.hdf5"
            if path.exists():  # official train-only days have no val/test file
                _scan_file(path, split, day, cfg, report, parts)
        packed[split] = _fill(parts, split, cfg, report)
        report.kept[split] = len(packed[split])
    if "train" in packed and len(packed["train"]) == 0:
        dropped = report.dropped_too_short.get("train", 0)
        raise DataError(f"{root}: no usable training trials ({dropped} too short for their "
                        "labels after patching); use longer trials or a smaller "
                        "model.patch_size / patch_stride / augment.random_cut")
    if "train" in packed:
        n_days = len(packed["train"].days)
        if cfg.data.sampling == "days" and cfg.data.days_per_batch > n_days:
            raise DataError(f"{root}: data.days_per_batch={cfg.data.days_per_batch} but only "
                            f"{n_days} sessions have training trials; lower "
                            "data.days_per_batch")
    return Dataset(str(root), sessions, cfg.data.n_features, packed, report)
