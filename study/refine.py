"""Boundary refinement: the values a map's next wave adds near each column's boundary.

Pure functions of the runs so far (no Ray, no files), so the simulation
(study/boundary_sim.py) runs the very rule the map runs.

After the first wave (the design), every (column, seed) whose boundary bracket
(analysis.boundary.brackets: the failed and the fine value nearest each other) is wider
than the preset's tolerance gets one run, with that seed, at the bracket's geometric
midpoint sqrt(low x high): bisection in log lr. Each wave halves a bracket's log width, so
a bracket of a factor r is resolved after ceil(log2(log r / log tolerance)) waves (a grid
step of 3 within 1.25 after 3). A censored bracket (every value tried failed, or none
did) steps out by the preset's factor `expand`, never past its `limits` (no limits: it
stays censored). When a wave cannot hold every bracket, the widest go first. A (cell,
seed) already run, an errored trial included, is never run again, so the waves end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from analysis.boundary import brackets
from analysis.load import Block
from analysis.runs import point_in_cell
from analysis.record import BoundarySpec
from study.planner import Plan, cell_index

SIGNIFICANT_DIGITS = 3  # new values are rounded (1.73e-3, not 1.7320508e-3)


@dataclass(frozen=True)
class Proposal:
    """One new run: the along value for a (column, seed), and how wide its bracket is."""

    column: float
    seed: int
    value: float
    log_width: float  # log(high / low) of the bracket it splits; inf when censored


def rounded(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def next_value(low: float, high: float, tried: list[float], spec: BoundarySpec
               ) -> tuple[float | None, str]:
    """The value to try next in one column-seed's bracket (low, high], or None and why.
    0 and inf mark a censored end."""
    if low > 0 and math.isfinite(high):
        if high / low <= spec.tolerance:
            return None, "resolved"
        value = rounded(math.sqrt(low * high))
        if not low < value < high:  # rounding met an end: as fine as the values can say
            return None, "resolved"
        return value, ""
    if spec.limits is None:
        return None, "censored; the preset sets no limits to step out to"
    if low == 0:  # every value tried was on the boundary's upper side
        edge = min(tried)
        value = rounded(max(edge / spec.expand, spec.limits[0]))
        return (value, "") if value < edge else (None, "censored at the lower limit")
    edge = max(tried)
    value = rounded(min(edge * spec.expand, spec.limits[1]))
    return (value, "") if value > edge else (None, "censored at the upper limit")


def proposals(table: pd.DataFrame, spec: BoundarySpec) -> tuple[list[Proposal], list[str]]:
    """One proposal per unresolved bracket of `table` (analysis.boundary.brackets), widest
    first; and a line for each bracket that cannot be refined."""
    found, stuck = [], []
    for _, row in table.iterrows():
        value, why = next_value(row["low"], row["high"], row["tried"], spec)
        if value is not None:
            width = math.log(row["high"] / row["low"]) if row["ratio"] < math.inf else math.inf
            found.append(Proposal(float(row[spec.across]), int(row["seed"]), value, width))
        elif why != "resolved":
            stuck.append(f"{spec.across} {row[spec.across]:g} seed {int(row['seed'])}: {why}")
    found.sort(key=lambda p: (-p.log_width, p.column, p.seed))
    return found, stuck


def next_wave(spec: BoundarySpec, runs: pd.DataFrame, block: Block,
              points: list[dict[str, float]], done: set[tuple[int, int]], capacity: int
              ) -> tuple[Plan, list[dict[str, float]]]:
    """The trials of the next refinement wave (at most `capacity`) and the design points
    with any new ones appended (the trials' cell indices refer to it).

    `runs` are the study's runs so far (the block that varies spec.along and spec.across
    is taken from them); `done` holds every (cell, seed) already run or running.
    """
    table = brackets(runs[block.mask(runs)], spec)
    found, stuck = proposals(table, spec)
    points = list(points)
    chosen: list[tuple[int, int]] = []
    waiting = 0
    for proposal in found:
        point = _point(points, block, spec, proposal)
        cell = cell_index(points, point)
        if cell is not None and (cell, proposal.seed) in done:
            stuck.append(f"{spec.across} {proposal.column:g} seed {proposal.seed}: "
                         f"{spec.along} {proposal.value:g} was already run")
            continue
        if len(chosen) >= capacity:
            waiting += 1
            continue
        if cell is None:  # only points a trial of this wave uses join the design
            points.append(point)
            cell = len(points) - 1
        chosen.append((cell, proposal.seed))
    if not chosen and not waiting:
        if stuck:
            return Plan([], "nothing left to refine; not refinable: " + "; ".join(stuck)
                        ), points
        return Plan([], f"every {spec.across} column's boundary is bracketed within a "
                        f"factor {spec.tolerance:g}"), points
    if not chosen:
        return Plan([], f"the budget is spent ({waiting} bracket(s) still wider than a "
                        f"factor {spec.tolerance:g})"), points
    chosen.sort(key=lambda t: (t[1], t[0]))
    more = f", {waiting} left for later waves" if waiting else ""
    return Plan(chosen, f"boundary refinement: {len(chosen)} (column, seed) bracket(s) "
                        f"wider than a factor {spec.tolerance:g}{more}"), points


def _point(points: list[dict[str, float]], block: Block, spec: BoundarySpec,
           proposal: Proposal) -> dict[str, float]:
    """The design point at (column, value) in the block: a point of that column with the
    new value."""
    template = next(p for p in points if point_in_cell(
        p, {**block.fixed, spec.across: proposal.column}))
    return {**template, spec.along: proposal.value}


def _in_block(point: dict[str, float], block: Block) -> bool:
    return point_in_cell(point, block.fixed)
