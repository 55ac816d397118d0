"""The five tests of a single rule: each computes its per-seed effect, the effect's
confidence sequence and the verdict (see the package docstring for each test's effect)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.claims.cells import Runs, describe
from analysis.claims.evidence import (FINAL, Evidence, claimed_size, judge, reason_for,
                                      seeds_to_decide)
from analysis.claims.schema import (Interaction, PerDifference, RateBound, RateDifference,
                                    StepsRatio)
from analysis.stats import sequential


# Outcomes after which a run has no usable decoder (it sets no PER threshold).
NO_DECODER = ("blank_collapse", "diverged")


@dataclass
class Result:
    test: str
    verdict: str = "inconclusive"
    reason: str = ""
    effect: str = ""
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0  # seeds (replicates) the verdict rests on
    null: float = 0.0  # the "no effect" value of the estimate
    bound: float = math.nan  # the claimed size (its exclusion refutes)
    direction: str = "increase"
    # The reason is reason_for's reading of the interval (plus `note`), so a composite can
    # word it again from its combined evidence; False for rules with their own words.
    generic: bool = False
    note: str = ""  # what the reading leaves out (seeds skipped)
    evidence: Evidence = field(default_factory=Evidence)
    # Projected further seeds to a final verdict at the current trend (planning only).
    to_decide: float = math.inf
    # The trend points past the claimed size (the claim would end supported).
    leans_supported: bool = False

    def settle(self, cs: sequential.Interval, evidence: Evidence, null: float, size: float,
               direction: str, unit: str = "") -> None:
        self.evidence, self.verdict = evidence, evidence.verdict
        self.reason = reason_for(evidence, cs, null, size, direction, unit)
        self.generic = True
        self.estimate, self.ci_low, self.ci_high, self.n = cs.estimate, cs.low, cs.high, cs.n
        self.null, self.bound, self.direction = null, size, direction
        centre = cs.estimate
        self.leans_supported = bool(cs.n) and (
            centre > size if direction == "increase" else centre < size
            if direction == "decrease" else abs(centre - null) > abs(size - null))
        if self.verdict in FINAL:
            self.to_decide = 0.0


def _errored_note(runs: Runs, rows: list[np.ndarray]) -> str:
    lost = sum(int(runs.errored[r].sum()) for r in rows)
    return (f"; {lost} errored run(s) counted both as failing and as not (worst-case "
            "bounds)" if lost else "")


def rate_difference(rule: RateDifference, runs: Runs, alpha: float) -> Result:
    name = "/".join([*rule.outcomes, *(f"{f} flag" for f in rule.flags)])
    result = Result(f"rate of {name}: ({describe(rule.cell)}) minus ({describe(rule.reference)}),"
                    " paired by seed")
    rows, problem = runs.paired([rule.cell, rule.reference], errored=True)
    if problem:
        result.reason = problem
        return result
    (hits, hits_high), (ref_hits, ref_high) = (runs.event_bounds(r, rule.outcomes, rule.flags)
                                               for r in rows)
    # the difference at its lowest (errored runs: none in the cell, all in the reference)
    # and at its highest
    lowest, highest = hits - ref_high, hits_high - ref_hits
    size = claimed_size(0.0, rule.margin, rule.direction)
    points = (0.0, size, -size)
    cs = sequential.mean_cs_bounded(lowest, highest, -1.0, 1.0, alpha, points)
    result.settle(cs, judge(cs, 0.0, size, rule.direction), 0.0, size, rule.direction)
    result.note = _errored_note(runs, rows)
    result.reason += result.note
    x1, x2 = int(hits.sum()), int(ref_hits.sum())
    result.effect = (f"{cs.estimate:+.2f} [{cs.low:+.2f}, {cs.high:+.2f}] "
                     f"({x1}/{cs.n} vs {x2}/{cs.n} seeds)")
    diff = (lowest + highest) / 2.0
    if result.verdict not in FINAL:
        result.to_decide = seeds_to_decide(diff, -1.0, 1.0, 0.0, size, rule.direction, alpha)
    return result


def per_difference(rule: PerDifference, runs: Runs, alpha: float) -> Result:
    result = Result(f"final val PER (median): ({describe(rule.cell)}) minus "
                    f"({describe(rule.reference)}), paired by seed")
    rows, problem = runs.paired([rule.cell, rule.reference])
    if problem:
        result.reason = problem
        return result
    diff = runs.final_per[rows[0]] - runs.final_per[rows[1]]
    skipped = int((~np.isfinite(diff)).sum())
    diff = diff[np.isfinite(diff)]
    size = claimed_size(0.0, rule.margin, rule.direction)
    cs = sequential.median_cs(diff, alpha, (0.0, size, -size))
    result.settle(cs, judge(cs, 0.0, size, rule.direction), 0.0, size, rule.direction)
    if skipped:
        result.note = f"; {skipped} seed(s) without a final PER skipped"
        result.reason += result.note
    result.effect = f"{cs.estimate:+.3f} [{cs.low:+.3f}, {cs.high:+.3f}] (n={cs.n})"
    if result.verdict not in FINAL:
        result.to_decide = seeds_to_decide(diff, -1.0, 1.0, 0.0, size, rule.direction, alpha,
                                           median=True)
    return result


def rate_bound(rule: RateBound, runs: Runs, alpha: float) -> Result:
    name = "/".join([*rule.outcomes, *(f"{f} flag" for f in rule.flags)])
    result = Result(f"rate of {name} at ({describe(rule.cell)}) below {rule.max_rate:g}")
    rows, problem = runs.paired([rule.cell], errored=True)
    if problem:
        result.reason = problem
        return result
    seen, x = runs.event_bounds(rows[0], rule.outcomes, rule.flags)  # x: errored = failed
    cs = sequential.mean_cs_bounded(seen, x, 0.0, 1.0, alpha, (rule.max_rate,))
    # Two regions: the rate is shown below the bound, or above it (no "smaller" effect).
    evidence = Evidence(size_shown=cs.n > 0 and cs.high < rule.max_rate,
                        size_excluded=cs.n > 0 and cs.low > rule.max_rate)
    result.settle(cs, evidence, rule.max_rate, rule.max_rate, "decrease")
    result.reason = (reason_for(evidence, cs, rule.max_rate, rule.max_rate, "decrease")
                     if cs.n == 0 or cs.empty else
                     f"upper end below {rule.max_rate:g}" if evidence.size_shown else
                     f"lower end above {rule.max_rate:g}" if evidence.size_excluded else
                     f"the interval contains {rule.max_rate:g}")
    result.generic = False
    result.note = _errored_note(runs, rows)
    result.reason += result.note
    result.effect = (f"{cs.estimate:.2f} [{cs.low:.2f}, {cs.high:.2f}] "
                     f"({int(seen.sum())}/{cs.n} seeds)")
    if result.verdict not in FINAL:
        result.to_decide = sequential.replicates_to_exclude(x, 0.0, 1.0, rule.max_rate, alpha)
        if x.sum() == 0:
            needed = next((n for n in range(max(cs.n, 1), 1000) if sequential.mean_cs(
                np.zeros(n), 0.0, 1.0, alpha, (rule.max_rate,)).excludes_above(
                    rule.max_rate)), None)
            result.reason += (f" (with no failures, {needed} seeds would decide it)"
                              if needed else " (with no failures, over 1000 seeds would "
                              "decide it)")
    return result


def steps_to_reach(curve: tuple[np.ndarray, np.ndarray], threshold: float) -> float:
    """First evaluated step with val_per <= threshold; +inf if never."""
    steps, per = curve
    reached = steps[per <= threshold]
    return float(reached.min()) if len(reached) else math.inf


def paired_step_ratios(rule: StepsRatio, runs: Runs, cell: np.ndarray, ref: np.ndarray
                       ) -> tuple[np.ndarray, int]:
    """Per seed: cell steps / reference steps to `threshold_factor` x the better of the two
    runs' final PER (never reached: +inf steps)."""
    ratios, skipped = [], 0
    for cell_row, ref_row in zip(cell, ref):
        ref_curve = runs.curve(runs.trial_id[ref_row])
        cell_curve = runs.curve(runs.trial_id[cell_row])
        finals = runs.final_per[[cell_row, ref_row]]
        # A seed where either run collapsed or diverged has no speed to compare (the
        # collapse part of a claim judges collapse).
        if (runs.outcome[ref_row] in NO_DECODER or runs.outcome[cell_row] in NO_DECODER
                or ref_curve is None or cell_curve is None
                or not np.isfinite(finals).all()):
            skipped += 1
            continue
        # The better run's final PER sets the bar, for both cells alike: a cell run that
        # never reaches it is infinitely slower (+inf), a reference run that never reaches
        # it makes the cell infinitely faster (0), so two identical cells give a median
        # ratio of 1. (With the reference's own PER only the first could happen, a bias
        # toward "slower"; with the worse run's PER a run stuck near its initial PER sets
        # a bar both runs meet at the first evaluation, and the slowest runs would count
        # as equally fast.)
        threshold = rule.threshold_factor * float(finals.min())
        ratios.append(steps_to_reach(cell_curve, threshold)
                      / steps_to_reach(ref_curve, threshold))
    return np.asarray(ratios, dtype=float), skipped


