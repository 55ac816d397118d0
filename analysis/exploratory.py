"""The report of an exploratory search (random / TPE samples, usually with ASHA).

What people look at in optuna-dashboard and W&B sweeps, from the loaded tables: the best
configurations found (with outcome and budget reached), final PER against each axis (slice
plots, log axes where the axis was sampled log-uniformly, coloured by outcome), a
parallel-coordinates view, the surrogate importance of each axis with its fit quality
(random-forest functional ANOVA, Hutter et al. 2014, out-of-bag R^2), ASHA's rung survival
and the learning curves with early stops marked. No cell tables: every sample is its own
setting, and the searcher chose where to sample, so nothing here is a confirmatory test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import figures, html, stats
from analysis.load import Experiment
from trainable.contract import SENTINEL_PER

TOP_K = 10
MIN_SURROGATE_RUNS = 10


@dataclass
class Search:
    axes: list[str]                  # the axes that vary
    log_axes: set[str]
    best: pd.DataFrame               # top configurations, best first
    importance: pd.DataFrame         # axis, share, oob_r2, n, response_note
    rungs: pd.DataFrame              # rung step, trials reaching it, share (ASHA only)
    frame: pd.DataFrame              # every run, with `label` and `last_per`
    notes: list[str] = field(default_factory=list)


def _varying(experiment: Experiment) -> tuple[list[str], set[str]]:
    trials = experiment.trials
    axes = [a.name for a in experiment.axes if a.name in trials and trials[a.name].nunique() > 1]
    logs = {a.name for a in experiment.axes if a.distribution == "loguniform"}
    return axes, logs


def _last_per(experiment: Experiment) -> pd.Series:
    """Each run's last reported val PER (the final one for full-budget runs, the PER at its
    stop for a run a scheduler stopped)."""
    curves = experiment.curves
    if curves.empty or "val_per" not in curves:
        return pd.Series(np.nan, index=experiment.trials.index)
    last = curves.sort_values("step").groupby("trial_id")["val_per"].last()
    return experiment.trials["trial_id"].map(last)


def _with_per(frame: pd.DataFrame) -> pd.Series:
    """Runs with a real last PER: not errored, not diverged (those end on the contract's
    sentinel PER)."""
    return (~frame["status"].isin(("errored", "diverged")) & frame["last_per"].notna()
            & (frame["last_per"] < SENTINEL_PER))


def rung_milestones(budget: int, grace_fraction: float, reduction_factor: float) -> list[int]:
    """ASHA's rungs for time_attr=step: grace, grace*rf, ... below the budget, then the
    budget (Ray Tune's ASHAScheduler with max_t=budget)."""
    grace = max(1, math.ceil(grace_fraction * budget))
    rungs, step = [], float(grace)
    while step < budget:
        rungs.append(int(step))
        step *= reduction_factor
    return [*rungs, budget]


def rung_survival(frame: pd.DataFrame, budget: int, grace_fraction: float,
                  reduction_factor: float) -> pd.DataFrame:
    """How many runs reached each rung (steps_reached >= rung); diverged runs stop on
    their own and are counted apart."""
    rows = []
    runs = frame[frame["status"] != "errored"]
    for rung in rung_milestones(budget, grace_fraction, reduction_factor):
        reached = int((runs["steps_reached"] >= rung).sum())
        rows.append({"rung_step": rung, "runs_reaching": reached, "of": len(runs),
                     "share": reached / len(runs) if len(runs) else math.nan,
                     "diverged_before": int(((runs["status"] == "diverged")
                                             & (runs["steps_reached"] < rung)).sum())})
    return pd.DataFrame(rows)


def importance(frame: pd.DataFrame, axes: list[str], log_axes: set[str]
               ) -> tuple[pd.DataFrame, str]:
    """Main-effect variance shares of a random-forest surrogate of the PER, with its
    out-of-bag R^2; on full-budget runs when there are enough, else on every run's last
    PER (then runs stopped early weigh in with the PER at their stop)."""
    full = stats.per_set(frame)
    if len(full) >= MIN_SURROGATE_RUNS:
        data, response, note = full, stats.PER_COLUMN, "final PER of full-budget runs"
    else:
        data = frame[_with_per(frame)]
        response = "last_per"
        note = ("last reported PER of every run (fewer than "
                f"{MIN_SURROGATE_RUNS} full-budget runs; runs stopped early count with the "
                "PER at their stop)")
    factors = [stats.Factor(axis=a, column=a, levels=(), binned=False,
                            log_scale=a in log_axes, values=None) for a in axes]
    if len(data) < MIN_SURROGATE_RUNS or not factors or data[response].var() <= 0:
        return pd.DataFrame(columns=["axis", "share", "oob_r2", "n", "response"]), (
            f"too few runs with a PER for a surrogate ({len(data)}; need "
            f"{MIN_SURROGATE_RUNS})")
    shares, r2 = stats.surrogate_shares(data, factors, response, seed=0)
    rows = [{"axis": a, "share": shares.get(a, math.nan), "oob_r2": r2, "n": len(data),
             "response": note} for a in axes]
    table = pd.DataFrame(rows).sort_values("share", ascending=False, ignore_index=True)
    return table, note


def analyse_search(experiment: Experiment) -> Search:
    axes, logs = _varying(experiment)
    frame = experiment.trials.copy()
    frame["last_per"] = _last_per(experiment)
    frame["label"] = figures.run_label(frame, "last_outcome").where(
        frame["status"] != "stopped_early", "stopped_early")
    budget = experiment.study.budget_steps
    ranked = frame[_with_per(frame)]
    # Best first by PER; at equal PER the run that trained longer.
    best = ranked.sort_values(["last_per", "steps_reached"], ascending=[True, False]).head(
        TOP_K)
    best = best[["trial_id", *axes, "seed", "last_per", "label", "steps_reached"]].assign(
        budget=budget).reset_index(drop=True)
    best.insert(0, "rank", np.arange(1, len(best) + 1))
    table, _ = importance(frame, axes, logs)
    asha = experiment.study.preset_config.get("asha") or {}
    rungs = (rung_survival(frame, budget, asha.get("grace_fraction", 0.25),
                           asha.get("reduction_factor", 2.0))
             if experiment.study.scheduler == "asha" else pd.DataFrame())
    notes = []
    if not best.empty and best.loc[0, "steps_reached"] < budget:
        notes.append("The lowest PER belongs to a run that did not reach the full budget: "
                     "compare it with full-budget runs before trusting it.")
    return Search(axes=axes, log_axes=logs, best=best, importance=table, rungs=rungs,
                  frame=frame, notes=notes)


# ------------------------------------------------------------------------------- figures
def _scaled(values: pd.Series, log: bool) -> np.ndarray:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return np.log10(np.clip(v, 1e-300, None)) if log else v


def slice_plots(search: Search) -> plt.Figure | None:
    frame = search.frame[search.frame["status"] != "errored"]
    if frame.empty or not search.axes:
        return None
    valid = _with_per(frame)
    top = max(1.05, float(frame.loc[valid, "last_per"].max()) * 1.1) if valid.any() else 1.1
    n = len(search.axes)
    fig, axs = plt.subplots(1, n, figsize=(4.2 * n, 3.8), dpi=figures.DPI, squeeze=False,
                            sharey=True)
    for ax, axis in zip(axs[0], search.axes):
        for label, group in frame.groupby("label"):
            y = group["last_per"].where(_with_per(group), top)  # diverged: on the top line
            full = group["steps_reached"] >= group["budget_steps"]
            color = figures.PALETTE.get(label, "#444444")
            ax.scatter(group.loc[full, axis], y[full], c=color, s=28, label=label, alpha=0.8)
            ax.scatter(group.loc[~full, axis], y[~full], c=color, s=30, marker="x",
                       alpha=0.8)
        if axis in search.log_axes:
            ax.set_xscale("log")
        ax.axhline(top, color="#d62728", linewidth=0.5, linestyle=":")
        ax.set_xlabel(axis)
    axs[0][0].set_ylabel("last val PER (x: stopped before the full budget)")
    axs[0][0].legend(fontsize=7, title="outcome", title_fontsize=8)
    fig.suptitle("Final PER against each axis, one point per run (diverged runs on the "
                 "dotted top line)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def parallel_coordinates(search: Search) -> plt.Figure | None:
    frame = search.frame[_with_per(search.frame)]
    if frame.empty or not search.axes:
        return None
    columns = [*search.axes, "last_per"]
    scaled = np.column_stack([_scaled(frame[c], c in search.log_axes) for c in columns])
    low, high = np.nanmin(scaled, axis=0), np.nanmax(scaled, axis=0)
    norm = (scaled - low) / np.where(high > low, high - low, 1.0)
    per = frame["last_per"].to_numpy(dtype=float)
    cmap = plt.get_cmap("viridis_r")
    colors = cmap((per - per.min()) / max(per.max() - per.min(), 1e-12))
    full = (frame["steps_reached"] >= frame["budget_steps"]).to_numpy()
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 2, 4.5), dpi=figures.DPI)
    order = np.argsort(-per)  # best runs drawn last, on top
    for i in order:
        ax.plot(range(len(columns)), norm[i], color=colors[i],
                linewidth=1.6 if full[i] else 0.8, linestyle="-" if full[i] else "--",
                alpha=0.85)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([f"{c}\n(log)" if c in search.log_axes else c for c in columns])
    for k, c in enumerate(columns):
        lo, hi = low[k], high[k]
        fmt = (lambda v: f"{10 ** v:.2g}") if c in search.log_axes else (lambda v: f"{v:.3g}")
        ax.annotate(fmt(lo), (k, -0.06), ha="center", fontsize=7, annotation_clip=False)
        ax.annotate(fmt(hi), (k, 1.03), ha="center", fontsize=7, annotation_clip=False)
    ax.set_yticks([])
    ax.set_title("Parallel coordinates, one line per run, coloured by last PER (yellow = "
                 "lowest); dashed: stopped before the full budget", fontsize=10)
    fig.tight_layout()
    return fig


