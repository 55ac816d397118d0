"""Claim-directed adaptive replication: which runs the next wave adds, and when to stop.

Pure functions of the runs so far (no Ray, no files), so the simulation benchmark
(benchmarks/sim_adaptive.py) runs the very procedure the main job runs.

Wave 1 is the design itself (every cell x the preset's seeds). After each wave the
claims are evaluated by analysis.claims, the one place that decides whether a claim is
decided, and every undecided claim whose cells are in the design asks for more seeds for
exactly those cells: seed k is added to all of a claim's cells together, because claims
are judged on per-seed contrasts. Claims that are cheapest to decide at their current
trend (the runs of their cells still missing at the projected number of seeds) are served
first, so a limited time budget decides as many claims as it can. The verdicts' error
control does not depend on any of these choices: their confidence sequences are valid at
every sample size (see analysis.sequential), which is what makes looking after each wave
legitimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import claims as claims_mod
from analysis.runs import point_in_cell

DEFAULT_STEP = 4  # seeds per claim per wave when no trend is known yet
MAX_STEP = 8  # at most this many seeds per claim per wave, so the trend is re-read often
# A projection past this many seeds is costed as this many (a trend near zero projects
# millions; the order of service is all the cost decides).
MAX_PROJECTED = 1000


@dataclass(frozen=True)
class Plan:
    trials: list[tuple[int, int]]  # (cell index, seed)
    reason: str  # why these trials, or why none


def cell_index(points: list[dict[str, float]], cell: dict[str, float]) -> int | None:
    """The one design point a claim's cell names (None if none or several match)."""
    matches = [i for i, point in enumerate(points) if point_in_cell(point, cell)]
    return matches[0] if len(matches) == 1 else None


def after_wave(claims: claims_mod.ClaimsFile, runs: pd.DataFrame, curves: pd.DataFrame,
               points: list[dict[str, float]], done: set[tuple[int, int]], capacity: int
               ) -> tuple[pd.DataFrame, Plan]:
    """One look: the verdicts on the runs so far, and the next wave they call for. The
    main job (study.run) and the simulation (study.simulate) both go through here."""
    verdicts = claims_mod.evaluate_claims(claims, runs, curves)
    return verdicts, next_wave(claims, verdicts, points, done, capacity)


def first_wave(n_points: int, seeds: int) -> Plan:
    return Plan([(c, s) for s in range(seeds) for c in range(n_points)],
                f"the design: {n_points} cells x {seeds} seed(s)")


def next_wave(claims: claims_mod.ClaimsFile, verdicts: pd.DataFrame,
              points: list[dict[str, float]], done: set[tuple[int, int]],
              capacity: int) -> Plan:
    """The trials to add next (at most `capacity`), or none and why.

    `verdicts` is analysis.claims.evaluate_claims on the runs so far; `done` holds every
    (cell, seed) already run or running (never repeated).
    """
    rows = verdicts.set_index("id")
    wanted = []
    unplannable = []
    for order, claim in enumerate(claims.claims):
        row = rows.loc[claim.id]
        if row["verdict"] != "inconclusive":
            continue
        cells = [cell_index(points, c) for c in claims_mod.cells_of(claim.rule)]
        if any(c is None for c in cells):
            unplannable.append(claim.id)
            continue
        to_decide = float(row["to_decide"])
        step = DEFAULT_STEP if not np.isfinite(to_decide) else int(
            min(max(to_decide, 1), MAX_STEP))
        new = missing_runs(cells, done, step)
        # Cheapest first: the runs still needed at the current trend, counting only the
        # (cell, seed) pairs not run yet (claims share cells: a claim whose other cells
        # already hold the seeds costs only its missing ones); unknown trends last.
        cost = (len(missing_runs(cells, done, min(math.ceil(to_decide), MAX_PROJECTED)))
                if np.isfinite(to_decide) else math.inf)
        wanted.append((cost, order, claim.id, new))
    if not wanted:
        if unplannable:
            return Plan([], "no undecided claim can be served: "
                            f"{', '.join(unplannable)} compare(s) cells outside the design")
        return Plan([], "every claim is decided")
    if capacity <= 0:
        return Plan([], "the budget is spent")
    chosen: list[tuple[int, int]] = []
    served = []
    for _, _, claim_id, new in sorted(wanted):
        extra = [t for t in new if t not in chosen]
        if not extra:
            continue
        room = capacity - len(chosen)
        if room <= 0:
            break
        if len(extra) > room:
            # Partial service only in whole seeds: a seed counts once all cells have it.
            extra = _whole_seeds(extra, room)
            if not extra:
                continue
        chosen += extra
        served.append(f"{claim_id} (+{len({s for _, s in extra})} seed(s))")
    if not chosen:
        return Plan([], "the budget left is too small for one more seed of any "
                        "undecided claim")
    # Seeds in increasing order, so a wave cut short leaves whole low seeds behind.
    chosen.sort(key=lambda t: (t[1], t[0]))
    return Plan(chosen, "for " + ", ".join(served))


def missing_runs(cells: list[int], done: set[tuple[int, int]], seeds: int
                 ) -> list[tuple[int, int]]:
    """The runs that give a claim `seeds` more seeds: the lowest seeds that some of its
    cells have not run, with the cells that lack them. A seed every cell has run but that
    does not count (a run errored) is never run again; the next seed is used instead."""
    runs: list[tuple[int, int]] = []
    seed = taken = 0
    while taken < seeds:
        lacking = [(c, seed) for c in cells if (c, seed) not in done]
        if lacking:
            runs += lacking
            taken += 1
        seed += 1
    return runs


def _whole_seeds(trials: list[tuple[int, int]], room: int) -> list[tuple[int, int]]:
    by_seed: dict[int, list[tuple[int, int]]] = {}
    for t in trials:
        by_seed.setdefault(t[1], []).append(t)
    kept: list[tuple[int, int]] = []
    for seed in sorted(by_seed):
        if len(kept) + len(by_seed[seed]) > room:
            break
        kept += by_seed[seed]
    return kept


def capacity(minutes_left: float | None, trials_left: int | None, trial_minutes: float,
             concurrency: int, wave_overhead_minutes: float, wave_trials: int) -> int:
    """How many trials the next wave may hold: what fits in the time and trial budgets
    (whole rounds of `concurrency` trials of `trial_minutes` each), at most `wave_trials`."""
    room = wave_trials
    if trials_left is not None:
        room = min(room, trials_left)
    if minutes_left is not None:
        rounds = math.floor((minutes_left - wave_overhead_minutes) / max(trial_minutes, 1e-9))
        room = min(room, max(rounds, 0) * concurrency)
    return max(room, 0)
