"""The generators' shared machinery: seeded random streams, the world (tuning,
loadings), the session schedule, trial timelines and latents, raw features.
Generator 1 (trainable/synthetic.py) and generator 2 (trainable/synthetic_v2.py)
build on it."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d

from trainable.data import frames_for_outputs
from trainable.synthetic_spec import (
    _STREAM_SESSION,
    _STREAM_WORLD,
    COMMON_WORDS,
    CTC_CUT_MARGIN,
    EFFORT_ENVELOPE_SIGMA,
    EFFORT_FLUCTUATION_SIGMA,
    EFFORT_FLUCTUATION_STD,
    PATCH_SIZE,
    PATCH_STRIDE,
    SUBJECT,
    TX_BASELINE_LOG_STD,
    TX_MAX_RATE,
    VOWELS,
    SyntheticSpec,
    real_session_dates,
)
from trainable.vocab import N_CLASSES, PHONEME_TO_ID, SIL_ID, word_phonemes

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
        n_frames = frames_for_outputs((n_labels + 1) // 2, PATCH_SIZE, PATCH_STRIDE)
        return 1, _squeeze(durations, n_frames - 2), 1
    # Lengthen the tail where needed so that (T - cut - 14) // 4 + 1 >= n_labels for any
    # cut up to CTC_CUT_MARGIN frames.
    needed = frames_for_outputs(n_labels, PATCH_SIZE, PATCH_STRIDE) + CTC_CUT_MARGIN
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



SessionData = tuple[str, dict[str, list[tuple[_Trial, np.ndarray]]]]


