"""The runs a claim reads: the cells its rule compares, a cell's complete runs, paired
on the seeds every cell has, and the events counted in them. The failure-event tests also
pair errored runs (an error file and no final report), whose events are bounded both ways
(see Runs.event_bounds)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.claims.schema import (AllOf, AnyOf, Cell, ClaimsFile, PerDifference, RateBound,
                                    RateDifference, StepsRatio)
from analysis.runs import is_full_budget, same_value
from trainable.contract import FLAGS


def cells_of(rule) -> list[Cell]:
    """Every cell a rule compares (the cells the planner adds seeds to)."""
    if isinstance(rule, (AnyOf, AllOf)):
        cells: list[Cell] = []
        for part in rule.parts:
            cells += [c for c in cells_of(part) if c not in cells]
        return cells
    if isinstance(rule, (RateDifference, StepsRatio, PerDifference)):
        return [rule.cell, rule.reference]
    if isinstance(rule, RateBound):
        return [rule.cell]
    changed = {**rule.base, **rule.change}
    return [rule.base, changed, {**rule.base, **rule.moderator},
            {**changed, **rule.moderator}]


def failure_outcomes(rule) -> list[str]:
    """The failure events a rule counts, outcomes then flags (none for a PER rule)."""
    if isinstance(rule, (AnyOf, AllOf)):
        found: list[str] = []
        for part in rule.parts:
            found += [o for o in failure_outcomes(part) if o not in found]
        return found
    events = [*getattr(rule, "outcomes", []), *getattr(rule, "flags", [])]
    return [o for o in events if o != "stable"]


def unseen_failures(claims: ClaimsFile, runs: pd.DataFrame) -> dict[str, list[str]]:
    """Claims whose verdict rests on no failure being seen: claim id -> the failure events
    it counts, for every claim with such events, complete runs in its cells, and none of
    them with one of those events."""
    prepared = Runs(runs, pd.DataFrame())
    found = {}
    for claim in claims.claims:
        events = failure_outcomes(claim.rule)
        if not events:
            continue
        seen = runs_seen = 0
        for cell in cells_of(claim.rule):
            rows, _ = prepared.cell(cell)
            runs_seen += len(rows)
            seen += int(prepared.events(rows, events, events).sum()) if len(rows) else 0
        if seen == 0 and runs_seen:
            found[claim.id] = events
    return found


def describe(cell: Cell) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in cell.items())


class Runs:
    """The runs (one row per trial) and curves the claims read, prepared once for the many
    cell look-ups of one evaluation."""

    def __init__(self, runs: pd.DataFrame, curves: pd.DataFrame):
        self.frame = runs
        self.complete = is_full_budget(runs).to_numpy(dtype=bool)
        self.errored = (runs["status"] == "errored").to_numpy(dtype=bool) \
            if "status" in runs else np.zeros(len(runs), dtype=bool)
        self.seed = runs["seed"].to_numpy()
        self.outcome = runs["outcome"].to_numpy(dtype=object)
        self.final_per = (runs["final_val_per"].to_numpy(dtype=float)
                          if "final_val_per" in runs else np.full(len(runs), np.nan))
        self.trial_id = runs["trial_id"].to_numpy(dtype=object)
        # Latched flags (absent from older studies: unset).
        self.flags = {flag: np.nan_to_num(pd.to_numeric(runs[f"final_{flag}"], errors="coerce")
                                          .to_numpy(dtype=float), nan=0.0) > 0.5
                      for flag in FLAGS if f"final_{flag}" in runs}
        self._axes: dict[str, np.ndarray] = {}
        self._cells: dict[tuple, tuple[np.ndarray, str]] = {}
        self._curves = curves
        self._by_trial: dict | None = None

    def axis(self, name: str) -> np.ndarray | None:
        if name not in self._axes:
            if name not in self.frame:
                return None
            self._axes[name] = pd.to_numeric(self.frame[name], errors="coerce").to_numpy(
                dtype=float)
        return self._axes[name]

    def curve(self, trial_id) -> tuple[np.ndarray, np.ndarray] | None:
        """(steps, val_per) of a trial's evaluations, or None."""
        if self._by_trial is None:
            self._by_trial = {}
            if len(self._curves):
                ordered = self._curves.sort_values(["trial_id", "step"], kind="stable")
                ids = ordered["trial_id"].to_numpy(dtype=object)
                steps = ordered["step"].to_numpy(dtype=float)
                per = ordered["val_per"].to_numpy(dtype=float)
                starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
                for start, end in zip(starts, [*starts[1:], len(ids)]):
                    self._by_trial[ids[start]] = (steps[start:end], per[start:end])
        return self._by_trial.get(trial_id)

    def cell(self, cell: Cell, errored: bool = False) -> tuple[np.ndarray, str]:
        """Row indices of the complete runs at the cell (and, with `errored`, its errored
        runs), or a reason there are none."""
        key = (tuple(sorted(cell.items())), errored)
        if key not in self._cells:
            self._cells[key] = self._find(cell, self.complete | self.errored if errored
                                          else self.complete)
        return self._cells[key]

    def _find(self, cell: Cell, counted: np.ndarray) -> tuple[np.ndarray, str]:
        mask = np.ones(len(self.seed), dtype=bool)
        for axis, value in cell.items():
            values = self.axis(axis)
            if values is None:
                return np.zeros(0, dtype=int), f"{axis} is not an axis of this study"
            mask &= same_value(values, value)
        if not mask.any():
            return np.zeros(0, dtype=int), f"({describe(cell)}) is not in this study's design"
        rows = np.flatnonzero(mask & counted)
        if len(np.unique(self.seed[rows])) < len(rows):
            # The design never repeats (cell, seed): this cell pools several design points.
            return rows, (f"({describe(cell)}) matches several cells of the design; name a "
                          "value for every varied axis")
        return rows, ""

    def paired(self, cells: list[Cell], errored: bool = False
               ) -> tuple[list[np.ndarray], str]:
        """Row indices per cell, aligned on the seeds every cell has (in seed order). With
        `errored`, a cell's errored run of a seed counts as that seed's run (the planner
        never runs an errored (cell, seed) again, so each seed has at most one run)."""
        found = []
        for cell in cells:
            rows, problem = self.cell(cell, errored)
            if problem:
                return [], problem
            found.append(rows)
        common = np.sort(self.seed[found[0]])
        for rows in found[1:]:
            common = np.intersect1d(common, self.seed[rows])
        aligned = []
        for rows in found:
            by_seed = dict(zip(self.seed[rows].tolist(), rows.tolist()))
            aligned.append(np.array([by_seed[seed] for seed in common.tolist()], dtype=int))
        return aligned, ""

    def events(self, rows: np.ndarray, outcomes, flags=()) -> np.ndarray:
        """1 where the run's final outcome is in `outcomes` or a latched flag in `flags` is
        set (a flag without its column in the runs counts as unset)."""
        hit = np.isin(self.outcome[rows], list(outcomes))
        for flag in flags:
            if flag in self.flags:
                hit |= self.flags[flag][rows]
        return hit.astype(float)

    def event_bounds(self, rows: np.ndarray, outcomes, flags=()
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The events at `rows` with each errored run counted as no event (low) and as an
        event (high). A run that errored may have errored because it failed (missing not
        at random): a rule reads each end of an effect's interval from the worst case for
        that end (Manski's bounds), so errored runs can widen a verdict's interval but
        never move it."""
        hit = self.events(rows, outcomes, flags)
        lost = self.errored[rows]
        return np.where(lost, 0.0, hit), np.where(lost, 1.0, hit)
