"""Anytime-valid confidence sequences: intervals that may be read after every wave of runs.

A study that looks at its verdicts after each wave and adds runs where a claim is still
undecided would inflate a fixed-n test's error rate (optional stopping). A confidence
sequence (CS) covers the true value at every sample size at once:
P(the true mean ever leaves the CS) <= alpha, so reading it after any wave, stopping when
it excludes a value, or continuing, all keep the error at most alpha (Ville's inequality;
Howard, Ramdas, McAuliffe & Sekhon 2021, Ann. Statist. 49(2)).

The CS here is Waudby-Smith & Ramdas (2024), "Estimating means of bounded random variables
by betting", JRSS-B 86(1): for observations in a known range [low, high] rescaled to [0, 1]
and each candidate mean m, two bettors put a predictable fraction lambda_t of their wealth
on the next observation being above (K+) or below (K-) m; the hedged capital
K(m) = max(theta K+(m), (1 - theta) K-(m)) is bounded by the nonnegative martingale
theta K+ + (1 - theta) K- when m is the true mean, so m is excluded once K(m) >= 1/alpha.
The bets are the paper's predictable plug-in (eq. 26):
lambda_t = sqrt(2 log(2/alpha) / (sigma2_{t-1} t log(1 + t))), truncated at c/m (K+) and
c/(1 - m) (K-) with c = 3/4 so that no single observation can ruin a bettor. One deviation,
valid all the same: the running variance sums each observation's distance from the mean of
the observations before it. The CS reported is the running intersection over sample sizes
(still valid, never wider than before); its printed ends are the outermost kept points of a
grid (one step = 0.1% of the range), while verdicts test their thresholds exactly
(`points`). `confseq`, the authors' package, needs a C++/Boost build that does not install
from PyPI on a plain machine, so the few lines are written out here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.stats.alpha import ALPHA

TRUNCATION = 0.75  # c in Waudby-Smith & Ramdas: bets at most c/m and c/(1 - m)
GRID = np.linspace(0.0, 1.0, 1001)  # candidate means; thresholds are added exactly


@dataclass(frozen=True)
class Interval:
    """A confidence sequence read at n observations, on the original scale."""

    estimate: float
    low: float
    high: float
    n: int
    # Every candidate was excluded at some sample size: no constant mean fits the
    # sequence (the ends are then the sample mean; a verdict must not be read from it).
    empty: bool = False

    def excludes_below(self, value: float) -> bool:
        """Every mean <= value is excluded (the mean is above value)."""
        return self.n > 0 and self.low > value

    def excludes_above(self, value: float) -> bool:
        """Every mean >= value is excluded (the mean is below value)."""
        return self.n > 0 and self.high < value


def _bets(x: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable plug-in bets lambda_1..lambda_n (each uses observations before it);
    x may hold several sequences as columns (shape (n, k))."""
    n = len(x)
    t = np.arange(1, n + 1).reshape((n,) + (1,) * (x.ndim - 1))
    mu_hat = (0.5 + np.cumsum(x, axis=0)) / (t + 1)
    prev_mu = np.concatenate([np.full((1, *x.shape[1:]), 0.5), mu_hat[:-1]])  # mu_hat_{t-1}
    sigma2 = (0.25 + np.cumsum((x - prev_mu) ** 2, axis=0)) / (t + 1)
    prev_sigma2 = np.concatenate([np.full((1, *x.shape[1:]), 0.25), sigma2[:-1]])
    return np.sqrt(2.0 * math.log(2.0 / alpha) / (prev_sigma2 * t * np.log1p(t)))


