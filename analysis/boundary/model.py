"""The interval-censored boundary regression with seed as block, its profile-likelihood
interval on the slope, the identified set when the data separate, and the verdict per
regime (see the package docstring, 'Model', 'Separation', 'Calibration')."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps
from scipy.special import log_ndtr

from analysis.stats.alpha import ALPHA


# The regime hypothesis as a slope: along the stability boundary, d log lr / d log eps is
# 1 where the update is momentum SGD with step lr/eps, 0 where eps does not matter.
# A regime's prediction holds when the slope's interval lies within its band (within a
# factor of 2 of 1; within +-0.5 of 0), and fails when the interval misses the band
# entirely (fixed before any map was run).
REGIME_PREDICTION = {"large_eps": 1.0, "small_eps": 0.0}
REGIME_BANDS = {"large_eps": (0.5, 2.0), "small_eps": (-0.5, 0.5)}
REGIME_TEXT = {"large_eps": "large eps (Adam ~ momentum SGD with step lr/eps)",
               "small_eps": "small eps (Adam proper)"}
# The noise scale of the boundary (log lr units) is held at or above 1% ...
SIGMA_FLOOR = 0.01
# ... and at or above this share of the regime's median bracket (log width): a boundary
# whose noise is below about half a bracket leaves the brackets consistent with one line
# as often as not, so separated data cannot tell it from a sharp one, and the fit does not
# assume it sharper than the brackets resolve (coverage when the data separated by chance:
# benchmarks/sim_boundary.py).
RESOLUTION_SHARE = 0.5
# A profile interval end beyond this distance from the estimate is reported as infinite.
FAR = 50.0


def _log_mass(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """log(Phi(upper) - Phi(lower)) for upper > lower, accurate in both tails."""
    flip = lower > 0  # both in the upper tail: Phi(-lower) - Phi(-upper) is the same mass
    hi = np.where(flip, -lower, upper)
    lo = np.where(flip, -upper, lower)
    log_hi = log_ndtr(hi)
    with np.errstate(divide="ignore"):
        return log_hi + np.log1p(-np.exp(np.minimum(log_ndtr(lo) - log_hi, 0.0)))


def _parts(theta: np.ndarray, upper: np.ndarray, lower: np.ndarray, Z: np.ndarray
           ) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, gradient and Hessian in theta = (mean coefficients / sigma,
    1 / sigma) of brackets (lower, upper] (shifted by any fixed offset), design Z."""
    g, kappa = theta[:-1], theta[-1]
    lin = Z @ g
    fin_u, fin_l = np.isfinite(upper), np.isfinite(lower)
    u = np.where(fin_u, kappa * np.where(fin_u, upper, 0.0) - lin, np.inf)
    v = np.where(fin_l, kappa * np.where(fin_l, lower, 0.0) - lin, -np.inf)
    logp = _log_mass(u, v)
    loglik = float(logp.sum())
    u0, v0 = np.where(fin_u, u, 0.0), np.where(fin_l, v, 0.0)
    log_phi0 = -0.5 * math.log(2 * math.pi)
    with np.errstate(over="ignore", invalid="ignore"):
        # phi(u) / P and phi(v) / P; an open (censored) end contributes nothing.
        r_u = np.where(fin_u, np.exp(log_phi0 - 0.5 * u0**2 - logp), 0.0)
        r_l = np.where(fin_l, np.exp(log_phi0 - 0.5 * v0**2 - logp), 0.0)
    d_u = np.column_stack([-Z, np.where(fin_u, upper, 0.0)])
    d_l = np.column_stack([-Z, np.where(fin_l, lower, 0.0)])
    grad = d_u.T @ r_u - d_l.T @ r_l
    h_uu = -u0 * r_u - r_u**2
    h_ll = v0 * r_l - r_l**2
    h_ul = r_u * r_l
    hess = ((d_u.T * h_uu) @ d_u + (d_l.T * h_ll) @ d_l + (d_u.T * h_ul) @ d_l
            + (d_l.T * h_ul) @ d_u)
    return loglik, grad, hess


