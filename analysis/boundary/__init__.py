"""The stability boundary of a map and the lr/eps regime test, valid when the data separate.

The question (Choi et al. 2019, arXiv 1910.05446): with eps >> sqrt(v_hat) Adam is momentum
SGD with step lr/eps, so the boundary between the lr values that train and those that fail
runs along lr/eps = const in the (log lr, log eps) plane, slope d log lr / d log eps = 1;
with tiny eps, eps does not enter the update, slope 0. Which columns (eps values) belong to
which regime is fixed by the preset before running (BoundarySpec.regimes); each column's
measured eps_dominance is reported beside it as a check and assigns nothing.

Data. In each column and seed the runs at the lr values tried bracket that seed's boundary
B. With side `lower` (runs fail below B): B lies in (L, U], L the highest failed lr and U
the lowest fine one. A column-seed whose outcomes are not monotone in lr (a failure above
a fine run) gets the widened bracket (lowest fine, highest failed] and is counted; one
where every lr failed (or none did) is censored, (L, inf) or (0, U].

Why not a logistic fit of failure on log lr and log eps: when a line separates the failed
runs from the fine ones, the maximum-likelihood slope is infinite, and a Wald or Fieller
interval on penalised (Firth) estimates narrows as the same pattern is replicated until it
excludes slopes that no run contradicts. The brackets are what the data say; the model
below is about them.

Model (interval-censored boundary regression, seed as block):
    log B_es = a + b (log eps_e - centre) + c_s + e_es,   e_es ~ N(0, sigma^2),
c_s fixed seed offsets summing to zero: replicate s trains with seed s in every column
(common random numbers), and a seed whose boundary sits higher in every column shifts all
its brackets; the block absorbs that and leaves the slope. A bracket's likelihood is
Phi((log U - mu) / sigma) - Phi((log L - mu) / sigma). In the parameters (mean / sigma,
1 / sigma) the log-likelihood is concave (Pratt 1981, Burridge 1981), and fixing a linear
function of the mean parameters (the slope, or the line's height at one eps) is a linear
constraint there, so every profile point is a concave maximisation with one optimum, and
the profile likelihood's confidence set is an interval.

Separation. When some line (one per seed, common slope) passes through every bracket, the
likelihood's supremum is 1, reached as sigma -> 0 anywhere in the identified set of slopes
{b : a line of slope b passes through every bracket}. The profile interval then contains
the whole identified set, so replicating a pattern cannot shrink it below what the lr grid
resolves; only narrower brackets (refinement) can. The identified set is computed exactly
(a linear programme), joined to the interval and reported, and separation is flagged.
sigma is held at or above half the regime's median bracket width (RESOLUTION_SHARE): the
data cannot tell a boundary that sharp from a sharper one, and a fit that took sigma -> 0
would claim the boundary lies anywhere in the brackets with certainty.

Calibration. The interval is {b : 2 (l_max - l_p(b)) <= c} with c = n log(1 + F/(n - p)),
F the 1 - alpha quantile of F(1, n - p), n brackets and p mean parameters: the
likelihood-ratio form of the exact t interval for uncensored Gaussian data. The chi-square
quantile (3.84) under-covers with the few columns a regime has. Coverage by simulation:
benchmarks/sim_boundary.py (study/boundary_sim.py).

Verdict per regime: supported when the slope's interval lies within the regime's band,
refuted when it misses the band, inconclusive otherwise.

Modules: brackets (the data), model (the regression, its interval, the verdict), regimes
(the test on a study's runs). The names callers use are re-exported here.
"""

from analysis.boundary.brackets import bracket, brackets, failed, regime_of
from analysis.boundary.model import (FAR, REGIME_BANDS, REGIME_PREDICTION, REGIME_TEXT,
                                     RESOLUTION_SHARE, SIGMA_FLOOR, Problem, RegimeFit,
                                     fit_regime, likelihood_interval, profile_interval, threshold,
                                     verdict)
from analysis.boundary.regimes import (EPS_DOMINANCE_THRESHOLD, METHOD, REGIME_COLUMNS,
                                       BoundaryAnalysis, boundary_block, column_table, not_run,
                                       regime_test)

__all__ = [
    "EPS_DOMINANCE_THRESHOLD", "FAR", "METHOD", "REGIME_BANDS", "REGIME_COLUMNS",
    "REGIME_PREDICTION", "REGIME_TEXT", "RESOLUTION_SHARE", "SIGMA_FLOOR", "BoundaryAnalysis",
    "Problem", "RegimeFit", "boundary_block", "bracket", "brackets", "column_table", "failed",
    "fit_regime", "likelihood_interval", "not_run", "profile_interval", "regime_of",
    "regime_test", "threshold", "verdict",
]