def log_capital_path(x01: np.ndarray, m: np.ndarray, alpha: float, theta: float = 0.5
                     ) -> np.ndarray:
    """log of the hedged capital K_t(m) after each observation: shape (n, len(m)).

    x01: observations rescaled to [0, 1]; m: candidate means in [0, 1].
    """
    x01 = np.asarray(x01, dtype=float)
    m = np.atleast_1d(np.asarray(m, dtype=float))
    if len(x01) == 0:
        return np.zeros((0, m.size))
    lam = _bets(x01, alpha)[:, None]
    diff = x01[:, None] - m[None, :]
    up = np.minimum(lam, TRUNCATION / np.maximum(m, 1e-12)[None, :])
    down = np.minimum(lam, TRUNCATION / np.maximum(1.0 - m, 1e-12)[None, :])
    log_plus = np.cumsum(np.log1p(up * diff), axis=0)
    log_minus = np.cumsum(np.log1p(-down * diff), axis=0)
    return np.maximum(math.log(theta) + log_plus, math.log(1.0 - theta) + log_minus)


def replicates_to_exclude(values, low: float, high: float, value: float,
                          alpha: float = ALPHA) -> float:
    """How many more observations the CS needs to exclude `value` if the capital keeps
    growing at its average rate so far: 0 when already excluded, inf when not growing.
    A projection for planning runs, never used for a verdict."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.inf
    path = log_capital_path((values - low) / (high - low), np.array([(value - low)
                                                                     / (high - low)]), alpha)
    goal = math.log(1.0 / alpha)
    if path.max() >= goal:
        return 0.0
    now = float(path[-1, 0])
    # The winning bettor's own growth per observation (without the hedge's log 1/2).
    rate = (now - math.log(0.5)) / len(values)
    return math.inf if rate <= 0 else float(math.ceil((goal - now) / rate))


def mean_cs(values, low: float, high: float, alpha: float = ALPHA,
            points: tuple[float, ...] = ()) -> Interval:
    """(1 - alpha) confidence sequence for the mean of i.i.d. values in [low, high].

    `points` are values (decision thresholds) evaluated exactly besides the grid, so a
    verdict never depends on the grid's spacing. Each bettor's capital is monotone in the
    candidate mean (every factor 1 + lambda (x - m), with lambda truncated at c/m, falls
    as m rises; the down-bettor's rises), so the candidates the up-bettor keeps form an
    upper set and the down-bettor's a lower set: each end is found by bisection over the
    sorted candidates, the same ends a scan of every candidate finds.
    """
    values = np.asarray(values, dtype=float)
    if np.any(values < low - 1e-12) or np.any(values > high + 1e-12):
        raise ValueError(f"values outside the declared range [{low:g}, {high:g}]")
    n = len(values)
    if n == 0:
        return Interval(math.nan, low, high, 0)
    width = high - low
    x01 = (values - low) / width
    extra = (np.asarray(points, dtype=float) - low) / width
    m = np.unique(np.concatenate([GRID, np.clip(extra, 0.0, 1.0)]))
    lam = _bets(x01, alpha)

    def up_keeps(i: int) -> bool:  # the up-bettor has not excluded m[i]
        return not _beyond(x01, lam, float(m[i]), alpha)[1]

    def down_keeps(i: int) -> bool:
        return not _beyond(x01, lam, float(m[i]), alpha)[0]

    first = _first_true(up_keeps, len(m))  # up_keeps: False ... False True ... True
    last = _first_true(lambda i: not down_keeps(i), len(m)) - 1  # down_keeps: True .. False
    estimate = float(values.mean())
    if first > last:  # every candidate excluded: the sample mean is the best guess
        return Interval(estimate, estimate, estimate, n, empty=True)
    return Interval(estimate, low + width * float(m[first]), low + width * float(m[last]), n)


def mean_cs_bounded(lowest, highest, low: float, high: float, alpha: float = ALPHA,
                    points: tuple[float, ...] = ()) -> Interval:
    """mean_cs when some values are known only to lie in a range (a run that errored):
    `lowest` and `highest` hold every value at the low and at the high end of its range
    (equal where it is known). The lower end is the CS's lower end on `lowest`, the upper
    end its upper end on `highest` (Manski's worst-case bounds): the mean of `lowest` is at
    most the true mean, so a lower end above the truth needs one above the mean of
    `lowest`, which has probability at most alpha/2 (the hedged CS's one-sided error),
    whatever made the values missing; likewise above. The estimate is the midpoint of the
    two sample means."""
    lowest, highest = np.asarray(lowest, dtype=float), np.asarray(highest, dtype=float)
    at_low = mean_cs(lowest, low, high, alpha, points)
    if np.array_equal(lowest, highest):
        return at_low
    at_high = mean_cs(highest, low, high, alpha, points)
    return Interval((float(lowest.mean()) + float(highest.mean())) / 2.0, at_low.low,
                    at_high.high, len(lowest), at_low.empty or at_high.empty)


def _first_true(predicate, size: int) -> int:
    """The first index in [0, size) where a monotone predicate (False..False True..True)
    holds, or size."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _beyond(x01: np.ndarray, lam: np.ndarray, m: float, alpha: float):
    """(mean < m shown, mean > m shown) for one candidate m, given the bets; x01 may hold
    several sequences as columns (the answers are then arrays)."""
    diff = x01 - m
    up = np.minimum(lam, TRUNCATION / max(m, 1e-12))
    down = np.minimum(lam, TRUNCATION / max(1.0 - m, 1e-12))
    goal = math.log(1.0 / alpha) - math.log(0.5)
    return (np.cumsum(np.log1p(-down * diff), axis=0).max(axis=0) >= goal,
            np.cumsum(np.log1p(up * diff), axis=0).max(axis=0) >= goal)


def mean_is_beyond(x01: np.ndarray, m: float, alpha: float = ALPHA):
    """(mean < m shown, mean > m shown): whether the down-bettor's or the up-bettor's
    hedged capital at m ever reached 1/alpha. One point instead of a grid: the same test
    `mean_cs` applies at m, for callers that need only that point. x01 of shape (n, k)
    tests k sequences at once (the answers are then boolean arrays)."""
    x01 = np.asarray(x01, dtype=float)
    if len(x01) == 0:
        if x01.ndim == 2:
            return np.zeros(x01.shape[1], bool), np.zeros(x01.shape[1], bool)
        return False, False
    below, above = _beyond(x01, _bets(x01, alpha), m, alpha)
    if x01.ndim == 1:
        return bool(below), bool(above)
    return below, above


def median_cs(values, alpha: float = ALPHA, points: tuple[float, ...] = ()) -> Interval:
    """(1 - alpha) confidence sequence for the median of i.i.d. values (+inf allowed).

    By inversion: r is excluded as a median when P(value <= r) is shown below 1/2 or
    P(value < r) above 1/2 (each a Bernoulli mean, tested as in `mean_cs`). Checked at
    every observed value, at `points`, and just outside the observed range (an end that
    survives there is unbounded); the interval is the hull of the survivors.
    """
    values = np.asarray(values, dtype=float)
    if np.isnan(values).any():
        raise ValueError("median_cs: NaN among the values")
    n = len(values)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)

    def survives(at_most: np.ndarray, below: np.ndarray) -> np.ndarray:
        # one column per candidate: r survives unless P(value <= r) < 1/2 or
        # P(value < r) > 1/2 is shown
        return ~(mean_is_beyond(at_most.astype(float), 0.5, alpha)[0]
                 | mean_is_beyond(below.astype(float), 0.5, alpha)[1])

    candidates = np.unique(np.concatenate([values, np.asarray(points, dtype=float)]))
    at_most = values[:, None] <= candidates[None, :]
    below = values[:, None] < candidates[None, :]
    kept = [float(r) for r in candidates[survives(at_most, below)]]
    # The open gap after each candidate (the indicators are constant inside it): a
    # surviving gap puts both of its ends in the hull.
    gaps = survives(at_most[:, :-1], at_most[:, :-1])
    for r, following in zip(candidates[:-1][gaps], candidates[1:][gaps]):
        kept += [float(r), float(following)]
    if survives(np.zeros((n, 1), bool), np.zeros((n, 1), bool))[0]:  # below every one
        kept.append(-math.inf)
    if np.isfinite(values.max()) and survives(np.ones((n, 1), bool),
                                              np.ones((n, 1), bool))[0]:  # above every one
        kept.append(math.inf)
    estimate = float(np.median(values))
    if not kept:
        return Interval(estimate, estimate, estimate, n, empty=True)
    return Interval(estimate, min(kept), max(kept), n)
