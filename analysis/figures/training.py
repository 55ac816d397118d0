"""Figures of training: PER vs learning rate, curves coloured by outcome, and the
run-level eps regime plot."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from analysis import boundary, stats
from analysis.figures.common import DPI, PALETTE, run_label


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
