"""What every figure shares: the Agg backend, outcome colours, resolution, the stable
definition in words, the annotated heatmap, a run's label, and saving."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from analysis import stats
from analysis.runs import is_full_budget

if TYPE_CHECKING:
    from trainable.config import Config


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


def stable_definition(train_config: Config) -> str:
    """The definition of a stable run and a stable cell, with this study's thresholds."""
    monitor = train_config.monitor
    return (f"Stable run: full budget, no divergence (NaN/Inf or val loss > "
            f"{monitor.diverge_loss_factor:g}x step-0), no blank collapse (blank-only output "
            f"after {monitor.collapse_grace_fraction:.0%} of the budget), no gradient "
            f"explosion (pre-clip norm > {monitor.explode_factor:g}x the run median), final "
            f"PER <= {monitor.slow_per:g}. Stable cell: >= "
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


def wrap(text: str, width: int = 190) -> str:

    return "\n".join(textwrap.wrap(text, width))


def run_label(frame: pd.DataFrame, outcome_column: str = "outcome") -> pd.Series:
    """A run's final outcome if it is complete, otherwise its status."""
    complete = is_full_budget(frame, outcome_column)
    return pd.Series(np.where(complete, frame[outcome_column], frame["status"].astype(str)),
                     index=frame.index)
