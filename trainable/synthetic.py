"""Synthetic sessions in the real Brain-to-Text '25 layout, brain-like enough that the
training dynamics (blank collapse, day-layer adaptation, offset robustness) mean something.

Layout (official_baseline.md §1; nejm-brain-to-text model_training/dataset.py):
``<out>/t15.YYYY.MM.DD/data_{train,val,test}.hdf5``; each file holds groups ``trial_0000``,
``trial_0001``, ... (4-digit, consecutive from 0) with ``input_features`` float32
[T, n_features]; train/val add ``seq_class_ids`` and ``transcription`` (int32, zero-padded to
a fixed length) and the attrs ``seq_len`` and ``sentence_label``; every trial has the attrs
``n_time_steps``, ``session``, ``block_num`` and ``trial_num``. Test files carry no labels.

Generative model, one trial:
  sentence  common English words -> phoneme ids with SIL after every word (trainable.vocab)
  timing    a gamma-distributed number of 20 ms bins per phoneme (vowels longer, SIL short),
            a lead-in and a tail of rest; normal trials always have enough patches for CTC
  latent    each phoneme a fixed random target in `latent_dim` dimensions, held for its
            duration and Gaussian-smoothed (coarticulation), scaled by a per-trial speech
            effort; one more dimension carries the slow effort envelope itself
  channels  electrode e's log-rate = baseline + day gain * (day loadings @ latent) + noise;
            TX (features 0..F/2-1) are Poisson counts of that rate (saturating at 250 Hz),
            SBP (F/2..F-1) a continuous log-normal power of the same electrode's rate with
            its own noise
  session   z-scored per channel with the session's training-split statistics, then a
            per-day offset, a per-block offset and a slow within-day drift are added (all
            in z units, the units of the constant-offset augmentation), clipped at +10

Across days the loadings take a random-walk step of `day_drift` radians per session, so a
day's tuning correlates cos(day_drift)**k with the tuning k sessions earlier: a change the
per-day input layer (x @ W_d + b_d) can undo, as it must on the real data.

Seeds: every random draw comes from a numpy Generator keyed by (seed, stream, session,
split, trial), so one spec gives byte-identical files, and a trial's sentence, timing and
noise do not change when another split's trial count changes.

Generator 2 (``generator: 2``, configs/data/calibrated.yaml) keeps this layout and these
seeds but is calibrated to the real recordings: real sentence and trial lengths, an
articulatory phoneme code, four arrays, per-block z-scoring, real session dates
(trainable/synthetic_v2.py).

CLI: ``python -m trainable.synthetic --out DIR [--spec YAML] [--set key=value ...]``.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import yaml

from trainable.errors import ConfigError, OneLineArgumentParser, UserError, run_cli
from trainable.synthetic_spec import (
    _STREAM_SESSION,
    _STREAM_TRIAL,
    CLIP_MAX,
    DEFAULT_SPEC_PATH,
    GENERATOR_VERSION,
    SPEC_FILE,
    SPLITS,
    V1_ONLY,
    V2_ONLY,
    SyntheticSpec,
)
from trainable.synthetic_v2 import v2_sessions
from trainable.synthetic_world import (
    SessionData,
    _latent,
    _make_world,
    _random_loadings,
    _raw_features,
    _rng,
    _sentence,
    _session_schedule,
    _Slot,
    _timeline,
    _Trial,
    _World,
    session_names,
    usable_words,
)
from trainable.vocab import sentence_to_ids, word_phonemes

# The names callers import from here (the spec and the shared machinery live in
# trainable/synthetic_spec.py and trainable/synthetic_world.py).
__all__ = ["DEFAULT_SPEC_PATH", "GENERATOR_VERSION", "SPEC_FILE", "V1_ONLY", "V2_ONLY",
           "SyntheticSpec", "ensure_synthetic", "generate", "main", "session_names",
           "usable_words"]

def _session_trials(spec: SyntheticSpec, world: _World, day: int, loadings: np.ndarray,
                    gains: np.ndarray, schedule: list[_Slot]) -> list[_Trial]:
    trials = []
    for slot in schedule:
        rng = _rng(spec, _STREAM_TRIAL, day, SPLITS.index(slot.split), slot.index)
        sentence = _sentence(spec, rng)
        ids = np.asarray(sentence_to_ids(sentence), dtype=np.int64)
        lead, durations, tail = _timeline(spec, world, ids, rng)
        latent = _latent(spec, world, ids, lead, durations, tail, rng)
        raw = _raw_features(spec, world, loadings, gains, latent, rng)
        trials.append(_Trial(slot, raw, sentence, ids))
    return trials


def _check_padding(spec: SyntheticSpec) -> None:
    words = usable_words()
    longest_ids = spec.words_max * (1 + max(len(word_phonemes(w)) for w in words))
    if longest_ids > spec.seq_pad_len:
        raise ConfigError(f"synthetic spec: seq_pad_len={spec.seq_pad_len} is shorter than "
                          f"the longest possible label ({longest_ids} ids for words_max="
                          f"{spec.words_max}); raise seq_pad_len or lower words_max")
    # Sentence, period, and at least one zero: the official _extract_transcription
    # (evaluate_model_helpers.py) looks for the first 0 as the end.
    longest_text = spec.words_max * (1 + max(len(w) for w in words)) + 1
    if longest_text > spec.transcription_pad_len:
        raise ConfigError(f"synthetic spec: transcription_pad_len={spec.transcription_pad_len}"
                          f" is shorter than the longest possible sentence plus its zero "
                          f"terminator ({longest_text}); raise it or lower words_max")


def _write_split(path: Path, spec: SyntheticSpec, session: str,
                 trials: list[tuple[_Trial, np.ndarray]]) -> None:
    labelled = not path.name.endswith("_test.hdf5")
    with h5py.File(path, "w") as f:
        for trial, features in trials:
            group = f.create_group(f"trial_{trial.slot.index:04d}")
            group.create_dataset("input_features", data=features, track_times=False)
            if labelled:
                seq = np.zeros(spec.seq_pad_len, dtype=np.int32)
                seq[:len(trial.ids)] = trial.ids
                text = np.zeros(spec.transcription_pad_len, dtype=np.int32)
                text[:len(trial.sentence)] = np.frombuffer(trial.sentence.encode("ascii"),
                                                           dtype=np.uint8)
                group.create_dataset("seq_class_ids", data=seq, track_times=False)
                group.create_dataset("transcription", data=text, track_times=False)
            group.attrs["n_time_steps"] = int(features.shape[0])
            if labelled:
                group.attrs["seq_len"] = len(trial.ids)
                group.attrs["sentence_label"] = trial.sentence
            group.attrs["session"] = session
            group.attrs["block_num"] = trial.slot.block_num
            group.attrs["trial_num"] = trial.slot.trial_num


# A session ready to write: its folder name and, per split, its trials with features.
def _v1_sessions(spec: SyntheticSpec) -> Iterator[SessionData]:
    _check_padding(spec)
    world = _make_world(spec)
    names = session_names(spec)
    has_val = spec.sessions_with_val()
    loadings = world.loadings
    for day, session in enumerate(names):
        rng = _rng(spec, _STREAM_SESSION, day)
        rng.integers(spec.session_gap_days_min, spec.session_gap_days_max + 1)  # the gap
        # Draws that do not depend on trial counts come first, so they stay put when the
        # counts change.
        step = _random_loadings(spec, rng, len(loadings))
        if day:
            loadings = math.cos(spec.day_drift) * loadings + math.sin(spec.day_drift) * step
        gains = np.exp(spec.day_gain_std * rng.standard_normal(len(loadings)))
        day_offset = spec.day_offset_std * rng.standard_normal(spec.n_features)

        n_val, n_test = (spec.val_trials, spec.test_trials) if has_val[day] else (0, 0)
        schedule = _session_schedule(spec.train_trials, n_val, n_test, spec.trials_per_block)
        trials = _session_trials(spec, world, day, loadings, gains, schedule)

        n_blocks = schedule[-1].block_num
        block_offset = spec.block_offset_std * rng.standard_normal((n_blocks, spec.n_features))
        # Random walk over the session's trials whose end point has SD within_day_drift_std.
        drift = np.cumsum(spec.within_day_drift_std / math.sqrt(len(schedule))
                          * rng.standard_normal((len(schedule), spec.n_features)), axis=0)

        # z-score with the training split's statistics only, so held-out trials are
        # normalised the way a deployed decoder would see them.
        train_raw = np.concatenate([t.raw for t in trials if t.slot.split == "train"])
        mean = train_raw.mean(axis=0)
        std = train_raw.std(axis=0)
        std[std < 1e-6] = 1.0
        by_split: dict[str, list[tuple[_Trial, np.ndarray]]] = {s: [] for s in SPLITS}
        for k, trial in enumerate(trials):
            x = (trial.raw - mean) / std + day_offset \
                + block_offset[trial.slot.block_num - 1] + drift[k]
            features = np.minimum(x, CLIP_MAX).astype(np.float32)
            by_split[trial.slot.split].append((trial, features))
        yield session, by_split


def _write_dataset(spec: SyntheticSpec, out_dir: Path, progress: bool) -> None:
    sessions = _v1_sessions(spec) if spec.generator == 1 else v2_sessions(spec)
    names = session_names(spec)
    start = time.perf_counter()
    for day, (session, by_split) in enumerate(sessions):
        folder = out_dir / session
        folder.mkdir()
        n_trials = 0
        for split, items in by_split.items():
            if items:  # train-only sessions have no val/test file, as in the real data
                items.sort(key=lambda item: item[0].slot.index)
                _write_split(folder / f"data_{split}.hdf5", spec, session, items)
                n_trials += len(items)
        if progress:
            print(f"synthetic: session {day + 1}/{len(names)} {session}: {n_trials} "
                  f"trials ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)

    meta = {"fingerprint": spec.fingerprint(), "generator_version": spec.generator,
            "sessions": names, "spec": spec.knobs()}
    (out_dir / SPEC_FILE).write_text(yaml.safe_dump(meta, sort_keys=False))


def generate(spec: SyntheticSpec, out_dir: str | Path, progress: bool = True) -> Path:
    """Write the dataset to out_dir (which must not exist, or be empty) and return it.

    Files are written into a temporary sibling folder that is renamed at the end, so an
    interrupted run never leaves a half dataset under out_dir.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"{out_dir}: already exists and is not empty; remove it or choose "
                        "another output folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _write_dataset(spec, tmp, progress)
        tmp.chmod(0o755)  # mkdtemp makes it private
        os.replace(tmp, out_dir)  # replaces an empty out_dir; fails on a non-empty one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def ensure_synthetic(spec: SyntheticSpec, cache_root: str | Path, progress: bool = True
                     ) -> Path:
    """cache_root/<fingerprint>/, generated only if it is not there yet."""
    target = Path(cache_root) / spec.fingerprint()
    if (target / SPEC_FILE).is_file():
        return target
    try:
        return generate(spec, target, progress=progress)
    except (UserError, OSError):
        if (target / SPEC_FILE).is_file():  # another process finished it meanwhile
            return target
        raise


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m trainable.synthetic",
        description="Write a synthetic dataset in the Brain-to-Text '25 HDF5 layout.")
    parser.add_argument("--out", required=True, help="output folder (must not exist yet)")
    parser.add_argument("--spec", default=None,
                        help="spec YAML (default: configs/data/synthetic.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a knob, e.g. n_sessions=45")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    def body() -> int:
        spec = SyntheticSpec.load(args.spec, args.overrides)
        start = time.perf_counter()
        out = generate(spec, args.out, progress=not args.quiet)
        print(f"{out} (fingerprint {spec.fingerprint()}, {time.perf_counter() - start:.1f} s)")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
