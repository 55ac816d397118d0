"""The synthetic dataset's specification (every knob, validated) and the constants
both generators share; trainable/synthetic.py says what the data is."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainable.config import CONFIG_DIR, ModelConfig, parse_override, read_yaml, set_dotted
from trainable.errors import ConfigError, validation_line
from trainable.lexicon import SentenceFileError, read_sentence_file, words_digest

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
# Official GRUDecoder patching (patch_size 14, stride 4: ModelConfig's defaults): a trial
# of T bins gives (T - 14) // 4 + 1 outputs (trainable.data.patched_length), which CTC
# needs to be at least the number of labels.
PATCH_SIZE = ModelConfig.model_fields["patch_size"].default
PATCH_STRIDE = ModelConfig.model_fields["patch_stride"].default
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
            payload["spec"].pop("sentences")
            payload["words"] = words_digest(self.sentences, self.vocabulary_size,
                                            self.frequency_exponent)
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def sessions_with_val(self) -> list[bool]:
        """Per session: False for the train-only ones (spread evenly, the first included,
        as the official 2023.08.11 is train-only)."""
        train_only = {round(i * self.n_sessions / self.train_only_sessions)
                      for i in range(self.train_only_sessions)}
        return [d not in train_only for d in range(self.n_sessions)]