def ratio_text(value: float) -> str:
    """A ratio of steps for the one-line summary: 'never' where the cell's runs never reach
    the threshold (+inf), and at least 0 (an interval end below 0, or -inf where too few
    seeds bound it, says no more than 0 about a ratio of positive step counts)."""
    return "never" if value == np.inf else f"x{max(value, 0.0):.2f}"


def steps_ratio(rule: StepsRatio, runs: Runs, alpha: float) -> Result:
    result = Result(f"median over seeds of steps to {rule.threshold_factor:g}x the better "
                    f"final PER of the pair: ({describe(rule.cell)}) / "
                    f"({describe(rule.reference)})")
    rows, problem = runs.paired([rule.cell, rule.reference])
    if problem:
        result.reason = problem
        return result
    ratios, skipped = paired_step_ratios(rule, runs, *rows)
    cs = sequential.median_cs(ratios, alpha, (1.0, rule.min_ratio))
    result.settle(cs, judge(cs, 1.0, rule.min_ratio, "increase"), 1.0, rule.min_ratio,
                  "increase", "x")
    if skipped:
        result.note = f"; {skipped} seed(s) skipped: a run collapsed or diverged"
        result.reason += result.note
    never = int(np.isinf(ratios).sum())
    result.effect = (f"{ratio_text(cs.estimate)} [{ratio_text(cs.low)}, "
                     f"{ratio_text(cs.high)}] ({cs.n} seeds"
                     + (f", {never} never reached the threshold" if never else "") + ")"
                     if cs.n else "")
    if result.verdict not in FINAL:
        result.to_decide = seeds_to_decide(ratios, 0.0, 0.0, 1.0, rule.min_ratio, "increase",
                                           alpha, median=True)
    return result


