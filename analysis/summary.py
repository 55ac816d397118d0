"""summary.txt: the main report in a few lines of plain text, answer first (the study
driver prints it). It reads the same results as report.html and words them with the same
helpers (analysis.html's number format, adaptive-wave and day-layer-lr wording)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis import boundary, stats
from analysis import claims as claims_mod
from analysis.html import day_lr_text, decided_when, fmt


def summary_text(experiment, results, report_dir: Path) -> str:
    """A short plain-text version of the report, answer first (the driver prints it)."""
    frame = results.frame
    counts = frame["status"].value_counts()
    lines = [f"Stability study {experiment.name}: preset {experiment.study.preset}, "
             f"{experiment.kind}", results.opening]
    if results.post_hoc:
        lines.append(f"POST HOC: {results.post_hoc}")
    if results.claims is not None:
        lines.append("Verdicts (95% anytime-valid confidence sequences, runs paired by seed):")
        for _, row in results.claims.iterrows():
            effect = f" {row['effect']}" if row["effect"] else ""
            held = results.held_late.get(row["id"], "yes")
            late = ("" if held == "yes" else
                    f" [verdict held over the last quarter of training: {held}]")
            when = decided_when(experiment, row["id"])
            words = claims_mod.VERDICT_WORDS[row["verdict"]]
            lines.append(f"  {row['id']}: {words}{effect}, {row['n']} "
                         f"seed(s){f', decided after {when}' if when else ''} "
                         f"({row['reason']}){late} [{results.scope.tag}]")
            if row["id"] in results.detector_checks:
                lines.append(f"    no failure seen; {results.detector_checks[row['id']]}")
    else:
        lines.append(f"Claims: {results.claims_note}")
    if results.primary_kind == "claim":
        lines.append(f"Primary hypothesis: {results.primary_text} (the row 'primary')")
    elif results.primary_kind == "regime":
        lines.append(f"Primary hypothesis: {results.primary_text} (the regime test below)")
    adaptive = experiment.study.adaptive
    if adaptive is not None:
        lines.append(f"Adaptive replication: {len(adaptive.waves)} wave(s), "
                     f"{adaptive.n_trials} trials, {adaptive.minutes_spent:.1f} training "
                     f"minutes; stopped: {adaptive.stopped or 'not yet'}")
    if experiment.study.day_lr is not None:
        lines.append(f"Day-layer lr: {day_lr_text(experiment.study)}")
    lines.append(
        f"Runs: {len(frame)} total; finished {counts.get('finished', 0)}, diverged "
        f"{counts.get('diverged', 0)}, stopped early {counts.get('stopped_early', 0)}, "
        f"errored {counts.get('errored', 0)} (budget {experiment.study.budget_steps} steps)")
    for block in results.blocks:
        cells = block.cells
        if not block.factors or cells.empty:
            continue
        full = cells[cells["n"] > 0]
        status = full["status"]
        where = f" of {block.label}" if len(results.blocks) > 1 else ""
        lines.append(f"Cells{where}: {int((status == 'stable').sum())} stable, "
                     f"{int((status == 'unstable').sum())} unstable, "
                     f"{int((status == 'uncertain').sum())} uncertain (95% confidence "
                     f"sequence of the stable rate vs {stats.STABLE_RATE_THRESHOLD:.0%}), "
                     f"{len(cells) - len(full)} without a full-budget run")
    tests = results.tests
    if not tests.empty:
        hits = tests[tests["p_holm"] < stats.ALPHA]
        scope = (" (exploratory: the first wave, one run per cell)"
                 if experiment.study.adaptive is not None else
                 "" if experiment.confirmatory else " (exploratory)")
        lines.append(f"Secondary interaction tests significant after Holm{scope}: " + (
            "; ".join(f"{r['pair']} on {r['endpoint']} (p_holm={fmt(r['p_holm'])})"
                      for _, r in hits.iterrows()) or "none"))
    if results.boundary.spec is not None:
        for _, row in results.regime.iterrows():
            slope = (f"boundary slope {row['slope']:.2f} [{row['slope_low']:.2f}, "
                     f"{row['slope_high']:.2f}]" if np.isfinite(row["slope"]) else row["note"])
            identified = (f"; lines through every bracket: slopes "
                          f"[{row['identified_low']:.2f}, {row['identified_high']:.2f}]"
                          if np.isfinite(row["identified_low"]) else "")
            lines.append(f"Regime {row['regime']} ({results.boundary.spec.across} "
                         f"{row['columns']}; prediction: slope {row['prediction']:g}, band "
                         f"{row['band_low']:g} to {row['band_high']:g}): "
                         f"{str(row['verdict']).upper()} ({slope}{identified}; separated: "
                         f"{row['separated'] or 'n/a'}; {row['n_brackets']} brackets; "
                         f"eps_dominance check: {row['eps_dominance_check']})")
        lines.append(f"  method: {boundary.METHOD}")
    lines.append(f"Caveats: {len(results.caveats)} (see report.html)")
    lines.append(f"Report: {report_dir / 'report.html'}")
    return "\n".join(lines) + "\n"
