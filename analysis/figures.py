"""Figures: each function takes tidy tables and returns a matplotlib Figure (Agg backend).

Saving and embedding are the caller's job (analysis.report / analysis.html).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from analysis import boundary, stats
from analysis.load import is_full_budget
from trainable.contract import OUTCOMES

PALETTE = {"stable": "#2ca02c", "blank_collapse": "#9467bd", "diverged": "#d62728",
           "exploding": "#ff7f0e", "slow": "#8c6d31", "stopped_early": "#9e9e9e",
           "errored": "#000000"}
DPI = 100
HATCH_NOTE = (f"Hatched, washed-out cells: the rate's 95% confidence sequence contains "
              f"{stats.STABLE_RATE_THRESHOLD:.0%}, so the cell's side of the threshold is "
              "uncertain")


def save_all(made: dict, directory) -> dict:
    """Save {name: (figure or None, caption)} as PNGs in `directory`; returns
    {name: (path, caption)} for the figures that exist, in order."""
    saved = {}
    Path(directory).mkdir(parents=True, exist_ok=True)
    for name, (fig, caption) in made.items():
        if fig is None:
            continue
        path = directory / f"{name}.png"
        # Fast zlib level: the PNGs are embedded once and a few percent larger.
        fig.savefig(path, pil_kwargs={"compress_level": 1})
        plt.close(fig)
        saved[name] = (path, caption)
    return saved


def stable_definition(train_config: dict | None) -> str:
    """The definition of a stable run and a stable cell, with this study's thresholds."""
    monitor = (train_config or {}).get("monitor", {})
    if not monitor:
        from trainable.config import MonitorConfig

        monitor = MonitorConfig().model_dump()
    return (f"Stable run: full budget, no divergence (NaN/Inf or val loss > "
            f"{monitor['diverge_loss_factor']:g}x step-0), no blank collapse (blank-only output "
            f"after {monitor['collapse_grace_fraction']:.0%} of the budget), no gradient "
            f"explosion (pre-clip norm > {monitor['explode_factor']:g}x the run median), final "
            f"PER <= {monitor['slow_per']:g}. Stable cell: >= "
            f"{stats.STABLE_RATE_THRESHOLD:.0%} of its full-budget runs stable.")


def annotated_heatmap(ax, values: np.ndarray, labels: np.ndarray, *, cmap: str, vmin=None,
                      vmax=None, xlabels, ylabels, fontsize: float, uncertain=()):
    """A matrix of coloured cells with a label in each; `uncertain` cells are hatched.

    Drawn with pcolormesh rather than seaborn.heatmap, which redraws the whole figure once
    per call to decide on tick rotation (seconds per multi-panel figure).
    """
    colormap = plt.get_cmap(cmap).with_extremes(bad="0.92")
    masked = np.ma.masked_invalid(values.astype(float))
    mesh = ax.pcolormesh(masked, cmap=colormap, vmin=vmin, vmax=vmax, edgecolors="white",
                         linewidth=0.8)
    n_rows, n_cols = values.shape
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)
    # Bin labels ("1e-05 to 0.0004") go on two lines.
    ax.set_xticks(np.arange(n_cols) + 0.5, [str(v).replace(" to ", "\nto ") for v in xlabels],
                  fontsize=8 if n_cols > 3 else 10)
    ax.set_yticks(np.arange(n_rows) + 0.5, [str(v).replace(" to ", "\nto ") for v in ylabels],
                  fontsize=8 if n_rows > 3 else 10)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    uncertain = set(uncertain)
    for i, j in itertools.product(range(n_rows), range(n_cols)):
        if (i, j) in uncertain:
            # Washed out and hatched: the colour is a point estimate we cannot vouch for.
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=(1, 1, 1, 0.45), hatch="///",
                                   edgecolor=(0, 0, 0, 0.35), linewidth=0.0))
        rgba = mesh.to_rgba(masked[i, j]) if not np.ma.is_masked(masked[i, j]) else (1, 1, 1)
        dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
        box = (dict(boxstyle="round,pad=0.2", fc=(1, 1, 1, 0.75), ec="none")
               if (i, j) in uncertain else None)
        ax.text(j + 0.5, i + 0.5, labels[i, j], ha="center", va="center", fontsize=fontsize,
                color="black" if box or not dark else "white", bbox=box)
    return mesh