def _maximise(upper: np.ndarray, lower: np.ndarray, Z: np.ndarray, start: np.ndarray,
              sigma_floor: float = SIGMA_FLOOR, max_iter: int = 100
              ) -> tuple[float, np.ndarray]:
    """Maximise the concave log-likelihood by Newton's method with backtracking; 1/sigma
    is kept within [1/1000, 1/sigma_floor] (a bound leaves the step while the gradient
    pushes against it). Returns (log-likelihood, theta)."""
    kappa_max, kappa_min = 1.0 / sigma_floor, 1e-3
    theta = start.copy()
    theta[-1] = min(max(theta[-1], kappa_min), kappa_max)
    loglik, grad, hess = _parts(theta, upper, lower, Z)
    for _ in range(max_iter):
        free = np.ones(len(theta), dtype=bool)
        at_max = theta[-1] >= kappa_max * (1 - 1e-12) and grad[-1] > 0
        at_min = theta[-1] <= kappa_min * (1 + 1e-12) and grad[-1] < 0
        if at_max or at_min:
            free[-1] = False
        h = -hess[np.ix_(free, free)]
        # A small ridge keeps the step finite along directions the data leave flat
        # (a censored seed whose offset may go anywhere).
        ridge = 1e-9 * max(1.0, float(np.abs(np.diag(h)).max(initial=0.0)))
        try:
            step_free = np.linalg.solve(h + ridge * np.eye(len(h)), grad[free])
        except np.linalg.LinAlgError:
            step_free = grad[free]
        step = np.zeros_like(theta)
        step[free] = step_free
        slope = float(grad @ step)
        if slope <= 1e-12:
            break
        t = 1.0
        for _ in range(50):
            trial = theta + t * step
            trial[-1] = min(max(trial[-1], kappa_min), kappa_max)
            new = _parts(trial, upper, lower, Z)
            if np.isfinite(new[0]) and new[0] >= loglik + 1e-4 * t * slope:
                break
            t /= 2.0
        else:
            break
        gain = new[0] - loglik
        theta, (loglik, grad, hess) = trial, new
        if gain < 1e-10:
            break
    return loglik, theta


