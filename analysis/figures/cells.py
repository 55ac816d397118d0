"""The cell maps: outcome rates and median PER for each pair of axes, and the
stable-region map over every varied axis."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import stats
from analysis.figures.common import DPI, HATCH_NOTE, annotated_heatmap, wrap
from trainable.contract import OUTCOMES


def _cell_grid(cells: pd.DataFrame, a: stats.Factor, b: stats.Factor):
    """Cells in matrix order: rows are a's levels, columns b's."""
    lookup = cells.set_index([a.column, b.column])
    for i, j in itertools.product(range(len(a.levels)), range(len(b.levels))):
        yield i, j, lookup.loc[(a.levels[i], b.levels[j])]


# Above this many levels a cell shows its rate and n only; the interval is then carried by
# the hatching and written out in cells.csv.
COMPACT_LEVELS = 4


@dataclass
class CellGrid:
    """What one heatmap panel shows: a value, a label and whether the cell is uncertain
    (hatched), rows a's levels and columns b's; the numbers behind the figure."""

    values: np.ndarray
    labels: np.ndarray
    uncertain: list[tuple[int, int]] = field(default_factory=list)


def _empty_grid(a: stats.Factor, b: stats.Factor, blank: str) -> CellGrid:
    values = np.full((len(a.levels), len(b.levels)), np.nan)
    return CellGrid(values, np.full(values.shape, blank, dtype=object))


def rate_grid(cells: pd.DataFrame, a: stats.Factor, b: stats.Factor, outcome: str,
              compact: bool = False) -> CellGrid:
    """One outcome's rate per cell, labelled rate [interval] n (rate and n when compact)."""
    grid = _empty_grid(a, b, "-" if compact else "no runs")
    for i, j, cell in _cell_grid(cells, a, b):
        n = int(cell["n"])
        if n > 0:
            lo, hi = cell[f"lo_{outcome}"], cell[f"hi_{outcome}"]
            grid.values[i, j] = cell[f"rate_{outcome}"]
            interval = "" if compact else f"\n[{lo:.2f}, {hi:.2f}]"
            grid.labels[i, j] = f"{grid.values[i, j]:.2f}{interval}\nn={n}"
            if stats.cell_status(lo, hi) == "uncertain":
                grid.uncertain.append((i, j))
    return grid


def per_grid(cells: pd.DataFrame, a: stats.Factor, b: stats.Factor, compact: bool = False
             ) -> CellGrid:
    """Median final PER per cell, labelled median [exact interval] n."""
    grid = _empty_grid(a, b, "-" if compact else "no runs")
    for i, j, cell in _cell_grid(cells, a, b):
        n = int(cell["per_n"])
        if n > 0:
            grid.values[i, j] = cell["per_median"]
            interval = (f"[{cell['per_lo']:.2f}, {cell['per_hi']:.2f}]"
                        if np.isfinite(cell["per_lo"]) else "[n too small]")
            interval = "" if compact else f"\n{interval}"
            grid.labels[i, j] = f"{grid.values[i, j]:.3f}{interval}\nn={n}"
    return grid


def stable_grid(cells: pd.DataFrame, a: stats.Factor, b: stats.Factor) -> CellGrid:
    """Stable rate per cell, labelled stable runs / full-budget runs."""
    grid = _empty_grid(a, b, "-")
    for i, j, cell in _cell_grid(cells, a, b):
        if cell["n"] > 0:
            grid.values[i, j] = cell["rate_stable"]
            grid.labels[i, j] = f"{int(cell['count_stable'])}/{int(cell['n'])}"
            if cell["status"] == "uncertain":
                grid.uncertain.append((i, j))
    return grid


def _rate_panel(ax, cells: pd.DataFrame, a: stats.Factor, b: stats.Factor, outcome: str,
                fontsize: float, compact: bool):
    grid = rate_grid(cells, a, b, outcome, compact)
    mesh = annotated_heatmap(ax, grid.values, grid.labels, cmap="RdYlGn" if outcome == "stable"
                             else "RdYlGn_r", vmin=0, vmax=1, xlabels=b.levels,
                             ylabels=a.levels, fontsize=fontsize, uncertain=grid.uncertain)
    ax.figure.colorbar(mesh, ax=ax, label="rate")
    ax.set_title(f"{outcome} rate")
    ax.set_ylabel(a.axis)
    ax.set_xlabel(b.axis)


def _per_panel(ax, cells: pd.DataFrame, a: stats.Factor, b: stats.Factor, fontsize: float,
               compact: bool):
    grid = per_grid(cells, a, b, compact)
    mesh = annotated_heatmap(ax, grid.values, grid.labels, cmap="viridis_r", xlabels=b.levels,
                             ylabels=a.levels, fontsize=fontsize)
    ax.figure.colorbar(mesh, ax=ax, label="median final PER")
    ax.set_title("median final PER\n(non-collapsed, non-diverged; exact 95% CI)")
    ax.set_ylabel(a.axis)
    ax.set_xlabel(b.axis)


