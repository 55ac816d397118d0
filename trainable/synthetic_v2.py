"""Generator 2 of the synthetic data: calibrated to the real Brain-to-Text '25 recordings in
the numbers that decide CTC's blank plateau, its loss scale and the gradient-clipping
regime (targets and sources: shared/design/real_data_targets.md, cited below as S1..S16).

Same layout, seeds and trial structure as generator 1 (trainable/synthetic.py); what
differs, one trial:
  sentence  6.6 +- 2.1 words (S2, S6) of frequent English (trainable/lexicon.py), or a line
            of the user's sentence file; labels: CMUdict phonemes + SIL after each word
  timing    the v1 gamma durations, slower, and stretched by a per-trial speaking rate
            (log-normal): about 30 bins per label with an overhead of rest around the
            speech, so T is about 141 + 25.5 x labels (S6, S7), mean 875, a long tail
  latent    articulatory phoneme targets (trainable/articulatory.py): phonemes that share
            place, manner or voicing have similar targets
  channels  as v1 (TX Poisson counts, SBP power of the same electrodes' drive), with four
            arrays of unequal informativeness: v6v, area 4, 55b, d6v in that order (the
            official feature order, S1), the drive of each scaled by `array_modulation`
            (v6v and 55b strongest, S1, S12), the noise not
  session   real session dates (S1), tuning that rotates and baselines that wander by an
            amount growing with the days elapsed since the previous session; per-block
            baseline offsets and a within-session random walk, all in log-rate units;
            then every block z-scored with its own statistics and clipped at +10, as the
            released features are (S8)

`trial_plans` gives every trial's sentence and length without the neural features, so the
lengths of a real-sized split can be measured in seconds (benchmarks/calibration.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from trainable.articulatory import articulatory_targets
from trainable.errors import ConfigError
from trainable.lexicon import (
    Lexicon,
    frequent_words,
    longest_label,
    read_sentence_file,
    sample_sentence,
)
from trainable.synthetic_spec import (
    _STREAM_SESSION,
    _STREAM_TRIAL,
    _STREAM_WORLD,
    CLIP_MAX,
    SPLITS,
    VOWELS,
    SyntheticSpec,
)
from trainable.synthetic_world import (
    SessionData,
    _latent,
    _rng,
    _session_schedule,
    _Slot,
    _timeline,
    _Trial,
    _World,
    session_names,
)
from trainable.vocab import N_CLASSES, PHONEME_TO_ID, sentence_to_ids, word_phonemes

# Session-level streams that depend on trial counts get their own keys, so the draws that
# do not (tuning, baselines, gains) stay put when a split's count changes.
_SUB_BLOCKS, _SUB_WALK = 1, 2
# Order of the four arrays in each half of the features (official feature table, S1).
ARRAYS = ("v6v", "area 4", "55b", "d6v")


def session_days(spec: SyntheticSpec) -> np.ndarray:
    """Days elapsed since the first session, per session."""
    import datetime as dt

    dates = [dt.datetime.strptime(n.split(".", 1)[1], "%Y.%m.%d").date()
             for n in session_names(spec)]
    return np.array([(d - dates[0]).days for d in dates])


def _is_vowel() -> np.ndarray:
    out = np.zeros(N_CLASSES, dtype=bool)
    out[[PHONEME_TO_ID[p] for p in VOWELS]] = True
    return out


def electrode_arrays(n_electrodes: int) -> np.ndarray:
    """Array index (0..3, ARRAYS order) of each electrode: four equal consecutive groups."""
    return np.repeat(np.arange(len(ARRAYS)), n_electrodes // len(ARRAYS))


def _unit_loadings(spec: SyntheticSpec, rng: np.random.Generator, n_electrodes: int
                   ) -> np.ndarray:
    # As v1: a latent with unit variance per dimension moves a log-rate by about
    # modulation_depth (SD), here times its array's factor.
    scale = spec.modulation_depth / math.sqrt(spec.latent_dim + 1)
    gain = np.asarray(spec.array_modulation)[electrode_arrays(n_electrodes)]
    return scale * gain[:, None] * rng.standard_normal((n_electrodes, spec.latent_dim + 1))


def _make_world(spec: SyntheticSpec) -> _World:
    rng = _rng(spec, _STREAM_WORLD)
    n_electrodes = spec.n_features // 2
    return _World(
        phoneme_targets=articulatory_targets(spec.latent_dim, spec.phoneme_specific_sd, rng),
        loadings=_unit_loadings(spec, rng, n_electrodes),
        tx_log_baseline=math.log(spec.tx_mean_count)
        + spec.tx_baseline_log_sd * rng.standard_normal(n_electrodes),
        is_vowel=_is_vowel(),
    )


# --------------------------------------------------------------------------- sentences


def _word_count(spec: SyntheticSpec, rng: np.random.Generator) -> int:
    """words_min + a negative binomial with mean words_mean - words_min and SD words_sd,
    capped at words_max: right-skewed as the real counts (val: mean 6.6, SD 2.1, 5th-95th
    percentile 4-10; S6)."""
    mean = spec.words_mean - spec.words_min
    if mean <= 0:
        return spec.words_min
    r = mean**2 / (spec.words_sd**2 - mean)
    extra = int(rng.negative_binomial(r, r / (r + mean)))
    return min(spec.words_min + extra, spec.words_max)


def _sentence(spec: SyntheticSpec, lexicon: Lexicon | None, sentences: tuple[str, ...] | None,
              rng: np.random.Generator) -> str:
    if sentences is not None:
        return sentences[int(rng.integers(len(sentences)))]
    return sample_sentence(lexicon, _word_count(spec, rng), rng)


def _sources(spec: SyntheticSpec) -> tuple[Lexicon | None, tuple[str, ...] | None]:
    if spec.sentences is not None:
        return None, read_sentence_file(spec.sentences)[0]
    return frequent_words(spec.vocabulary_size, spec.frequency_exponent), None


def _check_padding(spec: SyntheticSpec, lexicon: Lexicon | None,
                   sentences: tuple[str, ...] | None) -> None:
    if sentences is not None:
        longest_ids = longest_label(sentences)
        longest_text = max(len(s) for s in sentences) + 1
    else:
        longest_ids = spec.words_max * (1 + max(len(word_phonemes(w)) for w in lexicon.words))
        longest_text = spec.words_max * (1 + max(len(w) for w in lexicon.words)) + 1
    if longest_ids > spec.seq_pad_len:
        raise ConfigError(f"synthetic spec: seq_pad_len={spec.seq_pad_len} is shorter than "
                          f"the longest possible label ({longest_ids} ids); raise "
                          "seq_pad_len or lower words_max")
    # The official _extract_transcription looks for the first 0 as the end.
    if longest_text > spec.transcription_pad_len:
        raise ConfigError(f"synthetic spec: transcription_pad_len={spec.transcription_pad_len}"
                          f" is shorter than the longest possible sentence plus its zero "
                          f"terminator ({longest_text}); raise it or lower words_max")


# --------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class TrialPlan:
    """A trial's sentence and timing, without its neural features."""

    day: int
    slot: _Slot
    sentence: str
    ids: np.ndarray
    lead: int
    durations: np.ndarray
    tail: int

    @property
    def n_frames(self) -> int:
        return self.lead + int(self.durations.sum()) + self.tail