@dataclass
class Problem:
    """Brackets of one regime in log units with the design of the mean."""

    lower: np.ndarray  # log low end (-inf when censored below)
    upper: np.ndarray  # log high end (inf when censored above)
    x: np.ndarray  # log across value, centred
    centre: float  # the log across value the slope pivots about
    seeds: np.ndarray  # seed of each bracket
    sigma_floor: float = SIGMA_FLOOR
    Z: np.ndarray = field(init=False)  # intercept, slope, seed contrasts (sum to zero)

    def __post_init__(self):
        levels = sorted(set(self.seeds.tolist()))
        columns = [np.ones(len(self.x)), self.x]
        for level in levels[1:]:
            columns.append((self.seeds == level).astype(float)
                           - (self.seeds == levels[0]).astype(float))
        self.Z = np.column_stack(columns)

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def p(self) -> int:
        return self.Z.shape[1]

    def _start(self, Z: np.ndarray, offset: np.ndarray) -> np.ndarray:
        # Midpoints of the brackets (a censored one: one unit past its finite end).
        mid = np.where(np.isfinite(self.lower) & np.isfinite(self.upper),
                       (self.lower + self.upper) / 2,
                       np.where(np.isfinite(self.lower), self.lower + 1.0, self.upper - 1.0))
        coef = np.linalg.lstsq(Z, mid - offset, rcond=None)[0] if Z.shape[1] else np.zeros(0)
        spread = float(np.sqrt(np.mean((mid - offset - Z @ coef) ** 2))) if Z.shape[1] else 1.0
        sigma = max(spread, 0.3)
        return np.append(coef / sigma, 1.0 / sigma)

    def fit(self, v: np.ndarray | None = None, value: float = 0.0
            ) -> tuple[float, np.ndarray]:
        """Maximum log-likelihood, with v . beta = value when v is given; returns
        (log-likelihood, beta) in log units."""
        if v is None:
            Z, offset, back = self.Z, np.zeros(self.n), None
        else:
            # beta = value v / |v|^2 + N delta, N spanning the coefficients orthogonal to v.
            direction = v / float(v @ v)
            null = _null_space(v)
            Z, offset, back = self.Z @ null, value * (self.Z @ direction), (direction, null)
        upper, lower = self.upper - offset, self.lower - offset
        loglik, theta = _maximise(upper, lower, Z, self._start(Z, offset), self.sigma_floor)
        coef = theta[:-1] / theta[-1]
        beta = coef if back is None else value * back[0] + back[1] @ coef
        return loglik, beta

    def fit_columns(self) -> float:
        """Maximum log-likelihood with one free boundary per column (seed offsets kept):
        the alternative of the lack-of-fit test of the line."""
        columns = sorted(set(self.x.tolist()))
        Z = np.column_stack([(self.x == c).astype(float) for c in columns]
                            + [self.Z[:, k] for k in range(2, self.p)])
        return _maximise(self.upper, self.lower, Z, self._start(Z, np.zeros(self.n)),
                         self.sigma_floor)[0]

    def identified(self, v: np.ndarray) -> tuple[float, float] | None:
        """The range of v . beta over the lines that pass through every bracket (a linear
        programme); None when no line does."""
        rows, bounds = [], []
        for i in range(self.n):
            if np.isfinite(self.upper[i]):
                rows.append(self.Z[i])
                bounds.append(self.upper[i])
            if np.isfinite(self.lower[i]):
                rows.append(-self.Z[i])
                bounds.append(-self.lower[i])
        if not rows:
            return -math.inf, math.inf
        ends = []
        for sign in (1.0, -1.0):
            result = optimize.linprog(sign * v, A_ub=np.array(rows), b_ub=np.array(bounds),
                                      bounds=[(None, None)] * self.p, method="highs")
            if result.status == 2:
                return None
            ends.append(-sign * math.inf if result.status == 3 else sign * result.fun)
        return ends[0], ends[1]


