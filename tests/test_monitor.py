"""Run classification: every rule at and around its threshold, and the precedence."""

import math

import pytest

from trainable.config import MonitorConfig
from trainable.monitor import is_collapsed, is_diverged, is_exploded, outcome

CFG = MonitorConfig()  # grace 0.25, emit ratio 0.1, loss factor 3, explode 50, slow 0.5


@pytest.mark.parametrize("emit, step, expected", [
    (0.0, 249, False),     # inside the grace window (25% of 1000 steps)
    (0.0, 250, True),      # at its end
    (0.0999, 1000, True),  # just below the emit ratio
    (0.1, 1000, False),    # at it: emitting one token per ten labels is not blank-only
    (0.5, 1000, False),
])
def test_collapse_rule_boundaries(emit, step, expected):
    assert is_collapsed(emit, step, 1000, CFG) is expected


@pytest.mark.parametrize("loss, initial, nonfinite, expected", [
    (30.0, 10.0, False, False),      # exactly 3x the step-0 loss: not yet
    (30.0001, 10.0, False, True),    # above 3x
    (5.0, 10.0, True, True),         # a non-finite loss or gradient seen
    (math.nan, 10.0, False, True),
    (math.inf, 10.0, False, True),
    (29.0, 10.0, False, False),
])
def test_divergence_rule_boundaries(loss, initial, nonfinite, expected):
    assert is_diverged(loss, initial, nonfinite, CFG) is expected


@pytest.mark.parametrize("window_max, median, expected", [
    (500.0, 10.0, False),     # exactly 50x the run's median pre-clip norm
    (500.01, 10.0, True),
    (math.inf, 10.0, True),   # a non-finite pre-clip norm
    (math.nan, 10.0, True),
    (1e9, 0.0, False),        # no typical norm yet: not judged
    (30.0, 0.5, True),        # a small typical norm still counts: 60x it
])
def test_explosion_rule_boundaries(window_max, median, expected):
    assert is_exploded(window_max, median, CFG) is expected


@pytest.mark.parametrize("flags, per, expected", [
    ((True, True, True), 0.1, "diverged"),
    ((False, True, True), 0.9, "blank_collapse"),
    ((False, False, True), 0.9, "exploding"),     # exploding outranks slow
    ((False, False, False), 0.5, "stable"),       # slow is strictly above 0.5
    ((False, False, False), 0.5001, "slow"),
    ((False, False, False), 0.2, "stable"),
])
def test_outcome_precedence(flags, per, expected):
    assert outcome(*flags, per, CFG) == expected


def test_thresholds_come_from_the_config():
    cfg = MonitorConfig(collapse_grace_fraction=0.5, collapse_emit_ratio=0.3,
                        diverge_loss_factor=2.0, explode_factor=10.0, slow_per=0.3)
    assert not is_collapsed(0.2, 499, 1000, cfg) and is_collapsed(0.2, 500, 1000, cfg)
    assert is_diverged(21.0, 10.0, False, cfg) and not is_diverged(20.0, 10.0, False, cfg)
    assert is_exploded(101.0, 10.0, cfg) and not is_exploded(100.0, 10.0, cfg)
    assert outcome(False, False, False, 0.31, cfg) == "slow"
