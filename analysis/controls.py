"""Report of a controls study: can each failure detector see its failure on this proxy?

A controls study (configs/studies/controls.yaml) runs, for every detector, a setting that
should make it fire (a positive control) and the official setting, which should make none
fire (the negative control). A detector's sensitivity is the share of its positive-control
runs it flagged; its specificity is the share of negative-control runs it did not flag;
both with exact (Clopper-Pearson) 95% intervals and their n.

"Flagged" is the detector's own rule on a complete run, before the outcome precedence
(diverged > blank_collapse > exploding > slow) picks one label:
  blank_collapse  the final evaluation is blank-only past the grace window (`collapsed`)
  diverged        the run stopped as diverged (NaN/Inf, or val loss > factor x step 0)
  exploding       the latched explosion flag (`exploded`): a pre-clip gradient norm far
                  above the run's median at some evaluation window
  slow            a run that neither diverged nor collapsed ends above the slow PER
                  threshold (a collapsed run's PER is about 1 whatever the lr)
`labelled` counts the runs whose final outcome (after precedence) is the control's target:
what the claims count.

The main report cites the latest controls study found beside it (`latest`) next to every
verdict that rests on no failure being seen.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from analysis import figures, html
from analysis.load import Experiment, load_experiment
from analysis.record import LADDER_FILE, STUDY_FILE, read_record
from analysis.runs import full_budget, in_cell
from analysis.stats.alpha import ALPHA
from trainable.config import Config
from trainable.contract import DETECTORS
from trainable.errors import UserError

# What the figure shows for each detector: the rule's own signal where the curves carry it
# (val loss ratio, PER); for collapse the blank share of validation frames (the rule reads
# the emitted-phoneme ratio, which the reports do not keep), for explosion the window's
# max pre-clip norm (the rule compares it with the run's running median).
SIGNALS = {"blank_collapse": ("blank_fraction", "blank fraction of validation frames"),
           "diverged": ("val_loss", "val loss / step-0 val loss"),
           "exploding": ("grad_norm_max", "max pre-clip gradient norm in the window"),
           "slow": ("val_per", "val PER")}


def interval(k: int, n: int) -> tuple[float, float, float]:
    """Share k/n with its exact 95% (Clopper-Pearson) interval; NaN without runs."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    low, high = proportion_confint(k, n, alpha=ALPHA, method="beta")
    return k / n, float(low), float(high)


def flags(trials: pd.DataFrame, slow_per: float) -> pd.DataFrame:
    """One boolean column per detector for each complete run (see the module doc)."""
    complete = full_budget(trials)
    diverged = complete["status"].eq("diverged")

    def flag(column: str) -> pd.Series:
        values = complete[column] if column in complete else pd.Series(0, index=complete.index)
        return pd.to_numeric(values, errors="coerce").fillna(0).astype(float) > 0

    per = pd.to_numeric(complete.get("final_val_per"), errors="coerce")
    collapsed = flag("final_collapsed") & ~diverged
    return pd.DataFrame({"blank_collapse": collapsed,
                         "diverged": diverged | flag("final_diverged"),
                         "exploding": flag("final_exploded"),
                         "slow": ~diverged & ~collapsed & (per > slow_per)},
                        index=complete.index)


def control_runs(experiment: Experiment, cell: int) -> pd.DataFrame:
    """The runs of one control's cell (matched on every axis value of its point)."""
    point = experiment.study.points[cell]
    trials = experiment.trials
    return trials[in_cell(trials, point)]


@dataclass
class Controls:
    sensitivity: pd.DataFrame  # one row per positive control
    specificity: pd.DataFrame  # one row per detector, on the negative control(s)
    runs: pd.DataFrame  # every complete run: control, target, outcome, one column per flag
    slow_per: float


