"""Stability monitors: pure rules that turn evaluation numbers into flags and an outcome.

Outcome precedence: diverged > blank_collapse > exploding > slow > stable. A diverged run
cannot be trusted at all; a collapsed run is unusable whatever its gradients did; a run
whose gradients spiked but which ends with a usable decoder is `exploding`, a warning.
"""

from __future__ import annotations

import math

from trainable.config import MonitorConfig


def is_collapsed(emit_ratio: float, step: int, budget: int, cfg: MonitorConfig) -> bool:
    """Blank-only output that persists past the grace window (early plateaus are normal)."""
    return step >= cfg.collapse_grace_fraction * budget and emit_ratio < cfg.collapse_emit_ratio


def is_diverged(val_loss: float, initial_val_loss: float, nonfinite: bool,
                cfg: MonitorConfig) -> bool:
    if nonfinite or not math.isfinite(val_loss):
        return True
    return val_loss > cfg.diverge_loss_factor * initial_val_loss


def is_exploded(window_grad_max: float, run_grad_median: float, cfg: MonitorConfig) -> bool:
    """A pre-clip gradient norm far above the run's typical (median) pre-clip norm, or
    above the absolute alarm `explode_norm` when one is set."""
    if not math.isfinite(window_grad_max):
        return True
    if cfg.explode_norm is not None and window_grad_max > cfg.explode_norm:
        return True
    return run_grad_median > 0 and window_grad_max > cfg.explode_factor * run_grad_median


def outcome(diverged: bool, collapsed: bool, ever_exploded: bool, val_per: float,
            cfg: MonitorConfig) -> str:
    if diverged:
        return "diverged"
    if collapsed:
        return "blank_collapse"
    if ever_exploded:
        return "exploding"
    if val_per > cfg.slow_per:
        return "slow"
    return "stable"
