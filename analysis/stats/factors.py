"""The varied axes as categorical factors: a level column per axis, continuous axes cut
into quantile bins."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # the statistics sit below the folder loader; only the type is named
    from analysis.load import Axis

N_BINS = 4


@dataclass(frozen=True)
class Factor:
    """A varied axis as a categorical factor (binned when the axis is continuous)."""

    axis: str
    column: str  # ordered categorical level column in the prepared frame
    levels: tuple[str, ...]
    binned: bool
    log_scale: bool
    values: tuple[float, ...] | None  # numeric level values of an unbinned axis


def format_value(value) -> str:
    if isinstance(value, (int, float, np.floating, np.integer)):
        return f"{float(value):.3g}"
    return str(value)


def _level_column(axis: str) -> str:
    return re.sub(r"\W", "_", axis) + "__level"


def factorize(trials: pd.DataFrame, axes: list[Axis], n_bins: int = N_BINS
              ) -> tuple[pd.DataFrame, list[Factor]]:
    """Add an ordered level column per varied axis; continuous axes go to quantile bins.

    An axis is discrete when study.yaml declares grid values or it takes few distinct
    values; otherwise (random / TPE samples) it is cut at the quantiles of the sampled
    values, so every bin holds about the same number of runs.
    """
    frame = trials.copy()
    factors = []
    for axis in axes:
        if axis.name not in frame:
            continue
        raw = frame[axis.name]
        # 12 significant digits: a value that went through YAML, JSON and back is one level.
        numeric = pd.to_numeric(raw, errors="coerce").map(
            lambda v: float(f"{v:.12g}") if pd.notna(v) else v)
        is_numeric = numeric.notna().sum() == raw.notna().sum()
        observed = sorted((numeric if is_numeric else raw).dropna().unique())
        if len(observed) < 2:
            continue
        column = _level_column(axis.name)
        discrete = axis.values is not None or len(observed) <= 6 or not is_numeric
        if discrete:
            labels = _distinct([format_value(v) for v in observed], observed)
            mapping = dict(zip(observed, labels))
            source = numeric if is_numeric else raw
            frame[column] = pd.Categorical(source.map(mapping), categories=labels,
                                           ordered=True)
            factors.append(Factor(axis.name, column, tuple(labels), False, axis.log_scale,
                                  tuple(float(v) for v in observed) if is_numeric else None))
            continue
        scale = np.log10(numeric) if axis.log_scale else numeric
        edges = np.unique(np.quantile(scale.dropna(), np.linspace(0, 1, n_bins + 1)))
        real_edges = 10 ** edges if axis.log_scale else edges
        labels = _distinct([f"{lo:.2g} to {hi:.2g}" for lo, hi in
                            itertools.pairwise(real_edges)],
                           [f"{lo:.6g} to {hi:.6g}" for lo, hi in
                            itertools.pairwise(real_edges)])
        frame[column] = pd.cut(scale, edges, labels=labels, include_lowest=True,
                               ordered=True)
        factors.append(Factor(axis.name, column, tuple(labels), True, axis.log_scale, None))
    return frame, factors


def _distinct(short: list[str], fallback: list) -> list[str]:
    """Short labels unless two levels would share one."""
    return short if len(set(short)) == len(short) else [str(v) for v in fallback]


def binning_notes(factors: list[Factor]) -> list[str]:
    return [f"{f.axis} is continuous: cut into {len(f.levels)} quantile bins"
            f"{' of log10 value' if f.log_scale else ''} ({', '.join(f.levels)})"
            for f in factors if f.binned]
