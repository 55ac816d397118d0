"""The regime test on a study's runs: brackets per regime, the fit, the verdict, and the
columns' measured eps_dominance as a check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.boundary.brackets import brackets, regime_of
from analysis.boundary.model import REGIME_BANDS, REGIME_PREDICTION, RegimeFit, fit_regime, verdict
from analysis.record import BoundarySpec
from analysis.runs import full_budget, same_value
from analysis.stats.alpha import ALPHA


# The check on the design's regimes: a large-eps column should have most Adam coordinates
# with sqrt(v_hat) < eps (median eps_dominance above this), a small-eps column should not.
EPS_DOMINANCE_THRESHOLD = 0.5
METHOD = ("interval-censored boundary regression (log boundary lr on log eps, seed as "
          "block), profile-likelihood interval with the t-exact threshold")


REGIME_COLUMNS = ["regime", "prediction", "band_low", "band_high", "columns", "n_seeds",
                  "n_brackets", "n_censored", "n_not_monotone", "slope", "slope_low",
                  "slope_high", "identified_low", "identified_high", "separated",
                  "p_linearity", "eps_dominance_check", "verdict", "method", "note"]


@dataclass
class BoundaryAnalysis:
    """The regime test's results: one row per regime (`table`), the brackets per column
    and seed, the columns with their measured eps_dominance, and the fitted lines."""

    table: pd.DataFrame
    brackets: pd.DataFrame
    columns: pd.DataFrame
    fits: dict[str, RegimeFit] = field(default_factory=dict)
    spec: BoundarySpec | None = None


def not_run(note: str) -> BoundaryAnalysis:
    rows = [_empty_row(regime, note) for regime in REGIME_PREDICTION]
    return BoundaryAnalysis(table=pd.DataFrame(rows, columns=REGIME_COLUMNS),
                            brackets=pd.DataFrame(), columns=pd.DataFrame())


def _empty_row(regime: str, note: str) -> dict:
    row = dict.fromkeys(REGIME_COLUMNS, math.nan)
    row.update(regime=regime, prediction=REGIME_PREDICTION[regime],
               band_low=REGIME_BANDS[regime][0], band_high=REGIME_BANDS[regime][1],
               columns="", separated="", eps_dominance_check="", verdict="inconclusive",
               method=METHOD, note=note)
    return row


def column_table(runs: pd.DataFrame, spec: BoundarySpec) -> pd.DataFrame:
    """Each column's regime (by design) and its runs' median eps_dominance, as a check: a
    large-eps column should exceed EPS_DOMINANCE_THRESHOLD, a small-eps one should not."""
    complete = full_budget(runs)
    rows = []
    values = sorted(pd.to_numeric(complete[spec.across]).unique()) if len(complete) else []
    for value, regime in zip(values, regime_of(values, spec)):
        in_column = complete[same_value(pd.to_numeric(complete[spec.across]), value)]
        dominance = (pd.to_numeric(in_column["median_eps_dominance"], errors="coerce")
                     .median() if "median_eps_dominance" in in_column else math.nan)
        expected = {"large_eps": True, "small_eps": False}.get(regime)
        agrees = ("" if expected is None or not np.isfinite(dominance) else
                  "yes" if (dominance > EPS_DOMINANCE_THRESHOLD) == expected else "no")
        rows.append({spec.across: float(value), "regime": regime or "",
                     "n_runs": len(in_column), "median_eps_dominance": dominance,
                     "dominance_agrees": agrees})
    return pd.DataFrame(rows, columns=[spec.across, "regime", "n_runs",
                                       "median_eps_dominance", "dominance_agrees"])


def _dominance_check(columns: pd.DataFrame, regime: str, across: str) -> str:
    mine = columns[columns["regime"] == regime]
    measured = mine[mine["dominance_agrees"] != ""]
    if measured.empty:
        return "no eps_dominance measured"
    off = measured[measured["dominance_agrees"] == "no"]
    text = f"{len(measured) - len(off)}/{len(measured)} columns agree"
    if len(off):
        text += "; not: " + ", ".join(f"{across} {r[across]:g} ({r['median_eps_dominance']:.2f})"
                                      for _, r in off.iterrows())
    return text


def regime_test(runs: pd.DataFrame, spec: BoundarySpec, alpha: float = ALPHA
                ) -> BoundaryAnalysis:
    """The boundary slope of each regime the preset names, with its verdict.

    `runs` are the runs of the block that varies `spec.along` and `spec.across` (every
    wave: refinement points included); full-budget runs only enter the brackets.
    """
    if not {spec.along, spec.across} <= set(runs.columns):
        return not_run(f"not testable: {spec.along} and {spec.across} are not both axes")
    table = brackets(runs, spec)
    columns = column_table(runs, spec)
    rows, fits = [], {}
    for regime, values in spec.regimes.items():
        mine = table[table["regime"] == regime]
        row = _empty_row(regime, "")
        row.update(columns=", ".join(f"{v:g}" for v in values),
                   n_seeds=mine["seed"].nunique(), n_brackets=len(mine),
                   n_censored=int((mine["censored"] != "").sum()),
                   n_not_monotone=int((~mine["monotone"].astype(bool)).sum()),
                   eps_dominance_check=_dominance_check(columns, regime, spec.across))
        if mine.empty:
            row["note"] = "no full-budget runs in this regime's columns"
            rows.append(row)
            continue
        fit = fit_regime(mine, regime, spec.across, alpha)
        if isinstance(fit, str):
            row["note"] = fit
            rows.append(row)
            continue
        fits[regime] = fit
        identified = fit.identified
        two_sided = bool((mine["censored"] == "").any())
        separated = identified is not None and bool(mine["monotone"].all()) and two_sided
        lack = 2 * (fit.problem.fit_columns() - fit.loglik)
        n_columns = mine[spec.across].nunique()
        row.update(slope=fit.slope, slope_low=fit.slope_low, slope_high=fit.slope_high,
                   identified_low=identified[0] if identified else math.nan,
                   identified_high=identified[1] if identified else math.nan,
                   separated="yes" if separated else "no" if two_sided else "n/a",
                   p_linearity=float(sps.chi2.sf(max(lack, 0.0), n_columns - 2))
                   if n_columns > 2 else math.nan,
                   verdict=verdict(regime, fit.slope_low, fit.slope_high))
        notes = []
        if separated:
            notes.append("separated: a line per seed passes through every bracket, so the "
                         "noise scale's estimate is 0 and a Wald interval would be invalid; "
                         "the interval contains the identified set")
        if not two_sided:
            notes.append(f"every bracket is censored: no {spec.along} tried lies on both "
                         "sides of the boundary")
        elif row["n_censored"]:
            notes.append(f"{row['n_censored']} censored bracket(s)")
        if row["n_not_monotone"]:
            notes.append(f"{row['n_not_monotone']} column-seed(s) not monotone in "
                         f"{spec.along} (widened brackets)")
        if not (np.isfinite(fit.slope_low) and np.isfinite(fit.slope_high)):
            notes.append("the brackets do not bound the slope")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return BoundaryAnalysis(table=pd.DataFrame(rows, columns=REGIME_COLUMNS),
                            brackets=table, columns=columns, fits=fits, spec=spec)


def boundary_block(blocks: list, spec: BoundarySpec):
    """The block of the design (analysis.load.Block) that varies both spec.along and
    spec.across; None when no block does."""
    return next((b for b in blocks if {spec.along, spec.across} <= set(b.axes)), None)