def _null_space(v: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the vectors orthogonal to v (columns)."""
    _, _, vt = np.linalg.svd(v[None, :])
    return vt[1:].T


def threshold(n: int, p: int, alpha: float) -> float:
    """2 x the log-likelihood drop that bounds the interval: n log(1 + F / (n - p)), the
    likelihood-ratio form of the t interval for n uncensored Gaussian observations and p
    mean parameters (chi-square's 3.84 when n is large). NaN without residual freedom."""
    df = n - p
    if df < 1:
        return math.nan
    return n * math.log1p(float(sps.f.ppf(1 - alpha, 1, df)) / df)


def profile_interval(problem: Problem, v: np.ndarray, loglik_max: float, estimate: float,
                     cut: float) -> tuple[float, float]:
    """{t : 2 (l_max - l_p(t)) <= cut} for t = v . beta, with l_p the profile
    log-likelihood. The set is an interval (the likelihood is concave in the parameters of
    Problem.fit); its ends are found by stepping out from the estimate and bisecting."""
    target = loglik_max - cut / 2

    def gap(t: float) -> float:
        return problem.fit(v, t)[0] - target

    ends = []
    for direction in (-1.0, 1.0):
        inner, step = estimate, 0.05
        while True:
            t = estimate + direction * step
            if gap(t) <= 0:
                a, b = sorted((inner, t))
                ends.append(optimize.brentq(gap, a, b, xtol=1e-4))
                break
            inner, step = t, step * 2
            if step > FAR:
                ends.append(direction * math.inf)
                break
    return ends[0], ends[1]


def likelihood_interval(problem: Problem, v: np.ndarray, loglik_max: float,
                        beta: np.ndarray, cut: float) -> tuple[float, float]:
    """The interval of t = v . beta: the profile-likelihood interval joined with the
    identified set. Where lines pass through every bracket, the likelihood's supremum as
    sigma -> 0 is its overall maximum at every t those lines reach, so those t belong in
    the interval whatever floor sigma is held at."""
    low, high = profile_interval(problem, v, loglik_max, float(v @ beta), cut)
    identified = problem.identified(v)
    if identified is not None:
        low, high = min(low, identified[0]), max(high, identified[1])
    return low, high


@dataclass
class RegimeFit:
    """The boundary line of one regime: log B = a + b (log across - centre), with the
    slope's interval and the band around the line."""

    regime: str
    problem: Problem
    loglik: float
    beta: np.ndarray
    cut: float
    slope_low: float
    slope_high: float
    identified: tuple[float, float] | None  # slopes of the lines through every bracket

    @property
    def slope(self) -> float:
        return float(self.beta[1])

    @property
    def intercept(self) -> float:
        return float(self.beta[0])

    def band(self, across_values) -> pd.DataFrame:
        """The fitted boundary (seed-average line) at each across value with its pointwise
        profile-likelihood interval at the slope's level; values in the along axis' units."""
        rows = []
        for value in across_values:
            x0 = math.log(value) - self.problem.centre
            v = np.zeros(self.problem.p)
            v[0], v[1] = 1.0, x0
            centre = float(v @ self.beta)
            low, high = likelihood_interval(self.problem, v, self.loglik, self.beta, self.cut)
            rows.append({"across": float(value), "boundary": math.exp(centre),
                         "low": math.exp(low) if np.isfinite(low) else 0.0,
                         "high": math.exp(high) if np.isfinite(high) else math.inf})
        return pd.DataFrame(rows)


def fit_regime(table: pd.DataFrame, regime: str, across: str, alpha: float = ALPHA
               ) -> RegimeFit | str:
    """The boundary line of a regime from its brackets, or why it cannot be fitted."""
    if table[across].nunique() < 2:
        return "not testable: needs brackets in at least two columns of this regime"
    log_across = np.log(table[across].to_numpy(dtype=float))
    centre = float(np.mean(np.unique(log_across)))
    with np.errstate(divide="ignore"):
        lower = np.log(table["low"].to_numpy(dtype=float))
        upper = np.log(table["high"].to_numpy(dtype=float))
    widths = (upper - lower)[np.isfinite(upper - lower)]
    floor = max(SIGMA_FLOOR, RESOLUTION_SHARE * float(np.median(widths))) if len(widths) \
        else SIGMA_FLOOR
    problem = Problem(lower=lower, upper=upper, x=log_across - centre, centre=centre,
                      seeds=table["seed"].to_numpy(), sigma_floor=floor)
    cut = threshold(problem.n, problem.p, alpha)
    if not np.isfinite(cut):
        return (f"not testable: {problem.n} brackets leave no residual freedom for "
                f"{problem.p} parameters (more seeds or columns)")
    loglik, beta = problem.fit()
    slope_v = np.zeros(problem.p)
    slope_v[1] = 1.0
    low, high = likelihood_interval(problem, slope_v, loglik, beta, cut)
    return RegimeFit(regime=regime, problem=problem, loglik=loglik, beta=beta, cut=cut,
                     slope_low=low, slope_high=high, identified=problem.identified(slope_v))


def verdict(regime: str, low: float, high: float) -> str:
    """supported: the slope's interval lies within the regime's band; refuted: it misses
    the band; inconclusive otherwise (an interval with an infinite end included)."""
    band_low, band_high = REGIME_BANDS[regime]
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    if band_low <= low and high <= band_high:
        return "supported"
    if low > band_high or high < band_low:
        return "refuted"
    return "inconclusive"