def importance_plot(search: Search) -> plt.Figure | None:
    table = search.importance
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(table) + 1.5), dpi=figures.DPI)
    ax.barh(table["axis"][::-1], table["share"][::-1], color="#4c72b0")
    ax.set_xlabel("share of the surrogate's PER variance (main effect)")
    ax.set_title(f"Axis importance (random-forest fANOVA, n={int(table['n'].iloc[0])}, "
                 f"out-of-bag R^2 {table['oob_r2'].iloc[0]:.2f})", fontsize=10)
    fig.tight_layout()
    return fig


def rung_plot(search: Search) -> plt.Figure | None:
    rungs = search.rungs
    if rungs.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=figures.DPI)
    labels = [str(r) for r in rungs["rung_step"]]
    ax.bar(labels, rungs["runs_reaching"], color="#55a868")
    for k, (n, of) in enumerate(zip(rungs["runs_reaching"], rungs["of"])):
        ax.annotate(f"{n}/{of}", (k, n), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("rung (training step)")
    ax.set_ylabel("runs reaching it")
    ax.set_title("ASHA rung survival", fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(experiment: Experiment, search: Search) -> plt.Figure | None:
    curves = experiment.curves
    if curves.empty or "val_per" not in curves:
        return None
    labels = search.frame.set_index("trial_id")["label"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=figures.DPI)
    budget = experiment.study.budget_steps
    for trial_id, group in curves.sort_values("step").groupby("trial_id"):
        label = labels.get(trial_id, "errored")
        color = figures.PALETTE.get(label, "#444444")
        y = group["val_per"].clip(upper=1.5)  # diverged runs end on the sentinel
        ax.plot(group["step"], y, color=color, alpha=0.6, linewidth=1)
        if group["step"].iloc[-1] < budget and label != "diverged":
            ax.plot(group["step"].iloc[-1], y.iloc[-1], "x", color="black", markersize=6)
    handles = [plt.Line2D([], [], color=figures.PALETTE[k], label=k)
               for k in figures.PALETTE if k in set(labels)]
    handles.append(plt.Line2D([], [], color="black", marker="x", linestyle="",
                              label="stopped early"))
    ax.legend(handles=handles, fontsize=7)
    ax.set_xlabel("step")
    ax.set_ylabel("val PER (clipped at 1.5)")
    ax.set_title("Learning curves; x marks where the scheduler stopped a run", fontsize=10)
    fig.tight_layout()
    return fig


def make_figures(experiment: Experiment, search: Search, directory: Path
                 ) -> dict[str, tuple[Path, str]]:
    directory.mkdir(parents=True, exist_ok=True)
    made = {
        "slices": (slice_plots(search), "Final PER against each axis"),
        "parallel": (parallel_coordinates(search), "Parallel coordinates"),
        "importance": (importance_plot(search), "Axis importance (surrogate)"),
        "rungs": (rung_plot(search), "ASHA rung survival"),
        "learning_curves": (learning_curves(experiment, search), "Learning curves"),
    }
    return figures.save_all(made, directory)


def write_tables(experiment: Experiment, search: Search, out: Path) -> None:
    search.frame.to_csv(out / "trials.csv", index=False)
    experiment.curves.to_csv(out / "curves.csv", index=False)
    search.best.to_csv(out / "best.csv", index=False)
    search.importance.to_csv(out / "importance.csv", index=False)
    if not search.rungs.empty:
        search.rungs.to_csv(out / "rungs.csv", index=False)


def summary_lines(experiment: Experiment, search: Search) -> list[str]:
    study = experiment.study
    lines = [f"Exploratory search {experiment.name}: preset {study.preset} "
             f"({study.search}, {study.scheduler}), {len(search.frame)} runs, budget "
             f"{study.budget_steps} steps"]
    if search.best.empty:
        lines.append("No run reported a PER.")
    for _, row in search.best.head(3).iterrows():
        setting = ", ".join(f"{a}={row[a]:.3g}" for a in search.axes)
        lines.append(f"  #{row['rank']}: {setting}: PER {row['last_per']:.3f} "
                     f"({row['label']}, {int(row['steps_reached'])}/{row['budget']} steps)")
    if not search.importance.empty:
        imp = ", ".join(f"{r.axis} {r.share:.2f}" for r in search.importance.itertuples())
        lines.append(f"Axis importance (surrogate, out-of-bag R^2 "
                     f"{search.importance['oob_r2'].iloc[0]:.2f}): {imp}")
    if not search.rungs.empty:
        lines.append("ASHA rungs: " + ", ".join(
            f"step {r.rung_step}: {r.runs_reaching}/{r.of}" for r in search.rungs.itertuples()))
    counts = search.frame["label"].value_counts()
    lines.append("Runs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return lines + search.notes


def render(experiment: Experiment, search: Search, saved: dict[str, tuple[Path, str]]
           ) -> str:
    """The HTML page: best configurations first, then the figures, importance, rungs."""
    def fig(name: str) -> str:
        return html.embed(*saved[name]) if name in saved else ""

    best = search.best.rename(columns={"last_per": "PER", "label": "outcome",
                                       "steps_reached": "steps"})
    shown = best.drop(columns=["trial_id"]).copy()
    shown["steps"] = [f"{int(s)}/{b}" for s, b in zip(shown["steps"], shown.pop("budget"))]
    importance = (html.table(search.importance.drop(columns=["response"]),
                             numeric=("share", "oob_r2"))
                  + f"<p>Response: {html.esc(search.importance['response'].iloc[0])}.</p>"
                  if not search.importance.empty else
                  "<p>Too few runs with a PER for a surrogate.</p>")
    rungs = (html.table(search.rungs, numeric=("share",)) if not search.rungs.empty
             else "<p>No early-stopping scheduler: every run had the full budget.</p>")
    notes = "".join(f"<li>{html.esc(n)}</li>" for n in search.notes)
    study = experiment.study
    body = f"""
<h1>Exploratory search: {html.esc(experiment.name)}</h1>
<p><span class="badge exploratory">exploratory</span> preset <b>{html.esc(study.preset)}</b>
({html.esc(study.search)} search, {html.esc(study.scheduler)} scheduler),
{len(search.frame)} runs, budget {study.budget_steps} steps. The searcher chose where to
sample and the scheduler stopped runs early, so these are leads to confirm with a grid
study, not tests.</p>
<h2>Best configurations found</h2>{html.table(shown, numeric=("PER",))}
<ul>{notes}</ul>
<h2>Final PER against each axis</h2>{fig('slices')}
<h2>Parallel coordinates</h2>{fig('parallel')}
<h2>Axis importance</h2>{fig('importance')}{importance}
<h2>ASHA rung survival</h2>{fig('rungs')}{rungs}
<h2>Learning curves</h2>{fig('learning_curves')}
<h2>What was run</h2>{html.what_was_run(experiment)}
<h2>Methods</h2><ul>
<li>Best configurations: lowest last reported val PER; a run stopped early carries the PER
at its stop (its steps column says so).</li>
<li>Importance: main-effect variance shares of a random-forest surrogate predicted on a grid
(functional ANOVA; Hutter, Hoos &amp; Leyton-Brown, ICML 2014), log10 for log-uniform axes,
with the forest's out-of-bag R<sup>2</sup> as its fit quality.</li>
<li>ASHA rungs: grace period and reduction factor of the preset (Li et al. 2020, MLSys);
a run reaches a rung when it trained at least that many steps.</li></ul>
"""
    return html.page(f"{experiment.name}: exploratory search", body)


def build(experiment: Experiment, out: Path) -> Path:
    import warnings

    search = analyse_search(experiment)
    write_tables(experiment, search, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = make_figures(experiment, search, out / "figures")
    (out / "report.html").write_text(render(experiment, search, saved))
    lines = summary_lines(experiment, search)
    (out / "summary.txt").write_text("\n".join([*lines, f"Report: {out / 'report.html'}"])
                                     + "\n")
    return out