def _cell_grid(cells: pd.DataFrame, a: stats.Factor, b: stats.Factor):
    """Cells in matrix order: rows are a's levels, columns b's."""
    lookup = cells.set_index([a.column, b.column])
    for i, j in itertools.product(range(len(a.levels)), range(len(b.levels))):
        yield i, j, lookup.loc[(a.levels[i], b.levels[j])]


# Above this many levels a cell shows its rate and n only; the interval is then carried by
# the hatching and written out in cells.csv.
COMPACT_LEVELS = 4


def _rate_panel(ax, cells: pd.DataFrame, a: stats.Factor, b: stats.Factor, outcome: str,
                fontsize: float, compact: bool):
    values = np.full((len(a.levels), len(b.levels)), np.nan)
    labels = np.full(values.shape, "-" if compact else "no runs", dtype=object)
    uncertain = []
    for i, j, cell in _cell_grid(cells, a, b):
        n = int(cell["n"])
        if n > 0:
            lo, hi = cell[f"lo_{outcome}"], cell[f"hi_{outcome}"]
            values[i, j] = cell[f"rate_{outcome}"]
            interval = "" if compact else f"\n[{lo:.2f}, {hi:.2f}]"
            labels[i, j] = f"{values[i, j]:.2f}{interval}\nn={n}"
            if stats.cell_status(lo, hi) == "uncertain":
                uncertain.append((i, j))
    mesh = annotated_heatmap(ax, values, labels, cmap="RdYlGn" if outcome == "stable"
                             else "RdYlGn_r", vmin=0, vmax=1, xlabels=b.levels,
                             ylabels=a.levels, fontsize=fontsize, uncertain=uncertain)
    ax.figure.colorbar(mesh, ax=ax, label="rate")
    ax.set_title(f"{outcome} rate")
    ax.set_ylabel(a.axis)
    ax.set_xlabel(b.axis)


def _per_panel(ax, cells: pd.DataFrame, a: stats.Factor, b: stats.Factor, fontsize: float,
               compact: bool):
    values = np.full((len(a.levels), len(b.levels)), np.nan)
    labels = np.full(values.shape, "-" if compact else "no runs", dtype=object)
    for i, j, cell in _cell_grid(cells, a, b):
        n = int(cell["per_n"])
        if n > 0:
            values[i, j] = cell["per_median"]
            interval = (f"[{cell['per_lo']:.2f}, {cell['per_hi']:.2f}]"
                        if np.isfinite(cell["per_lo"]) else "[n too small]")
            interval = "" if compact else f"\n{interval}"
            labels[i, j] = f"{values[i, j]:.3f}{interval}\nn={n}"
    mesh = annotated_heatmap(ax, values, labels, cmap="viridis_r", xlabels=b.levels,
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
    fig.text(0.01, 0.005, _wrap(f"{definition} {pooled_text}{compact_text}{HATCH_NOTE}."),
             fontsize=8.5, va="bottom")
    # Fixed margins: tight_layout costs a full draw of six annotated panels.
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.13, wspace=0.28, hspace=0.42)
    return fig


def _wrap(text: str, width: int = 190) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


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
        cells = stats.cell_summary(sub, [y_factor.column, x_factor.column])
        values = np.full((len(y_factor.levels), len(x_factor.levels)), np.nan)
        labels = np.full(values.shape, "-", dtype=object)
        uncertain = []
        for i, j, cell in _cell_grid(cells, y_factor, x_factor):
            if cell["n"] > 0:
                values[i, j] = cell["rate_stable"]
                labels[i, j] = f"{int(cell['count_stable'])}/{int(cell['n'])}"
                if cell["status"] == "uncertain":
                    uncertain.append((i, j))
        ax = axes[r, c]
        annotated_heatmap(ax, values, labels, cmap="RdYlGn", vmin=0, vmax=1,
                          xlabels=x_factor.levels, ylabels=y_factor.levels, fontsize=size,
                          uncertain=uncertain)
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
    fig.text(0.01, 0.005, _wrap(f"{definition}{note} {HATCH_NOTE}.", 150), fontsize=8,
             va="bottom")
    return fig


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
    fig.text(0.01, 0.005, _wrap(f"{data.definition} Bars: where one seed's boundary lies in "
                                "its column (between the failed and the fine value nearest "
                                "each other); a bar reaching the edge is censored.", 150),
             fontsize=8, va="bottom")
    fig.subplots_adjust(left=0.09, right=0.97, top=0.9, bottom=0.25)
    return fig


