"""Names other parts of the platform rely on: study axes, reported metrics, outcomes.

Defined once here and imported everywhere else (study presets, the Ray adapter and the
analysis all speak these names).
"""

from __future__ import annotations

from typing import Literal, get_args

# The four study axes and the config key each one sets. Any other config key can be swept
# too (a preset's axes are data), but these are the product's reason to exist.
AXES: dict[str, str] = {
    "eps": "optim.eps",
    "lr_max": "optim.lr_max",
    "white_noise_std": "augment.white_noise_std",
    "constant_offset_std": "augment.constant_offset_std",
}

# Official values of the axes (nejm-brain-to-text rnn_args.yaml).
OFFICIAL_AXES: dict[str, float] = {
    "eps": 0.1,
    "lr_max": 0.005,
    "white_noise_std": 1.0,
    "constant_offset_std": 0.2,
}

# The detectors behind the failure outcomes (every outcome but "stable"), as a type for
# schemas that name one ...
Detector = Literal["blank_collapse", "diverged", "exploding", "slow"]
DETECTORS: tuple[str, ...] = get_args(Detector)
OUTCOMES: tuple[str, ...] = ("stable", *DETECTORS)
# ... and the three that end a run's usefulness whatever the budget ("slow" exists only
# against the budget's reference PER).
HARD_FAILURES: tuple[str, ...] = ("blank_collapse", "diverged", "exploding")

# Metrics every evaluation reports; every value is a finite number (flags are 0/1 ints).
METRICS: tuple[str, ...] = (
    "step",
    "train_loss",
    "val_loss",
    "val_per",
    "lr",
    "grad_norm_mean",
    "grad_norm_max",
    "clip_fraction",
    "nonfinite_steps",
    "blank_fraction",
    "unique_phonemes",
    "eps_dominance",
    "steps_per_s",
    "gpu_peak_mb",  # peak GPU memory allocated by the run so far (0 on the CPU)
    "collapsed",
    "diverged",
    "exploded",
)
# collapsed: blank-only output at this evaluation, past the grace window (a run can recover);
# diverged: terminal (the run stops); exploded: latched once any gradient spike was seen.
FLAGS: tuple[str, ...] = ("collapsed", "diverged", "exploded")

# Extra keys every report carries besides METRICS.
#   outcome: the running classification; final once `completed` is 1.
#   completed: 1 on the last report of a run (budget reached or stopped as diverged).
#     Not Tune's own `done`, which Tune also sets on a trial its scheduler stopped early.
#   budget_steps: the run's full step budget, so the analysis can tell a finished run
#     from one stopped early by a scheduler (Ray marks both TERMINATED).
#   best_val_per: the lowest val_per so far (the official trainer keeps that checkpoint).
#   initial_val_loss / initial_val_per: the step-0 values, used as caps for failed runs.
REPORT_EXTRAS: tuple[str, ...] = (
    "outcome",
    "completed",
    "budget_steps",
    "best_val_per",
    "initial_val_loss",
    "initial_val_per",
)

# Per-day validation PER: one report key per session, this prefix + the session's name
# (e.g. val_per_day/t15.2023.08.11), as the official trainer logs each day's PER.
DAY_PER_PREFIX = "val_per_day/"

# Finite sentinels reported in place of non-finite values once a run has diverged.
# A loss of 1e6 is far above any CTC loss of a real utterance at initialisation (the
# official run starts near 715); PER is capped at its step-0 value by the analysis, but
# the raw sentinel 10.0 (1000%) keeps it finite and obviously not a result.
SENTINEL_LOSS = 1.0e6
SENTINEL_PER = 10.0
SENTINEL_GRAD_NORM = 1.0e6