def _plan(spec: SyntheticSpec, world: _World, lexicon, sentences, day: int, slot: _Slot
          ) -> tuple[TrialPlan, np.random.Generator]:
    """The first draws of a trial's stream: sentence, speaking rate, timing. The stream is
    returned to draw the trial's neural features next."""
    rng = _rng(spec, _STREAM_TRIAL, day, SPLITS.index(slot.split), slot.index)
    sentence = _sentence(spec, lexicon, sentences, rng)
    ids = np.asarray(sentence_to_ids(sentence), dtype=np.int64)
    # Log-normal with mean 1, so the mean length stays calibrated whatever its spread.
    sd = spec.speaking_rate_sd
    rate = math.exp(sd * rng.standard_normal() - sd**2 / 2)
    lead, durations, tail = _timeline(spec, world, ids, rng, rate)
    return TrialPlan(day, slot, sentence, ids, lead, durations, tail), rng


def _schedule(spec: SyntheticSpec, with_val: bool) -> list[_Slot]:
    n_val, n_test = (spec.val_trials, spec.test_trials) if with_val else (0, 0)
    return _session_schedule(spec.train_trials, n_val, n_test, spec.trials_per_block)


def trial_plans(spec: SyntheticSpec) -> Iterator[TrialPlan]:
    """Every trial's plan, session by session in recording order: exactly the sentences and
    lengths v2_sessions writes, at a tiny fraction of its cost."""
    world = _make_world(spec)
    lexicon, sentences = _sources(spec)
    for day, with_val in enumerate(spec.sessions_with_val()):
        for slot in _schedule(spec, with_val):
            yield _plan(spec, world, lexicon, sentences, day, slot)[0]


