"""What a person sees while a study runs and when it ends."""

from __future__ import annotations

import sys

from ray.tune import Callback


class OutcomeLogger(Callback):
    """One line per finished or errored trial: its axes, outcome and steps reached."""

    def __init__(self, axes: list[str], n_trials: int | None = None):
        self.axes = axes
        self.n_trials = n_trials
        self.done = 0

    def _axes(self, trial) -> str:
        cfg = trial.config
        parts = [f"{a}={cfg[a]:.3g}" if isinstance(cfg[a], (int, float)) else f"{a}={cfg[a]}"
                 for a in self.axes if a in cfg]
        return " ".join([*parts, f"seed={cfg.get('seed')}"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        r = trial.last_result or {}
        steps = f"{r.get('step', 0)}/{r.get('budget_steps', '?')} steps"
        stopped = "" if r.get("completed") else " (stopped early)"
        best = r.get("best_val_per", float("nan"))
        print(f"[{self.done}/{self.n_trials or len(trials)}] {trial.trial_id} "
              f"{self._axes(trial)}: {r.get('outcome', '?')}{stopped}, "
              f"best PER {best:.3f}, {steps}", file=sys.stderr, flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        print(f"[{self.done}/{self.n_trials or len(trials)}] {trial.trial_id} "
              f"{self._axes(trial)}: ERRORED "
              f"(see {trial.path}/error.txt)", file=sys.stderr, flush=True)


def _trials(results) -> list:
    return list(results._experiment_analysis.trials)


def unfinished_trials(results, planned: int, early_stopping: bool) -> int:
    """Planned trials that neither completed nor errored: the study was interrupted.

    Tune creates grid trials lazily, so an interrupted grid has fewer trials than planned;
    it also marks trials that were running at the interrupt TERMINATED, so without early
    stopping a trial counts as complete only with its final (completed) report.
    """
    trials = _trials(results)
    incomplete = 0
    for t in trials:
        if t.status == "ERROR":
            continue
        if t.status != "TERMINATED" or (not early_stopping and
                                        not (t.last_result or {}).get("completed")):
            incomplete += 1
    return incomplete + max(planned - len(trials), 0)


def outcome_table(results) -> str:
    """Outcome counts per cell of the varied axes."""
    import pandas as pd

    rows = []
    for t in _trials(results):
        r = t.last_result or {}
        row = {k: v for k, v in t.config.items() if k not in ("cell",)}
        row.pop("seed", None)
        if t.status == "ERROR":
            row["outcome"] = "errored"
        elif not r.get("completed"):
            row["outcome"] = "stopped_early" if t.status == "TERMINATED" else "unfinished"
        else:
            row["outcome"] = r.get("outcome", "?")
        rows.append(row)
    if not rows:
        return "no trials"
    df = pd.DataFrame(rows)
    axes = [c for c in df.columns if c != "outcome"]
    varied = [a for a in axes if df[a].nunique() > 1] or axes
    if len(df.groupby(varied)) > 40:  # continuous search: overall counts only
        return "outcomes: " + ", ".join(f"{k} {v}" for k, v in
                                        df["outcome"].value_counts().items())
    table = pd.crosstab([df[a] for a in varied], df["outcome"])
    return "outcomes per cell:\n" + table.to_string()
