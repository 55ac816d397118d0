"""One row per cell: denominators, outcome rates with anytime-valid confidence sequences,
the cell's stable / unstable / uncertain status, and the median PER with its exact
interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.alpha import ALPHA
from analysis.stats.endpoints import PER_COLUMN, full_budget, per_set
from analysis.stats.sequential import mean_cs
from trainable.contract import OUTCOMES

# A cell is called stable when at least this share of its runs are; cells whose 95%
# interval contains it are drawn as uncertain.
STABLE_RATE_THRESHOLD = 0.5


def median_interval(values, alpha: float = ALPHA) -> tuple[float, float, float]:
    """Median with its exact distribution-free (order-statistic, binomial) interval
    (scipy.stats.quantile_test); NaN ends when n is too small for any interval at this
    level (n < 6 at 95%): a percentile bootstrap of 3 runs would claim [min, max] with 75%
    coverage."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    median = float(np.median(values))
    if len(values) < 2:
        return median, math.nan, math.nan
    ci = sps.quantile_test(values, q=median, p=0.5).confidence_interval(1 - alpha)
    return median, float(ci.low), float(ci.high)


def cell_status(low: float, high: float, threshold: float = STABLE_RATE_THRESHOLD) -> str:
    """stable / unstable / uncertain: the cell's stable-rate interval against the
    threshold, the same rule the claims use (stats.sequential)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no runs"
    if low > threshold:
        return "stable"
    if high < threshold:
        return "unstable"
    return "uncertain"


def cell_summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One row per cell of `by` (level columns): denominators, outcome rates, median PER.

    Rates are over full-budget runs only (finished or diverged), each with its 95%
    anytime-valid confidence sequence (runs in seed order; valid however many waves added
    seeds to the cell); `status` reads the stable rate's against STABLE_RATE_THRESHOLD.
    The status counts show what else happened in the cell.
    """
    rows = []
    grouped = frame.groupby(by, observed=False, sort=True) if by else [((), frame)]
    for key, cell in grouped:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n_total"] = len(cell)
        for status in ("finished", "stopped_early", "diverged", "errored"):
            row[f"n_{status}"] = int((cell["status"] == status).sum())
        complete = full_budget(cell).sort_values("seed")
        n = len(complete)
        row["n"] = n
        for outcome in OUTCOMES:
            hits = (complete["outcome"] == outcome).to_numpy(dtype=float)
            cs = mean_cs(hits, 0.0, 1.0, ALPHA, (STABLE_RATE_THRESHOLD,))
            row[f"count_{outcome}"] = int(hits.sum())
            row[f"rate_{outcome}"] = cs.estimate
            row[f"lo_{outcome}"], row[f"hi_{outcome}"] = ((cs.low, cs.high) if n else
                                                          (math.nan, math.nan))
        row["status"] = cell_status(row["lo_stable"], row["hi_stable"])
        per_values = per_set(cell)[PER_COLUMN]
        row["per_n"] = len(per_values)
        row["per_median"], row["per_lo"], row["per_hi"] = median_interval(per_values)
        rows.append(row)
    return pd.DataFrame(rows)