def _fontsize(n_rows: int, n_cols: int) -> float:
    return max(6.0, 11.0 - 0.9 * max(n_rows, n_cols))


def pair_heatmaps(frame: pd.DataFrame, a: stats.Factor, b: stats.Factor, definition: str,
                  pooled: list[str]) -> plt.Figure:
    """Outcome rates (one panel per outcome) and median PER over one pair of axes."""
    cells = stats.cell_summary(frame, [a.column, b.column])
    n_levels = max(len(a.levels), len(b.levels))
    compact = n_levels > COMPACT_LEVELS
    scale = min(1.5, max(1.0, n_levels / 5))
    fig, axes = plt.subplots(2, 3, figsize=(16 * scale, 9.5 * scale), dpi=DPI)
    size = _fontsize(len(a.levels), len(b.levels)) + (1.5 if compact else 0)
    for ax, outcome in zip(axes.flat, OUTCOMES):
        _rate_panel(ax, cells, a, b, outcome, size, compact)
    _per_panel(axes.flat[5], cells, a, b, size, compact)
    pooled_text = f"Pooled over {', '.join(pooled)}. " if pooled else ""
    compact_text = ("Cells show rate and n; the intervals are in cells.csv. "
                    if compact else "")
    fig.suptitle(f"{a.axis} x {b.axis}: outcome rates of full-budget runs (95% confidence "
                 "sequence, n = runs)", fontsize=13)
    fig.text(0.01, 0.005, wrap(f"{definition} {pooled_text}{compact_text}{HATCH_NOTE}."),
             fontsize=8.5, va="bottom")
    # Fixed margins: tight_layout costs a full draw of six annotated panels.
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.13, wspace=0.28, hspace=0.42)
    return fig


def stable_map(frame: pd.DataFrame, factors: list[stats.Factor], definition: str
               ) -> plt.Figure:
    """Stable rate per cell: the first two axes in each panel, one panel per combination
    of the next two (further axes pooled)."""
    y_factor, x_factor = factors[0], factors[1]
    col_factor = factors[2] if len(factors) > 2 else None
    row_factor = factors[3] if len(factors) > 3 else None
    col_levels = col_factor.levels if col_factor else ("",)
    row_levels = row_factor.levels if row_factor else ("",)
    height = 3.0 * len(row_levels) + 2.2
    fig, axes = plt.subplots(len(row_levels), len(col_levels), squeeze=False,
                             figsize=(3.9 * len(col_levels) + 1.8, height), dpi=DPI)
    size = _fontsize(len(y_factor.levels), len(x_factor.levels)) + 1
    for (r, row_level), (c, col_level) in itertools.product(enumerate(row_levels),
                                                           enumerate(col_levels)):
        sub = frame
        if col_factor:
            sub = sub[sub[col_factor.column] == col_level]
        if row_factor:
            sub = sub[sub[row_factor.column] == row_level]
        grid = stable_grid(stats.cell_summary(sub, [y_factor.column, x_factor.column]),
                           y_factor, x_factor)
        ax = axes[r, c]
        annotated_heatmap(ax, grid.values, grid.labels, cmap="RdYlGn", vmin=0, vmax=1,
                          xlabels=x_factor.levels, ylabels=y_factor.levels, fontsize=size,
                          uncertain=grid.uncertain)
        title = []
        if col_factor:
            title.append(f"{col_factor.axis}={col_level}")
        if row_factor:
            title.append(f"{row_factor.axis}={row_level}")
        ax.set_title(", ".join(title), fontsize=10)
        ax.set_ylabel(y_factor.axis if c == 0 else "")
        ax.set_xlabel(x_factor.axis if r == len(row_levels) - 1 else "")
    # Margins in inches: room for the two-line title and the definition underneath.
    fig.subplots_adjust(bottom=1.5 / height, top=1 - 0.8 / height, right=0.86, hspace=0.35,
                        wspace=0.35)
    fig.colorbar(plt.cm.ScalarMappable(cmap="RdYlGn", norm=plt.Normalize(0, 1)),
                 cax=fig.add_axes((0.89, 0.25, 0.02, 0.6)), label="stable rate")
    pooled = [f.axis for f in factors[4:]]
    note = f" Pooled over {', '.join(pooled)}." if pooled else ""
    fig.suptitle("Stable-region map: stable runs / full-budget runs per cell", fontsize=13)
    fig.text(0.01, 0.005, wrap(f"{definition}{note} {HATCH_NOTE}.", 150), fontsize=8,
             va="bottom")
    return fig
