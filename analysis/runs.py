"""Which runs count, and which runs sit at a design point: the full-budget rule and cell
matching, once for every reader of an experiment folder (analysis.load derives each run's
status; the claims, the statistics, the planner and the refinement select runs with these).
Pure functions of a trials table or a point; nothing here reads a folder."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

STATUSES: tuple[str, ...] = ("finished", "diverged", "stopped_early", "errored")
# Runs whose outcome is a complete observation: the only ones confirmatory statistics use.
FULL_BUDGET: tuple[str, ...] = ("finished", "diverged")

# Two values of an axis name the same design point when they agree to this relative
# tolerance (a value that went through YAML, JSON and back may differ in its last digits).
SAME_VALUE_RTOL = 1e-6


def is_full_budget(frame: pd.DataFrame, outcome_column: str = "outcome") -> pd.Series:
    """The runs whose outcome is a complete observation (finished, or diverged)."""
    return frame["status"].isin(FULL_BUDGET) & frame[outcome_column].notna()


def full_budget(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs whose outcome is a complete observation (finished, or diverged)."""
    return frame[is_full_budget(frame)]


def same_value(values: np.ndarray, value: float) -> np.ndarray:
    """Where an axis's values are `value` (to SAME_VALUE_RTOL)."""
    return np.isclose(values, float(value), rtol=SAME_VALUE_RTOL, atol=0.0)


def point_in_cell(point: dict[str, float], cell: dict[str, float]) -> bool:
    """Whether one design point has every value `cell` names (the same tolerance as
    in_cell, for a point rather than a table of runs)."""
    return all(axis in point and math.isclose(float(point[axis]), float(value),
                                              rel_tol=SAME_VALUE_RTOL)
               for axis, value in cell.items())


def in_cell(trials: pd.DataFrame, cell: dict[str, float]) -> pd.Series:
    """The runs at `cell`: every axis it names has the cell's value."""
    keep = pd.Series(True, index=trials.index)
    for axis, value in cell.items():
        keep &= same_value(pd.to_numeric(trials[axis], errors="coerce").to_numpy(dtype=float),
                           value)
    return keep