def analyse(experiment: Experiment) -> Controls:
    study = experiment.study
    if not study.controls:
        raise UserError(f"{experiment.path}: not a controls study (study.yaml lists no "
                        "controls); run 'python -m study.run grid --preset controls'")
    slow_per = study.train_config.monitor.slow_per
    sens_rows, neg_flags, tables = [], [], []
    for control in study.controls:
        runs = control_runs(experiment, control.cell)
        fired = flags(runs, slow_per)
        complete = runs.loc[fired.index]
        tables.append(fired.assign(control=control.name, target=control.detector or "none",
                                   outcome=complete["outcome"], seed=complete["seed"],
                                   trial_id=complete["trial_id"]))
        if control.detector is None:
            neg_flags.append(fired)
            continue
        k, n = int(fired[control.detector].sum()), len(fired)
        rate, low, high = interval(k, n)
        outcomes = complete["outcome"].value_counts()
        sens_rows.append({
            "control": control.name, "detector": control.detector, "runs": n, "flagged": k,
            "sensitivity": rate, "ci_low": low, "ci_high": high,
            "labelled": int((complete["outcome"] == control.detector).sum()),
            "outcomes": ", ".join(f"{o} {c}" for o, c in outcomes.items()),
            "incomplete": len(runs) - n, "setting": ", ".join(
                f"{key}={value:g}" for key, value in control.set.items()) or "official",
            "why": " ".join(control.why.split())})
    negative = pd.concat(neg_flags) if neg_flags else pd.DataFrame(columns=list(DETECTORS))
    spec_rows = []
    for detector in DETECTORS:
        n = len(negative)
        k = int(negative[detector].sum()) if n else 0
        rate, low, high = interval(n - k, n)
        spec_rows.append({"detector": detector, "runs": n, "flagged": k,
                          "specificity": rate, "ci_low": low, "ci_high": high})
    runs = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return Controls(sensitivity=pd.DataFrame(sens_rows), specificity=pd.DataFrame(spec_rows),
                    runs=runs, slow_per=slow_per)