def lr_sensitivity(frame: pd.DataFrame, factors: list[stats.Factor]) -> plt.Figure | None:
    """Final PER vs lr_max, one curve per eps (Wortsman et al. 2023, arXiv 2309.14322).

    Collapsed and diverged runs are drawn at their step-0 PER (the cap) with an X, so they
    stay on the plot instead of vanishing or flying off it.
    """
    by_axis = {f.axis: f for f in factors}
    if "lr_max" not in by_axis:
        return None
    data = stats.full_budget(frame).copy()
    if data.empty:
        return None
    failed = data["outcome"].isin(stats.PER_EXCLUDED)
    cap = data["initial_val_per"] if "initial_val_per" in data else data[stats.PER_COLUMN]
    data["plotted_per"] = np.where(failed, cap, np.minimum(data[stats.PER_COLUMN], cap))
    data["run"] = np.where(failed, "collapsed/diverged (capped at step-0 PER)", "completed")
    lr = by_axis["lr_max"]
    data["lr_x"] = (pd.to_numeric(data["lr_max"]) if not lr.binned else
                    data.groupby(lr.column, observed=True)["lr_max"].transform("median"))
    # Spread overlapping seeds a little sideways (multiplicatively: the axis is log).
    rng = np.random.default_rng(0)
    data["lr_jittered"] = data["lr_x"] * np.exp(rng.uniform(-0.04, 0.04, len(data)))
    eps = by_axis.get("eps")
    data["eps"] = data[eps.column] if eps else "all"
    eps_levels = list(eps.levels) if eps else ["all"]
    colours = dict(zip(eps_levels, sns.color_palette("viridis", len(eps_levels))))
    facets = [by_axis[a] for a in ("white_noise_std", "constant_offset_std") if a in by_axis]
    combos = list(itertools.product(*[f.levels for f in facets])) or [()]
    n_cols = 2 if len(combos) == 4 else min(len(combos), 3)
    n_rows = int(np.ceil(len(combos) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, sharey=True,
                             figsize=(5.2 * n_cols + 2.6, 3.6 * n_rows + 0.9), dpi=DPI)
    for ax, combo in zip(axes.flat, combos):
        sub = data
        for f, level in zip(facets, combo):
            sub = sub[sub[f.column] == level]
        if not sub.empty:
            sns.lineplot(data=sub, x="lr_x", y="plotted_per", hue="eps", hue_order=eps_levels,
                         palette=colours, estimator="median", errorbar=None, ax=ax,
                         legend=False, linewidth=2)
            for failed_run, marker, size in ((False, "o", 28), (True, "X", 70)):
                runs = sub[(sub["run"] != "completed") == failed_run]
                ax.scatter(runs["lr_jittered"], runs["plotted_per"], marker=marker, s=size,
                           c=[colours[e] for e in runs["eps"]], alpha=0.8, zorder=3,
                           edgecolors="black" if failed_run else "none", linewidths=0.5)
        ax.set_xscale("log")
        ax.set_title(", ".join(f"{f.axis}={lv}" for f, lv in zip(facets, combo)),
                     fontsize=10)
        ax.set_xlabel("lr_max (log)")
        ax.set_ylabel("final val PER")
    for ax in axes.flat[len(combos):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, linewidth=2,
                      label=f"eps={e} (median)" if eps else "median over runs")
               for e, c in colours.items()]
    handles += [Line2D([], [], marker="o", linestyle="", color="0.4", label="completed run"),
                Line2D([], [], marker="X", linestyle="", color="0.4", markeredgecolor="black",
                       markersize=8, label="collapsed/diverged, at its step-0 PER")]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle("Learning-rate sensitivity (after Wortsman et al. 2023):\nfinal PER vs "
                 "lr_max, one curve per eps", fontsize=12)
    height = 3.6 * n_rows + 1.2
    fig.set_size_inches(5.2 * n_cols + 2.6, height)
    fig.subplots_adjust(left=0.07, right=1 - 2.4 / (5.2 * n_cols + 2.6), top=1 - 0.9 / height,
                        bottom=0.6 / height, wspace=0.12, hspace=0.45)
    return fig


