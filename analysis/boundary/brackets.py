"""Each column-seed's bracket on the boundary: from the lr values tried and whether each
run failed (see the package docstring, 'Data')."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.runs import full_budget
from analysis.record import BoundarySpec


def failed(runs: pd.DataFrame, spec: BoundarySpec) -> pd.Series:
    """A run has failed when its final outcome is one the preset names."""
    return runs["outcome"].isin(spec.failed)


def regime_of(values, spec: BoundarySpec) -> list[str | None]:
    """The regime each column value belongs to by design (None: in no regime)."""
    out = []
    for value in values:
        found = None
        for regime, columns in spec.regimes.items():
            if any(math.isclose(float(value), c, rel_tol=1e-6) for c in columns):
                found = regime
        out.append(found)
    return out


def bracket(values: np.ndarray, failures: np.ndarray, side: str) -> tuple[float, float, bool]:
    """(low, high, monotone): the interval (low, high] that holds one column-seed's boundary,
    from the `along` values tried and whether each run failed. 0 and inf mark censoring."""
    below = values[failures] if side == "lower" else values[~failures]
    above = values[~failures] if side == "lower" else values[failures]
    if len(above) == 0:
        return float(below.max()), math.inf, True
    if len(below) == 0:
        return 0.0, float(above.min()), True
    if below.max() < above.min():
        return float(below.max()), float(above.min()), True
    # Not monotone: the boundary is somewhere in the stretch where both outcomes occur.
    return float(above.min()), float(below.max()), False


def brackets(runs: pd.DataFrame, spec: BoundarySpec) -> pd.DataFrame:
    """One row per (column, seed) with a full-budget run: the bracket of its boundary.

    Columns: the `across` value, seed, low, high, ratio (high / low; inf when censored),
    censored ('below': the boundary lies below every value tried, 'above', or ''),
    monotone, n_runs, n_failed, tried (the values, ascending), regime (by design).
    """
    columns = [spec.across, "seed", "low", "high", "ratio", "censored", "monotone",
               "n_runs", "n_failed", "tried", "regime"]
    complete = full_budget(runs)
    if complete.empty or not {spec.across, spec.along} <= set(complete.columns):
        return pd.DataFrame(columns=columns)
    complete = complete.assign(_failed=failed(complete, spec).to_numpy(),
                               _along=pd.to_numeric(complete[spec.along]),
                               _across=pd.to_numeric(complete[spec.across]))
    rows = []
    for (column, seed), group in complete.groupby(["_across", "seed"], sort=True):
        values = group["_along"].to_numpy(dtype=float)
        failures = group["_failed"].to_numpy(dtype=bool)
        low, high, monotone = bracket(values, failures, spec.side)
        rows.append({spec.across: float(column), "seed": int(seed), "low": low, "high": high,
                     "ratio": high / low if low > 0 else math.inf,
                     "censored": "below" if low == 0 else "above" if math.isinf(high) else "",
                     "monotone": monotone, "n_runs": len(group),
                     "n_failed": int(failures.sum()), "tried": sorted(set(values.tolist()))})
    table = pd.DataFrame(rows, columns=columns[:-1])
    table["regime"] = regime_of(table[spec.across], spec)
    return table