def interaction(rule: Interaction, runs: Runs, alpha: float) -> Result:
    changed = {**rule.base, **rule.change}
    per = rule.endpoint == "final_per"
    what = ("final val PER (median)" if per else
            "rate of " + "/".join([*rule.outcomes, *(f"{f} flag" for f in rule.flags)]))
    result = Result(f"difference of differences in {what}: effect of "
                    f"({describe(rule.change)}) at ({describe(rule.base)}) minus with "
                    f"({describe(rule.moderator)}), paired by seed")
    rows, problem = runs.paired([rule.base, changed, {**rule.base, **rule.moderator},
                                 {**changed, **rule.moderator}], errored=not per)
    if problem:
        result.reason = problem
        return result
    size = claimed_size(0.0, rule.margin, rule.direction)
    points = (0.0, size, -size)
    if per:
        a, b, c, d = (runs.final_per[r] for r in rows)
        did = (b - a) - (d - c)
        skipped = int((~np.isfinite(did)).sum())
        did = did[np.isfinite(did)]
        cs = sequential.median_cs(did, alpha, points)
    else:
        a, b, c, d = (runs.event_bounds(r, rule.outcomes, rule.flags) for r in rows)
        # each end from its worst case: errored runs on the side that lowers (raises) it
        lowest = (b[0] - a[1]) - (d[1] - c[0])
        highest = (b[1] - a[0]) - (d[0] - c[1])
        did, skipped = (lowest + highest) / 2.0, 0
        cs = sequential.mean_cs_bounded(lowest, highest, -2.0, 2.0, alpha, points)
    result.settle(cs, judge(cs, 0.0, size, rule.direction), 0.0, size, rule.direction)
    if skipped:
        result.note = f"; {skipped} seed(s) without a final PER skipped"
    elif not per:
        result.note = _errored_note(runs, rows)
    result.reason += result.note
    result.effect = (f"{describe(rule.moderator)}: {cs.estimate:+.3f} [{cs.low:+.3f}, "
                     f"{cs.high:+.3f}] (n={cs.n})" if per else
                     f"{describe(rule.moderator)}: {cs.estimate:+.2f} [{cs.low:+.2f}, "
                     f"{cs.high:+.2f}] (n={cs.n})")
    if result.verdict not in FINAL:
        result.to_decide = seeds_to_decide(did, -2.0, 2.0, 0.0, size, rule.direction, alpha,
                                           median=per)
    return result