def headline(controls: Controls) -> list[str]:
    """The answer in a few lines: each detector on its control, then the negative control."""
    lines = []
    for _, row in controls.sensitivity.iterrows():
        lines.append(f"  {row['detector']} on '{row['control']}' ({row['setting']}): flagged "
                     f"{row['flagged']}/{row['runs']} runs, sensitivity "
                     f"{row['sensitivity']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]; "
                     f"final label {row['detector']} in {row['labelled']}/{row['runs']} "
                     f"(outcomes: {row['outcomes'] or 'none complete'})")
    missing = [d for d in DETECTORS if d not in set(controls.sensitivity.get("detector", []))]
    if missing:
        lines.append(f"  no positive control for: {', '.join(missing)}")
    spec = controls.specificity
    if spec["runs"].max() == 0:
        lines.append("  no negative control runs")
    else:
        lines.append("  negative control (no detector should fire): " + "; ".join(
            f"{r.detector} flagged {r.flagged}/{r.runs}, specificity {r.specificity:.2f} "
            f"[{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in spec.itertuples()))
    return lines


def rates_figure(controls: Controls) -> plt.Figure | None:
    sens, spec = controls.sensitivity, controls.specificity
    if sens.empty and spec["runs"].max() == 0:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=figures.DPI)
    rows = [(f"sensitivity: {r.detector}\n({r.control}, n={r.runs})", r.sensitivity,
             r.ci_low, r.ci_high, "#2b7a3d") for r in sens.itertuples()]
    rows += [(f"specificity: {r.detector}\n(negative control, n={r.runs})", r.specificity,
              r.ci_low, r.ci_high, "#2f6fd6") for r in spec.itertuples() if r.runs]
    for i, (_label, rate, low, high, colour) in enumerate(rows):
        ax.errorbar(rate, i, xerr=[[rate - low], [high - rate]], fmt="o", color=colour,
                    capsize=4)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.axvline(0.5, color="#999", linestyle=":", linewidth=1)
    ax.set_xlabel("share of runs (point) with exact 95% interval (bar)")
    ax.set_title("Detector sensitivity on positive controls, specificity on the official "
                 "setting", fontsize=10)
    fig.tight_layout()
    return fig


def signals_figure(experiment: Experiment, controls: Controls) -> plt.Figure | None:
    """Each positive control's runs against the negative control's, on the signal its
    detector reads, with the detector's threshold: the detectors firing on real runs."""
    sens = controls.sensitivity
    curves = experiment.curves
    if sens.empty or curves.empty:
        return None
    monitor = experiment.study.train_config.monitor
    runs = controls.runs
    negative = set(runs.loc[runs["target"] == "none", "trial_id"])
    fig, axes = plt.subplots(1, len(sens), figsize=(4.2 * len(sens), 3.6), dpi=figures.DPI,
                             squeeze=False)
    for ax, row in zip(axes.flat, sens.itertuples()):
        metric, label = SIGNALS[row.detector]
        ids = set(runs.loc[runs["control"] == row.control, "trial_id"])
        for trial_ids, colour, name in ((negative, "#2f6fd6", "official (negative)"),
                                        (ids, "#b3261e", row.control)):
            first = True
            for trial_id in sorted(trial_ids):
                curve = curves[curves["trial_id"] == trial_id].sort_values("step")
                if curve.empty or metric not in curve:
                    continue
                y = curve[metric].astype(float)
                if row.detector == "diverged":
                    y = y / float(curve["initial_val_loss"].iloc[0]) \
                        if "initial_val_loss" in curve else y
                ax.plot(curve["step"], y, color=colour, alpha=0.6, linewidth=1,
                        label=name if first else None)
                first = False
        if row.detector in ("diverged", "exploding"):
            ax.set_yscale("log")
        if row.detector == "diverged":
            ax.axhline(monitor.diverge_loss_factor, color="k", linestyle="--",
                       linewidth=1, label="threshold")
        elif row.detector == "slow":
            ax.axhline(controls.slow_per, color="k", linestyle="--", linewidth=1,
                       label="threshold")
        ax.set_title(f"{row.detector}: {row.flagged}/{row.runs} flagged", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(label, fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("Positive controls (red) against the official setting (blue): val loss ratio "
                 "(divergence), val PER (slow), blank share (collapse), max pre-clip gradient "
                 "norm (explosion)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def render(experiment: Experiment, controls: Controls, saved: dict) -> str:
    def fig(name: str) -> str:
        return html.embed(*saved[name]) if name in saved else ""

    sens = controls.sensitivity.rename(columns={"ci_low": "95% low", "ci_high": "95% high"})
    spec = controls.specificity.rename(columns={"ci_low": "95% low", "ci_high": "95% high"})
    shown_runs = controls.runs[["control", "target", "seed", "outcome", *DETECTORS]] \
        if not controls.runs.empty else controls.runs
    answer = "".join(f"<li>{html.esc(line.strip())}</li>" for line in headline(controls))
    body = f"""
<h1>Detector controls: {html.esc(experiment.name)}</h1>
<p>preset <b>{html.esc(experiment.study.preset)}</b>, {len(controls.runs)} complete runs of
{experiment.study.budget_steps} steps. Could each failure detector have seen its failure on
this proxy? Each positive control is a setting that should make one detector fire; the
official setting should make none fire.</p>
<h2>Answer</h2><ul>{answer}</ul>{fig('rates')}
<h2>Sensitivity on the positive controls</h2>
{html.table(sens, numeric=("runs", "flagged", "sensitivity", "95% low", "95% high"))}
<h2>Specificity on the negative control</h2>
{html.table(spec, numeric=("runs", "flagged", "specificity", "95% low", "95% high"))}
<h2>The detectors on real training runs</h2>{fig('signals')}
<h2>Every run</h2><p>True: the detector's rule fired on the run (before the outcome
precedence diverged &gt; blank_collapse &gt; exploding &gt; slow picks one label).</p>
{html.table(shown_runs)}
<h2>What was run</h2>{html.what_was_run(experiment)}
<h2>Methods</h2><ul><li>Flags: the detector rules of trainable/monitor.py with this study's
thresholds ({html.esc(figures.stable_definition(experiment.study.train_config))}).</li>
<li>Intervals: exact binomial (Clopper-Pearson) 95% intervals,
statsmodels.stats.proportion.proportion_confint(method="beta").</li></ul>
"""
    return html.page(f"{experiment.name}: detector controls", body)


def build(experiment: Experiment, out: Path) -> Path:
    controls = analyse(experiment)
    out.mkdir(parents=True, exist_ok=True)
    controls.sensitivity.to_csv(out / "controls.csv", index=False)
    controls.specificity.to_csv(out / "specificity.csv", index=False)
    controls.runs.to_csv(out / "control_runs.csv", index=False)
    experiment.trials.to_csv(out / "trials.csv", index=False)
    experiment.curves.to_csv(out / "curves.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = figures.save_all({
            "rates": (rates_figure(controls), "Sensitivity and specificity with exact 95% "
                                              "intervals"),
            "signals": (signals_figure(experiment, controls),
                        "Each detector's signal on its positive control and on the official "
                        "setting")}, out / "figures")
    (out / "report.html").write_text(render(experiment, controls, saved))
    lines = [f"Detector controls {experiment.name}: {len(controls.runs)} complete runs of "
             f"{experiment.study.budget_steps} steps", *headline(controls),
             f"Report: {out / 'report.html'}"]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    return out


# ------------------------------------------------------------ cited by the main report
@dataclass
class Evidence:
    """The latest controls study beside a study: where, when, and what it measured."""

    name: str
    started: str
    budget_steps: int
    same_proxy: bool  # same model, data size and budget as the citing study
    controls: Controls


def _size(cfg: Config) -> tuple[int, int, int, int]:
    """What makes two studies the same proxy size: the GRU, the features, the batch."""
    return cfg.model.n_units, cfg.model.n_layers, cfg.data.n_features, cfg.data.batch_size


def latest(study_dir: Path, train_config: Config, budget_steps: int) -> Evidence | None:
    """The most recently started controls study in the same storage folder as study_dir
    (for a rung of a scale ladder, also beside the ladder's folder) run at this study's
    model, data and budget size; when none matches, the most recent of any size (cited
    with a warning)."""
    found = []
    parent = Path(study_dir).parent
    folders = list(parent.iterdir())
    if (parent / LADDER_FILE).is_file():
        folders += list(parent.parent.iterdir())
    for candidate in folders:
        if candidate == Path(study_dir) or not (candidate / STUDY_FILE).is_file():
            continue
        try:
            record = read_record(candidate)
        except UserError:
            continue
        if record.controls:
            found.append((record.started, candidate, record))
    other = None
    for _, folder, record in sorted(found, key=lambda item: item[0], reverse=True):
        same = (record.budget_steps == budget_steps
                and _size(record.train_config) == _size(train_config))
        if not same and other is not None:
            continue  # an older study of another size adds nothing
        try:
            controls = analyse(load_experiment(folder))
        except (UserError, OSError, ValueError, KeyError):
            continue  # not run yet (no trial folders), or unreadable: not evidence
        if controls.runs.empty:
            continue
        evidence = Evidence(name=record.name, started=record.started,
                            budget_steps=record.budget_steps, same_proxy=same,
                            controls=controls)
        if same:
            return evidence
        other = evidence
    return other


# The detector behind each event a claim may count (a latched flag is its detector's).
EVENT_DETECTOR = {"blank_collapse": "blank_collapse", "collapsed": "blank_collapse",
                  "diverged": "diverged", "exploding": "exploding", "exploded": "exploding",
                  "slow": "slow"}


def detectors_of(events: list[str]) -> list[str]:
    found: list[str] = []
    for event in events:
        detector = EVENT_DETECTOR.get(event, event)
        if detector not in found:
            found.append(detector)
    return found


def adjusted_bound(upper: float, bound: float, sensitivity_low: float) -> str:
    """With no failure seen, the interval's upper end bounds the rate of failures the
    detectors flag; a failure is flagged with probability at least the sensitivity's lower
    end, so the rate of failures that happened is at most upper / that. Two one-sided 2.5%
    errors (the interval's upper end, the sensitivity's lower end): at least 95% joint
    confidence. It assumes the sensitivity measured on the controls holds in the claim's
    cells, and, for a difference between cells, that it is the same in each. Says whether
    the claimed size is still excluded for failures that happened, and which sensitivity
    would make it so."""
    if not (np.isfinite(upper) and np.isfinite(bound) and bound > 0 and upper >= 0):
        return ""
    needed = upper / bound
    if sensitivity_low <= 0:
        return (f"adjusted for the detectors' sensitivity (lower end 0.00) no bound holds "
                f"for failures that happened; excluding {bound:g} needs a sensitivity of "
                f"at least {needed:.2f}")
    adjusted = upper / sensitivity_low
    verdict = ("still below" if adjusted < bound else "no longer below")
    return (f"adjusted for the detectors' sensitivity (lower end {sensitivity_low:.2f}): "
            f"failures that happened, flagged or not, at most {adjusted:.2f}, {verdict} the "
            f"claimed {bound:g} (at least 95% joint confidence if the controls' sensitivity "
            f"holds, and holds alike, in these cells; {needed:.2f} sensitivity would keep it "
            "below)")


def citation(evidence: Evidence | None, events: list[str], upper: float = math.nan,
             bound: float = math.nan) -> str:
    """One sentence: how well the detectors a 'no failures seen' verdict relies on saw
    their failures in the latest controls study (or that none was run), and, given the
    verdict's upper end `upper` on the failure rate (or difference) and its claimed size
    `bound`, the bound adjusted for the weakest detector's sensitivity."""
    detectors = detectors_of(events)
    if evidence is None:
        return ("no controls study beside this one: whether the detectors could see "
                f"{'/'.join(detectors)} here is unmeasured (python -m study.run grid "
                "--preset controls)")
    sens = evidence.controls.sensitivity.set_index("detector") \
        if not evidence.controls.sensitivity.empty else pd.DataFrame()
    parts = []
    for detector in detectors:
        if detector in sens.index:
            row = sens.loc[[detector]].iloc[0]
            parts.append(f"{detector} flagged {row['flagged']}/{row['runs']} control runs "
                         f"(sensitivity {row['sensitivity']:.2f} [{row['ci_low']:.2f}, "
                         f"{row['ci_high']:.2f}], labelled {detector} in "
                         f"{row['labelled']}/{row['runs']})")
        else:
            parts.append(f"{detector}: no positive control")
    where = "" if evidence.same_proxy else (
        f"; note: that study's model, data or budget ({evidence.budget_steps} steps) differ "
        "from this one's")
    lows = [float(sens.loc[[d]].iloc[0]["ci_low"]) if d in sens.index else 0.0
            for d in detectors]
    adjusted = adjusted_bound(upper, bound, min(lows)) if lows else ""
    return (f"detector check from controls study {evidence.name} ({evidence.started}): "
            + "; ".join(parts) + where + (f"; {adjusted}" if adjusted else ""))
