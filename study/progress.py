"""What a person sees while a study runs and when it ends."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from ray.tune import Callback


class OutcomeLogger(Callback):
    """One line per finished or errored trial: its axes, outcome, best PER and steps, then
    the running outcome counts, elapsed time and an ETA for the rest of the run."""

    def __init__(self, axes: list[str], n_trials: int | None = None, label: str = ""):
        self.axes = axes
        self.n_trials = n_trials
        self.label = label
        self.done = 0
        self.before = 0  # trials a resumed study had finished before this run
        self.counts: Counter = Counter()
        self.start: float | None = None

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.start is None:
            self.start = time.monotonic()
            # a resumed study: what finished before counts toward [done/total], not the ETA
            for t in trials:
                if t.status == "TERMINATED":
                    self.counts[(t.last_result or {}).get("outcome", "?")] += 1
                elif t.status == "ERROR":
                    self.counts["errored"] += 1
            self.before = self.done = sum(self.counts.values())

    def _axes(self, trial) -> str:
        cfg = trial.config
        parts = [f"{a}={cfg[a]:.3g}" if isinstance(cfg[a], (int, float)) else f"{a}={cfg[a]}"
                 for a in self.axes if a in cfg]
        return " ".join([*parts, f"seed={cfg.get('seed')}"])

    def _tail(self, total: int) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        if self.start is None:
            return counts
        elapsed = time.monotonic() - self.start
        left = max(total - self.done, 0)
        rate = elapsed / max(self.done - self.before, 1)
        eta = f", ETA {rate * left / 60:.1f} min" if left else ""
        return f"{counts} | {elapsed / 60:.1f} min{eta}"

    # Trials of at least this many steps also get a line per evaluation: a run of the
    # official 120,000 steps takes hours, and silence for that long looks like a hang.
    LONG_TRIAL_STEPS = 2000

    def on_trial_result(self, iteration, trials, trial, result, **info):
        budget = result.get("budget_steps") or 0
        step = result.get("step") or 0
        if budget < self.LONG_TRIAL_STEPS or result.get("completed") or step <= 1:
            return
        per_step = result.get("time_total_s", 0.0) / step
        print(f"{self.label}  {self._axes(trial)}: step {step:,}/{budget:,}, val PER "
              f"{result.get('val_per', float('nan')):.3f}, ETA "
              f"{per_step * (budget - step) / 60:.1f} min", file=sys.stderr, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        r = trial.last_result or {}
        self.counts[r.get("outcome", "?")] += 1
        total = self.n_trials or len(trials)
        steps = f"{r.get('step', 0)}/{r.get('budget_steps', '?')} steps"
        stopped = "" if r.get("completed") else " (stopped early)"
        best = r.get("best_val_per", float("nan"))
        print(f"{self.label}[{self.done}/{total}] {self._axes(trial)}: "
              f"{r.get('outcome', '?')}{stopped}, best PER {best:.3f}, {steps} | "
              f"{self._tail(total)}", file=sys.stderr, flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        self.counts["errored"] += 1
        total = self.n_trials or len(trials)
        print(f"{self.label}[{self.done}/{total}] {self._axes(trial)}: ERRORED "
              f"(see {trial.path}/error.txt) | {self._tail(total)}", file=sys.stderr,
              flush=True)


def outcome_table(exp_dir: Path) -> str:
    """Outcome counts per cell of the varied axes, from the study folder."""
    import pandas as pd

    from analysis.load import load_experiment
    from trainable.errors import UserError

    try:
        experiment = load_experiment(exp_dir)
    except UserError:
        return "no trials"
    trials = experiment.trials
    outcome = trials["outcome"].where(trials["outcome"].notna(),
                                      trials["status"].astype(str))
    axes = [a for a in experiment.axis_names if trials[a].nunique() > 1] or \
        experiment.axis_names
    if trials.groupby(axes).ngroups > 40:  # continuous search: overall counts only
        return "outcomes: " + ", ".join(f"{k} {v}" for k, v in
                                        outcome.value_counts().items())
    table = pd.crosstab([trials[a] for a in axes], outcome)
    return "outcomes per cell:\n" + table.to_string()