def _raw_features(spec: SyntheticSpec, world: _World, loadings: np.ndarray, gains: np.ndarray,
                  baseline: np.ndarray, offset: np.ndarray, latent: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """[T, n_features] before normalisation: TX counts, then SBP of the same electrodes.
    `baseline` is each electrode's TX log-rate at rest today, `offset` this trial's
    slow log-rate shift (block offset + within-session walk)."""
    drive = (latent @ loadings.T) * gains + offset
    noise_std = spec.modulation_depth / spec.snr
    rate = np.exp(baseline + drive + noise_std * rng.standard_normal(drive.shape))
    # Crossings saturate at tx_max_count per bin; the busiest channel's mean/SD ratio,
    # hence the TX minimum after z-scoring (real: -1.26; S8), follows from it.
    top = spec.tx_max_count
    tx = rng.poisson(rate * top / (rate + top)).astype(np.float64)
    # SBP is the same drive on a compressed log scale: sbp_log_sd is its total log-SD,
    # which sets how skewed it is, hence its minimum after z-scoring (real: -2.77; S8).
    squeeze = spec.sbp_log_sd / math.hypot(spec.modulation_depth, noise_std)
    sbp = np.exp(squeeze * (drive + noise_std * rng.standard_normal(drive.shape)))
    return np.concatenate([tx, sbp], axis=1)


def zscore_blocks(raw: list[np.ndarray], blocks: list[int]) -> list[np.ndarray]:
    """Each trial z-scored with its block's mean and SD per feature, clipped at +10, as
    the released features (S8); float32."""
    out: list[np.ndarray] = [np.empty(0)] * len(raw)
    for block in sorted(set(blocks)):
        members = [i for i, b in enumerate(blocks) if b == block]
        stacked = np.concatenate([raw[i] for i in members])
        mean = stacked.mean(axis=0)
        std = stacked.std(axis=0)
        std[std < 1e-6] = 1.0  # a channel silent all block stays 0
        for i in members:
            out[i] = np.minimum((raw[i] - mean) / std, CLIP_MAX).astype(np.float32)
    return out


def v2_sessions(spec: SyntheticSpec) -> Iterator[SessionData]:
    """Each session's trials with their features, in session order."""
    world = _make_world(spec)
    lexicon, sentences = _sources(spec)
    _check_padding(spec, lexicon, sentences)
    names = session_names(spec)
    days = session_days(spec)
    n_electrodes = spec.n_features // 2
    loadings = world.loadings
    baseline = world.tx_log_baseline
    for day, (session, with_val) in enumerate(zip(names, spec.sessions_with_val())):
        rng = _rng(spec, _STREAM_SESSION, day)
        # Tuning turns and baselines wander as random walks in elapsed days: after g days
        # the tuning correlates about exp(-drift**2 g / 2) with the old one (a rotation by
        # drift * sqrt(g) radians), so sessions months apart differ far more than
        # neighbours (S13: ~10% PER on its own sessions, 59-74% 4-18 months later).
        gap = float(days[day] - days[day - 1]) if day else 0.0
        angle = spec.tuning_drift_per_sqrt_day * math.sqrt(gap)
        step = _unit_loadings(spec, rng, n_electrodes)
        loadings = math.cos(angle) * loadings + math.sin(angle) * step
        baseline = baseline + spec.baseline_drift_per_sqrt_day * math.sqrt(gap) \
            * rng.standard_normal(n_electrodes)
        gains = np.exp(spec.day_gain_std * rng.standard_normal(n_electrodes))

        schedule = _schedule(spec, with_val)
        n_blocks = schedule[-1].block_num
        block_offset = spec.baseline_block_std * _rng(
            spec, _STREAM_SESSION, day, _SUB_BLOCKS).standard_normal((n_blocks, n_electrodes))
        # Random walk over the session's trials whose end point has SD baseline_walk_std.
        walk = np.cumsum(spec.baseline_walk_std / math.sqrt(len(schedule))
                         * _rng(spec, _STREAM_SESSION, day, _SUB_WALK).standard_normal(
                             (len(schedule), n_electrodes)), axis=0)

        trials: list[_Trial] = []
        for k, slot in enumerate(schedule):
            plan, trial_rng = _plan(spec, world, lexicon, sentences, day, slot)
            latent = _latent(spec, world, plan.ids, plan.lead, plan.durations, plan.tail,
                             trial_rng)
            offset = block_offset[slot.block_num - 1] + walk[k]
            raw = _raw_features(spec, world, loadings, gains, baseline, offset, latent,
                                trial_rng)
            trials.append(_Trial(slot, raw, plan.sentence, plan.ids))
        features = zscore_blocks([t.raw for t in trials], [t.slot.block_num for t in trials])
        by_split: dict[str, list[tuple[_Trial, np.ndarray]]] = {s: [] for s in SPLITS}
        for trial, x in zip(trials, features):
            trial.raw = np.empty(0)  # free the float64 copy as soon as it is normalised
            by_split[trial.slot.split].append((trial, x))
        yield session, by_split

