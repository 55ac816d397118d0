"""What a confidence sequence shows about a claimed effect, the verdict that follows,
the reason in words, and the seeds a trend would need to decide it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.stats import sequential


VERDICTS = ("supported", "smaller_than_claimed", "refuted", "inconclusive")
FINAL = ("supported", "smaller_than_claimed", "refuted")
VERDICT_WORDS = {"supported": "SUPPORTED", "smaller_than_claimed": "SMALLER THAN CLAIMED",
                 "refuted": "REFUTED", "inconclusive": "INCONCLUSIVE"}


@dataclass(frozen=True)
class Evidence:
    """What a confidence sequence shows about a claimed effect."""

    size_shown: bool = False  # an effect at least the claimed size
    size_excluded: bool = False  # the claimed size is excluded
    effect_shown: bool = False  # some effect in the claimed direction (beyond the null)

    @property
    def verdict(self) -> str:
        if self.size_shown:
            return "supported"
        if self.size_excluded:
            return "smaller_than_claimed" if self.effect_shown else "refuted"
        return "inconclusive"


def claimed_size(null: float, margin: float, direction: str) -> float:
    return null - margin if direction == "decrease" else null + margin


def judge(cs: sequential.Interval, null: float, size: float, direction: str) -> Evidence:
    """The evidence in a CS about an effect claimed to reach `size` (beyond `null` in
    `direction`; for `either`, `size` and its mirror image around the null)."""
    if cs.n == 0 or cs.empty:
        return Evidence()
    if direction == "increase":
        return Evidence(cs.low > size, cs.high < size, cs.low > null)
    if direction == "decrease":
        return Evidence(cs.high < size, cs.low > size, cs.high < null)
    low, high = sorted((size, 2 * null - size))
    return Evidence(cs.low > high or cs.high < low, low < cs.low and cs.high < high,
                    cs.low > null or cs.high < null)


def reason_for(evidence: Evidence, cs: sequential.Interval, null: float, size: float,
               direction: str, unit: str = "") -> str:
    """Why the CS gives this verdict, in words."""
    claimed = (f"{'+-' if direction == 'either' else ''}{abs(size - null):g}{unit} beyond "
               f"{null:g}" if direction == "either" else f"{size:g}{unit}")
    if cs.n == 0:
        return "no seed has a complete run in every cell the claim compares"
    if cs.empty:
        return ("the interval is empty: no constant effect fits the seeds in order (did the "
                "runs change between waves?), so no verdict is read from it")
    if evidence.size_shown:
        return f"the interval lies beyond the claimed size ({claimed})"
    opposite = ((direction == "increase" and cs.high < null)
                or (direction == "decrease" and cs.low > null))
    if evidence.size_excluded:
        if evidence.effect_shown:
            return (f"the interval excludes both the claimed size ({claimed}) and no "
                    "effect: an effect exists but is smaller than claimed")
        if opposite:
            return (f"the interval excludes the claimed size ({claimed}) and shows the "
                    "opposite effect")
        return f"the interval excludes the claimed size ({claimed}) and contains no effect"
    if evidence.effect_shown:
        return (f"an effect is shown (the interval excludes {null:g}) but its size is not "
                f"yet known: the interval still contains the claimed size ({claimed})")
    return f"the interval contains both no effect ({null:g}) and the claimed size ({claimed})"


def seeds_to_decide(values, low: float, high: float, null: float, size: float,
                    direction: str, alpha: float, median: bool = False) -> float:
    """Further seeds at the current trend until the CS excludes the claimed size (or, for
    `either`, settles it on both sides): a projection for planning runs, never used for a
    verdict. `median`: the CS is the median's (sign tests on 1[value < size])."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.inf

    def exclude(point: float) -> float:
        if median:
            return sequential.replicates_to_exclude(values < point, 0.0, 1.0, 0.5, alpha)
        return sequential.replicates_to_exclude(values, low, high, point, alpha)

    if direction != "either":
        return exclude(size)
    lo, hi = sorted((size, 2 * null - size))
    centre = float(np.median(values) if median else values.mean())
    if centre > hi:
        return exclude(hi)
    if centre < lo:
        return exclude(lo)
    return max(exclude(lo), exclude(hi))