def run_label(frame: pd.DataFrame, outcome_column: str = "outcome") -> pd.Series:
    """A run's final outcome if it is complete, otherwise its status."""
    complete = is_full_budget(frame, outcome_column)
    return pd.Series(np.where(complete, frame[outcome_column], frame["status"].astype(str)),
                     index=frame.index)


def training_curves(curves: pd.DataFrame) -> plt.Figure | None:
    """val_loss, grad_norm_max, blank_fraction and val_per vs step, coloured by outcome."""
    if curves.empty:
        return None
    data = curves.assign(run=run_label(curves, "final_outcome"))
    order = [k for k in PALETTE if k in set(data["run"])]
    panels = (("val_loss", True), ("grad_norm_max", True), ("blank_fraction", False),
              ("val_per", False))
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), dpi=DPI)
    for ax, (metric, log) in zip(axes.flat, panels):
        if metric not in data:
            ax.set_visible(False)
            continue
        sns.lineplot(data=data, x="step", y=metric, hue="run", hue_order=order,
                     palette=PALETTE, units="trial_id", estimator=None, alpha=0.55,
                     linewidth=1.0, ax=ax, legend=ax is axes.flat[0])
        if log:
            ax.set_yscale("log")
        if metric == "val_per":
            ax.set_ylim(0, min(1.6, max(1.05, float(data[metric].quantile(0.99)))))
        ax.set_title(metric + (" (log)" if log else ""))
    if axes.flat[0].get_legend() is not None:
        sns.move_legend(axes.flat[0], "upper right", fontsize=8, title="final outcome")
    fig.suptitle("Training curves, one line per run, coloured by final outcome (or status "
                 "for runs without one); diverged runs end on finite sentinels", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def regime_plot(frame: pd.DataFrame) -> plt.Figure | None:
    """eps_dominance vs lr_max/eps: which runs trained as momentum SGD with step lr/eps."""
    if not {"eps", "lr_max", "median_eps_dominance"} <= set(frame.columns):
        return None
    data = frame[frame["median_eps_dominance"].notna()].copy()
    if data.empty:
        return None
    data["lr_over_eps"] = pd.to_numeric(data["lr_max"]) / pd.to_numeric(data["eps"])
    data["run"] = run_label(data)
    order = [k for k in PALETTE if k in set(data["run"])]
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=DPI)
    rng = np.random.default_rng(0)
    data["jittered"] = data["lr_over_eps"] * np.exp(rng.normal(0, 0.06, len(data)))
    sns.scatterplot(data=data, x="jittered", y="median_eps_dominance", hue="run",
                    hue_order=order, palette=PALETTE, s=50, alpha=0.75, ax=ax)
    ax.axhline(boundary.EPS_DOMINANCE_THRESHOLD, color="0.3", linestyle="--", linewidth=1)
    ax.text(0.01, boundary.EPS_DOMINANCE_THRESHOLD + 0.02,
            "large-eps regime: Adam ~ momentum SGD, step lr/eps",
            transform=ax.get_yaxis_transform(), fontsize=8)
    ax.text(0.01, boundary.EPS_DOMINANCE_THRESHOLD - 0.06, "small-eps regime: Adam proper",
            transform=ax.get_yaxis_transform(), fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("lr_max / eps (log; points jittered)")
    ax.set_ylabel("median eps_dominance over the run")
    ax.set_title("eps regime (Choi et al. 2019): share of Adam coordinates with "
                 "sqrt(v_hat) < eps", fontsize=10)
    ax.legend(title="outcome", fontsize=8, loc="center right")
    fig.tight_layout()
    return fig



VERDICT_COLOURS = {"supported": "#1e7b34", "smaller_than_claimed": "#9a6700",
                   "refuted": "#b3261e", "inconclusive": "#6d6d6d"}


def claim_axis_limits(values: list[float], ratio: bool) -> tuple[float, float]:
    finite = [v for v in values if np.isfinite(v)]
    if ratio:
        finite = [v for v in finite if v > 0]
        low, high = min([*finite, 0.5]), max([*finite, 2.0])
        return low / 1.5, high * 1.5
    low, high = min(finite), max(finite)
    pad = 0.08 * max(high - low, 0.1)
    return low - pad, high + pad


def claim_effects(claims: pd.DataFrame, trajectory: pd.DataFrame) -> plt.Figure | None:
    """One row per claim. Left: the effect at the end of training with its 95% confidence
    sequence, the no-effect value (dashed) and the claimed size whose exclusion refutes
    (dotted). Right: the same over training (fraction of the budget), the last quarter,
    over which the verdict is checked to hold, shaded."""
    if claims is None or claims.empty:
        return None
    fig, axes = plt.subplots(len(claims), 2, figsize=(13, 1.9 * len(claims) + 0.6), dpi=DPI,
                             squeeze=False, gridspec_kw={"width_ratios": [1, 1.3]})
    for (_, row), (left, right) in zip(claims.iterrows(), axes):
        ratio = row["null"] == 1.0 and row["bound"] > 1.0
        curve = trajectory[trajectory["id"] == row["id"]].sort_values("fraction") \
            if len(trajectory) else trajectory
        values = [row["estimate"], row["ci_low"], row["ci_high"], row["null"], row["bound"]]
        if len(curve):
            values += list(curve["ci_low"]) + list(curve["ci_high"]) + list(curve["estimate"])
        low, high = claim_axis_limits(values, ratio)
        colour = VERDICT_COLOURS.get(row["verdict"], "0.3")

        def clip(v: float, low: float = low, high: float = high) -> float:
            return min(max(v, low), high) if np.isfinite(v) else (high if v > 0 else low)

        ci = [clip(row["ci_low"]), clip(row["ci_high"])]
        left.plot(ci, [0, 0], color=colour, linewidth=4, solid_capstyle="butt")
        if np.isfinite(row["estimate"]):
            left.plot([row["estimate"]], [0], "o", color="black", markersize=7)
        elif not np.isnan(row["estimate"]):  # e.g. a run that never reached a threshold
            left.plot([clip(row["estimate"])], [0], ">", color="black", markersize=9)
            left.annotate("infinite", (clip(row["estimate"]), 0), xytext=(-8, 8),
                          textcoords="offset points", ha="right", fontsize=8)
        for value, style in ((row["null"], "--"), (row["bound"], ":")):
            if np.isfinite(value):
                left.axvline(value, color="0.35", linestyle=style, linewidth=1.2)
        left.set_xlim(low, high)
        left.set_yticks([])
        if ratio:
            left.set_xscale("log")
        left.set_title(f"{row['id']}: {str(row['verdict']).upper()} (n = {row['n']} seeds)",
                       fontsize=9.5, color=colour, loc="left")
        if len(curve):
            x = curve["fraction"].to_numpy()
            lo = [clip(v) for v in curve["ci_low"].to_numpy(dtype=float)]
            hi = [clip(v) for v in curve["ci_high"].to_numpy(dtype=float)]
            right.fill_between(x, lo, hi, color=colour, alpha=0.25, linewidth=0)
            right.plot(x, [clip(v) for v in curve["estimate"].to_numpy(dtype=float)],
                       color="black", linewidth=1.2)
            right.axvspan(0.75, 1.0, color="0.9", zorder=0)
        for value, style in ((row["null"], "--"), (row["bound"], ":")):
            if np.isfinite(value):
                right.axhline(value, color="0.35", linestyle=style, linewidth=1.0)
        right.set_ylim(low, high)
        right.set_xlim(0, 1)
        if ratio:
            right.set_yscale("log")
        right.set_title("over training (fraction of the budget)", fontsize=8.5, loc="left")
    fig.suptitle("Claims: effect and 95% anytime-valid confidence sequence; dashed = no "
                 "effect, dotted = the claimed size (beyond it: supported; excluded: "
                 "smaller than claimed or refuted)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig
