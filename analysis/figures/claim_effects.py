"""The claims figure: each claim's effect with its confidence sequence, and how it
moved over training."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures.common import DPI


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
