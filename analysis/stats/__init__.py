"""Statistics on the tidy trial table: pure functions of DataFrames, no I/O, one module
per concept (alpha, endpoints, factors, cells, sequential, firth, interactions,
importance); the names callers use are re-exported here.

What is tested and how (analysis.md):
  * outcome rates per cell with 95% anytime-valid confidence sequences (stats.sequential),
    and the cell's stable / unstable / uncertain status from them;
  * median final PER per cell with its exact order-statistic interval;
  * interaction of each pair of axes:
      - final PER: two-way ANOVA with interaction, type III sums of squares with
        sum-to-zero contrasts (the cells are unbalanced once runs fail), the other varied
        axes entered as additive blocks; partial eta^2 as the effect size;
      - binary endpoints (collapse / divergence / failure): Firth-penalised logistic
        regression (Firth 1993) with a penalised likelihood-ratio test of the interaction
        columns (Heinze & Schemper 2002), because cells that always or never fail make the
        maximum-likelihood fit separate; separation is detected (Konis 2007) and reported;
  * Holm's step-down adjustment across all pairs x endpoints (Holm 1979);
  * functional-ANOVA variance shares of main effects and pairwise interactions: exact
    from cell means on a complete grid, or from a random-forest surrogate predicted on a
    grid of the sampled values (Hutter, Hoos & Leyton-Brown, ICML 2014) with its
    out-of-bag R^2;
The lr/eps regime test (the boundary's slope) is analysis.boundary's.
"""

from analysis.stats import sequential
from analysis.stats.alpha import ALPHA
from analysis.stats.cells import STABLE_RATE_THRESHOLD, cell_status, cell_summary, median_interval
from analysis.stats.endpoints import (ENDPOINT_TEXT, ENDPOINTS, FAILURES, PER_COLUMN, PER_EXCLUDED,
                                      endpoint_indicator, full_budget, per_set)
from analysis.stats.factors import N_BINS, Factor, binning_notes, factorize, format_value
from analysis.stats.firth import FirthTest, firth_constrained_fit, firth_lrt
from analysis.stats.importance import cell_mean_cube, fanova, grid_shares, surrogate_shares
from analysis.stats.interactions import (FIRTH_METHOD, PER_METHOD, anova_interaction,
                                         drop_unused_levels, factor_term, holm, holm_secondary,
                                         interaction_tests, logistic_interaction)

__all__ = [
    "ALPHA", "ENDPOINTS", "ENDPOINT_TEXT", "FAILURES", "FIRTH_METHOD", "N_BINS", "PER_COLUMN",
    "PER_EXCLUDED", "PER_METHOD", "STABLE_RATE_THRESHOLD", "Factor", "FirthTest",
    "anova_interaction", "binning_notes", "cell_mean_cube", "cell_status", "cell_summary",
    "drop_unused_levels", "endpoint_indicator", "factor_term", "factorize", "fanova",
    "firth_constrained_fit", "firth_lrt", "format_value", "full_budget", "grid_shares", "holm",
    "holm_secondary", "interaction_tests", "logistic_interaction", "median_interval",
    "per_set", "sequential", "surrogate_shares",
]
