"""The stability boundary map: its data (BoundaryMapData, from analysis.boundary)
computed apart from the drawing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analysis import boundary, stats
from analysis.figures.common import DPI, PALETTE, wrap


@dataclass
class BoundaryMapData:
    """What the boundary map draws (analysis.boundary), computed apart from the drawing.

    cells: the design's cells (first wave): across, along, n (full-budget runs), n_fine,
      rate_fine. refined: each run the refinement waves added: across, along, seed,
      failed. brackets: each (column, seed) bracket (analysis.boundary.brackets). lines:
      per regime, the fitted boundary at `n_band` across values spanning its columns with
      its pointwise interval (regime, across, boundary, low, high). legend: per regime, its
      slope, interval and verdict in words.
    """

    along: str
    across: str
    cells: pd.DataFrame
    refined: pd.DataFrame
    brackets: pd.DataFrame
    lines: pd.DataFrame
    legend: dict[str, str]
    definition: str


def boundary_map_data(runs: pd.DataFrame, result: boundary.BoundaryAnalysis,
                      n_band: int = 12) -> BoundaryMapData:
    """The numbers behind the boundary map. `runs` are the boundary block's runs of every
    wave (the first wave is the design, later waves hold the refinement's points)."""
    spec = result.spec
    complete = stats.full_budget(runs).copy()
    complete["failed"] = boundary.failed(complete, spec)
    first = complete["wave"] == 1 if "wave" in complete else pd.Series(True, complete.index)
    cells = (complete[first].groupby([spec.across, spec.along], sort=True)
             .agg(n=("failed", "size"), n_fine=("failed", lambda f: int((~f).sum())))
             .reset_index())
    cells["rate_fine"] = cells["n_fine"] / cells["n"]
    refined = complete.loc[~first, [spec.across, spec.along, "seed", "failed"]]
    lines = []
    for regime, fit in result.fits.items():
        columns = spec.regimes[regime]
        across = np.geomspace(min(columns), max(columns), n_band)
        lines.append(fit.band(across).rename(columns={"across": spec.across})
                     .assign(regime=regime))
    table = result.table.set_index("regime")
    legend = {}
    for regime in result.fits:
        row = table.loc[regime]
        legend[regime] = (f"{regime.replace('_', ' ')}: slope {row['slope']:.2f} "
                          f"[{row['slope_low']:.2f}, {row['slope_high']:.2f}], predicted "
                          f"{row['prediction']:g} (band {row['band_low']:g} to "
                          f"{row['band_high']:g}): {str(row['verdict']).upper()}")
    definition = (f"Failed run: final outcome {', '.join(spec.failed)}. Runs fail "
                  f"{'below' if spec.side == 'lower' else 'above'} the boundary.")
    return BoundaryMapData(
        along=spec.along, across=spec.across, cells=cells.reset_index(drop=True),
        refined=refined.reset_index(drop=True), brackets=result.brackets,
        lines=pd.concat(lines, ignore_index=True) if lines else pd.DataFrame(
            columns=["regime", spec.across, "boundary", "low", "high"]),
        legend=legend, definition=definition)


def _log_edges(values) -> np.ndarray:
    """Cell edges on a log axis: geometric midpoints, the ends half a step out."""
    logs = np.log(np.asarray(sorted(values), dtype=float))
    if len(logs) == 1:
        return np.exp([logs[0] - 0.5, logs[0] + 0.5])
    mids = (logs[1:] + logs[:-1]) / 2
    return np.exp(np.concatenate([[2 * logs[0] - mids[0]], mids, [2 * logs[-1] - mids[-1]]]))


REGIME_COLOURS = {"large_eps": "#1f3b99", "small_eps": "#7a1f99"}


def boundary_map(data: BoundaryMapData) -> plt.Figure:
    """The design's cells coloured by the share of fine runs, the refinement's runs as
    points, each (column, seed) bracket as a bar, and each regime's fitted boundary with
    its 95% band."""
    fig, ax = plt.subplots(figsize=(11, 7.5), dpi=DPI)
    rows = sorted(data.cells[data.across].unique())
    columns = sorted(data.cells[data.along].unique())
    values = np.full((len(rows), len(columns)), np.nan)
    labels = {}
    for _, cell in data.cells.iterrows():
        i, j = rows.index(cell[data.across]), columns.index(cell[data.along])
        values[i, j] = cell["rate_fine"]
        labels[(i, j)] = f"{int(cell['n_fine'])}/{int(cell['n'])}"
    x_edges, y_edges = _log_edges(columns), _log_edges(rows)
    ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0,
                  vmax=1, alpha=0.55, edgecolors="white", linewidth=0.8)
    for (i, j), text in labels.items():
        ax.text(math.sqrt(x_edges[j] * x_edges[j + 1]), y_edges[i] * (y_edges[i + 1]
                / y_edges[i]) ** 0.8, text, ha="center", va="center", fontsize=7,
                color="0.25")
    x_low, x_high = x_edges[0], x_edges[-1]
    if len(data.refined):
        x_low = min(x_low, float(data.refined[data.along].min()) / 1.5)
        x_high = max(x_high, float(data.refined[data.along].max()) * 1.5)
    n_seeds = max(int(data.brackets["seed"].max()) + 1, 1) if len(data.brackets) else 1

    def row_y(value: float, seed: int) -> float:
        # Each seed at its own height within the row (fractions of a row, log scale).
        i = rows.index(value) if value in rows else None
        if i is None:
            return value
        return y_edges[i] * (y_edges[i + 1] / y_edges[i]) ** ((seed + 1) / (n_seeds + 1)
                                                              * 0.6 + 0.1)

    for _, row in data.brackets.iterrows():
        y = row_y(row[data.across], int(row["seed"]))
        low = row["low"] if row["low"] > 0 else x_low
        high = row["high"] if np.isfinite(row["high"]) else x_high
        ax.plot([low, high], [y, y], color="black", linewidth=2.2, solid_capstyle="butt",
                alpha=0.8 if row["monotone"] else 0.4)
    for failed_run, marker in ((False, "o"), (True, "X")):
        runs = data.refined[data.refined["failed"] == failed_run]
        ax.scatter(runs[data.along], [row_y(e, int(s)) for e, s in
                                      zip(runs[data.across], runs["seed"])],
                   marker=marker, s=36, zorder=4, edgecolors="black", linewidths=0.5,
                   c=PALETTE["stable"] if not failed_run else PALETTE["diverged"])
    for regime, line in data.lines.groupby("regime", sort=False):
        colour = REGIME_COLOURS.get(regime, "0.2")
        y = line[data.across].to_numpy()
        ax.fill_betweenx(y, np.clip(line["low"], x_low, x_high),
                         np.clip(line["high"], x_low, x_high), color=colour, alpha=0.22,
                         linewidth=0)
        ax.plot(line["boundary"], y, color=colour, linewidth=2.2,
                label=data.legend.get(regime, regime))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xlabel(f"{data.along} (log)")
    ax.set_ylabel(f"{data.across} (log)")
    handles = ax.get_legend_handles_labels()[0]
    handles += [Line2D([], [], color="black", linewidth=2.2,
                       label="bracket of one seed's boundary (grey: not monotone)"),
                Line2D([], [], marker="o", linestyle="", markerfacecolor=PALETTE["stable"],
                       markeredgecolor="black", label="refinement run, fine"),
                Line2D([], [], marker="X", linestyle="", markerfacecolor=PALETTE["diverged"],
                       markeredgecolor="black", label="refinement run, failed")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8,
              frameon=False, ncol=2)
    ax.set_title("Stable-region map with the fitted boundary: cells of the design coloured "
                 "by the share of fine runs (fine/full-budget runs),\nlines the fitted "
                 "boundary per regime with its 95% band (interval-censored profile "
                 "likelihood)", fontsize=10)
    fig.text(0.01, 0.005, wrap(f"{data.definition} Bars: where one seed's boundary lies in "
                                "its column (between the failed and the fine value nearest "
                                "each other); a bar reaching the edge is censored.", 150),
             fontsize=8, va="bottom")
    fig.subplots_adjust(left=0.09, right=0.97, top=0.9, bottom=0.25)
    return fig
