"""Verdicts on stated claims. The claims and their decision rules are data
(configs/claims.yaml, schema below), fixed before any result is seen; this module only
applies them, and it is the one place that decides whether a claim is decided: the report
prints these verdicts and the main job's wave planner (study/planner.py) stops adding
runs to a claim when they say it is decided.

Design: replicate k of every cell trains with seed k (common random numbers: the same
initialisation, batch order and augmentation noise in every cell), so a claim is judged
on per-seed contrasts, and seeds, not runs, are the independent units. A seed counts for a
claim once every cell the claim compares has a full-budget run (finished, or diverged)
with it.

Every interval is a 95% anytime-valid confidence sequence (analysis.sequential: betting
CS of Waudby-Smith & Ramdas 2024), so verdicts may be read after every wave of added runs
without inflating their error: P(false SUPPORTED) <= alpha under "no effect", and
P(false REFUTED) <= alpha under the claimed effect, whatever the planner does.

Verdicts:
  supported     the CS excludes "no effect" on the claimed side
  refuted       the CS excludes the claimed effect size (`margin`, `max_rate`,
                `min_ratio`); checked first: a smaller effect than claimed refutes the claim
                as stated
  inconclusive  neither (the report says how many more seeds the trend would need)

Tests:
  rate_difference  per seed: 1[outcome in `outcomes`] at `cell` minus the same at
                   `reference` (in [-1, 1]); CS of the mean = the rate difference.
                   supported: excludes 0 in `direction`; refuted: excludes `margin`.
  rate_bound       per seed: 1[outcome in `outcomes`] at `cell`; CS of the rate.
                   supported: upper end < max_rate; refuted: lower end > max_rate.
  steps_ratio      per seed: steps the `cell` run needs to reach `threshold_factor` x the
                   final val PER of the `reference` run with the same seed, over the steps
                   the reference run needs (never reached: +inf). Seeds where either run
                   collapsed or diverged are skipped (no speed to compare). CS of the median
                   ratio by inverting sign tests (analysis.sequential.median_cs).
                   supported: median > 1 (slower); refuted: median < `min_ratio`.
  interaction      per moderator j and seed: [rate(base + change) - rate(base)] minus
                   [rate(base + moderator + change) - rate(base + moderator)] of the
                   `outcomes` indicator (in [-2, 2]); each moderator at alpha / J.
                   supported: any CS excludes 0; refuted: every CS excludes +-margin.
  any_of           `parts` at alpha / len(parts) each (Bonferroni).
                   supported: any part supported; refuted: every part refuted.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis import sequential
from analysis.load import FULL_BUDGET
from trainable.config import CONFIG_DIR
from trainable.contract import OUTCOMES
from trainable.errors import UserError, validation_line

DEFAULT_CLAIMS = CONFIG_DIR / "claims.yaml"
# Outcomes after which a run has no usable decoder (it sets no PER threshold).
NO_DECODER = ("blank_collapse", "diverged")
VERDICTS = ("supported", "refuted", "inconclusive")

Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]
Cell = dict[str, float]


# --------------------------------------------------------------------------- schema
class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateDifference(_Rule):
    test: Literal["rate_difference"]
    outcomes: list[Outcome] = Field(min_length=1)
    cell: Cell
    reference: Cell
    direction: Literal["increase", "decrease"]
    margin: float = Field(gt=0.0, le=1.0)


class RateBound(_Rule):
    test: Literal["rate_bound"]
    outcomes: list[Outcome] = Field(min_length=1)
    cell: Cell
    max_rate: float = Field(gt=0.0, lt=1.0)


class StepsRatio(_Rule):
    test: Literal["steps_ratio"]
    cell: Cell
    reference: Cell
    threshold_factor: float = Field(ge=1.0)
    min_ratio: float = Field(gt=1.0)


class Interaction(_Rule):
    test: Literal["interaction"]
    outcomes: list[Outcome] = Field(min_length=1)
    base: Cell
    change: Cell = Field(min_length=1)
    moderators: list[Cell] = Field(min_length=1)
    margin: float = Field(gt=0.0, le=2.0)


Simple = Annotated[RateDifference | RateBound | StepsRatio | Interaction,
                   Field(discriminator="test")]


class AnyOf(_Rule):
    test: Literal["any_of"]
    parts: list[Simple] = Field(min_length=2)


Rule = Annotated[RateDifference | RateBound | StepsRatio | Interaction | AnyOf,
                 Field(discriminator="test")]


class Claim(BaseModel):
    """A claim: id, text, optional alpha, and its rule's keys beside them in the YAML."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    text: str
    alpha: float | None = Field(None, gt=0.0, lt=0.5)
    rule: Rule

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data):
        if isinstance(data, dict) and "rule" not in data:
            own = {k: data[k] for k in ("id", "text", "alpha") if k in data}
            return {**own, "rule": {k: v for k, v in data.items() if k not in own}}
        return data


class RegimeTest(_Rule):
    """The lr/eps regime test (analysis.boundary.regime_test) as a preset's primary test."""

    test: Literal["regime"]


class Primary(Claim):
    """A preset's one pre-registered primary hypothesis: a claim-shaped rule (its axes are
    the cells' axes, its endpoint the outcomes, its contrast the test, its margin the
    refutation bound), or the regime test."""

    id: str = "primary"
    rule: Annotated[RateDifference | RateBound | StepsRatio | Interaction | AnyOf
                    | RegimeTest, Field(discriminator="test")]


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(sequential.ALPHA, gt=0.0, lt=0.5)


class ClaimsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: Defaults = Defaults()
    claims: list[Claim] = Field(min_length=1)
    path: str = ""
    sha256: str = ""

    @model_validator(mode="after")
    def _unique(self) -> ClaimsFile:
        ids = [c.id for c in self.claims]
        duplicate = next((i for i in ids if ids.count(i) > 1), None)
        if duplicate:
            raise ValueError(f"duplicate claim id {duplicate!r}")
        return self

    def alpha(self, claim: Claim) -> float:
        return claim.alpha if claim.alpha is not None else self.defaults.alpha

    def subset(self, ids: list[str]) -> ClaimsFile:
        return self.model_copy(update={"claims": [c for c in self.claims if c.id in ids]})


def primary_test(primary: dict | None) -> str | None:
    """The test of a primary hypothesis, as a preset writes it (`test: regime`) or as
    study.yaml records it (`rule: {test: regime}`)."""
    if not primary:
        return None
    rule = primary.get("rule")
    return primary.get("test") or (rule.get("test") if isinstance(rule, dict) else None)


def primary_claim(primary: dict | None) -> Claim | None:
    """A preset's claim-shaped primary hypothesis as a claim with id 'primary' (None for
    none, or for the regime test, which analysis.boundary.regime_test decides)."""
    if not primary or primary_test(primary) == "regime":
        return None
    parsed = Primary.model_validate(primary)
    return Claim(id=parsed.id, text=parsed.text, rule=parsed.rule)


def with_primary(claims: ClaimsFile | None, primary: dict | None) -> ClaimsFile | None:
    """The claims plus a claim-shaped primary hypothesis: everything the planner serves."""
    extra = primary_claim(primary)
    if extra is None:
        return claims
    if claims is None:
        return ClaimsFile(claims=[extra])
    return claims.model_copy(update={"claims": [*claims.claims, extra]})


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_claims_path(value, base: Path = CONFIG_DIR) -> Path | None:
    """study.yaml's `claims`: relative to the configs dir, absolute, or null."""
    if value in (None, "", False):
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def load_registered(path: str | Path, sha256: str) -> ClaimsFile:
    """The claims file a study registered. When the recorded path is gone (the study was
    copied or is read on another machine), the file of the same name in this checkout's
    configs/ is used if its content hash is the registered one."""
    path = Path(path)
    if not path.is_file():
        local = CONFIG_DIR / path.name
        if local.is_file() and content_hash(local.read_text()) == sha256:
            return load_claims(local)
    return load_claims(path)


def load_claims(path: str | Path) -> ClaimsFile:
    """Read and check a claims file; a mistake raises UserError naming claim and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: claims file not found; fix the preset's 'claims' or pass "
                        "--claims")
    text = path.read_text()
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"{path}: not valid YAML; fix the syntax") from None
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected a mapping with a 'claims' list")
    try:
        claims = ClaimsFile.model_validate(tree)
    except ValidationError as err:
        raise UserError(validation_line(err, str(path), _name_claim(tree))) from None
    return claims.model_copy(update={"path": str(path), "sha256": content_hash(text)})


def _name_claim(tree: dict):
    """Error locations say claim 'id' instead of claims.3.rule."""
    def rename(loc: tuple) -> tuple:
        if len(loc) >= 2 and loc[0] == "claims" and isinstance(loc[1], int):
            items = tree.get("claims") or []
            claim = items[loc[1]] if loc[1] < len(items) else None
            name = (f"claim {claim['id']!r}" if isinstance(claim, dict) and "id" in claim
                    else f"claims[{loc[1]}]")
            rest = tuple(p for p in loc[2:] if p != "rule")
            # A discriminated union adds the test's name to the location.
            rest = tuple(p for p in rest if p not in (
                "rate_difference", "rate_bound", "steps_ratio", "interaction", "any_of"))
            return (name, *rest)
        return loc
    return rename


# --------------------------------------------------------------------------- cells
def cells_of(rule) -> list[Cell]:
    """Every cell a rule compares (the cells the planner adds seeds to)."""
    if isinstance(rule, AnyOf):
        cells: list[Cell] = []
        for part in rule.parts:
            cells += [c for c in cells_of(part) if c not in cells]
        return cells
    if isinstance(rule, (RateDifference, StepsRatio)):
        return [rule.cell, rule.reference]
    if isinstance(rule, RateBound):
        return [rule.cell]
    cells = [rule.base, {**rule.base, **rule.change}]
    for moderator in rule.moderators:
        for cell in ({**rule.base, **moderator}, {**rule.base, **moderator, **rule.change}):
            if cell not in cells:
                cells.append(cell)
    return cells


def failure_outcomes(rule) -> list[str]:
    """The failure outcomes a rule counts (none for a step-ratio rule)."""
    if isinstance(rule, AnyOf):
        found: list[str] = []
        for part in rule.parts:
            found += [o for o in failure_outcomes(part) if o not in found]
        return found
    return [o for o in getattr(rule, "outcomes", []) if o != "stable"]


def unseen_failures(claims: ClaimsFile, runs: pd.DataFrame) -> dict[str, list[str]]:
    """Claims whose verdict rests on no failure being seen: claim id -> the failure outcomes
    it counts, for every claim with such outcomes, complete runs in its cells, and none of
    them ending in one of those outcomes."""
    prepared = Runs(runs, pd.DataFrame())
    found = {}
    for claim in claims.claims:
        outcomes = failure_outcomes(claim.rule)
        if not outcomes:
            continue
        seen = runs_seen = 0
        for cell in cells_of(claim.rule):
            rows, _ = prepared.cell(cell)
            runs_seen += len(rows)
            seen += int(prepared.indicator(rows, outcomes).sum()) if len(rows) else 0
        if seen == 0 and runs_seen:
            found[claim.id] = outcomes
    return found


def describe(cell: Cell) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in cell.items())


class Runs:
    """The runs (one row per trial) and curves the claims read, prepared once for the many
    cell look-ups of one evaluation."""

    def __init__(self, runs: pd.DataFrame, curves: pd.DataFrame):
        self.frame = runs
        self.complete = (runs["status"].isin(FULL_BUDGET) & runs["outcome"].notna()
                         ).to_numpy(dtype=bool)
        self.seed = runs["seed"].to_numpy()
        self.outcome = runs["outcome"].to_numpy(dtype=object)
        self.final_per = (runs["final_val_per"].to_numpy(dtype=float)
                          if "final_val_per" in runs else np.full(len(runs), np.nan))
        self.trial_id = runs["trial_id"].to_numpy(dtype=object)
        self._axes: dict[str, np.ndarray] = {}
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

    def cell(self, cell: Cell) -> tuple[np.ndarray, str]:
        """Row indices of the complete runs at the cell, or a reason there are none."""
        mask = np.ones(len(self.seed), dtype=bool)
        for axis, value in cell.items():
            values = self.axis(axis)
            if values is None:
                return np.zeros(0, dtype=int), f"{axis} is not an axis of this study"
            mask &= np.isclose(values, float(value), rtol=1e-6, atol=0.0)
        if not mask.any():
            return np.zeros(0, dtype=int), f"({describe(cell)}) is not in this study's design"
        rows = np.flatnonzero(mask & self.complete)
        if len(np.unique(self.seed[rows])) < len(rows):
            # The design never repeats (cell, seed): this cell pools several design points.
            return rows, (f"({describe(cell)}) matches several cells of the design; name a "
                          "value for every varied axis")
        return rows, ""

    def paired(self, cells: list[Cell]) -> tuple[list[np.ndarray], str]:
        """Row indices per cell, aligned on the seeds every cell has (in seed order)."""
        found = []
        for cell in cells:
            rows, problem = self.cell(cell)
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

    def indicator(self, rows: np.ndarray, outcomes) -> np.ndarray:
        return np.isin(self.outcome[rows], list(outcomes)).astype(float)


# --------------------------------------------------------------------------- results
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
    bound: float = math.nan  # the claimed effect size whose exclusion refutes
    # Projected further seeds to a verdict at the current trend (planning only).
    to_support: float = math.inf
    to_refute: float = math.inf

    @property
    def to_decide(self) -> float:
        return 0.0 if self.verdict != "inconclusive" else min(self.to_support,
                                                               self.to_refute)


def _decide(cs: sequential.Interval, support, refute) -> tuple[str, str]:
    """support/refute: (predicate on the CS, reason) pairs; refutation is checked first."""
    if refute[0](cs):
        return "refuted", refute[1]
    if support[0](cs):
        return "supported", support[1]
    return "inconclusive", "the interval contains both no effect and the claimed effect"


def rate_difference(rule: RateDifference, runs: Runs, alpha: float) -> Result:
    name = "/".join(rule.outcomes)
    result = Result(f"rate of {name}: ({describe(rule.cell)}) minus ({describe(rule.reference)}),"
                    " paired by seed")
    rows, problem = runs.paired([rule.cell, rule.reference])
    if problem:
        result.reason = problem
        return result
    hits, ref_hits = (runs.indicator(r, rule.outcomes) for r in rows)
    sign = 1.0 if rule.direction == "increase" else -1.0
    diff = sign * (hits - ref_hits)
    cs = sequential.mean_cs(diff, -1.0, 1.0, alpha, (0.0, rule.margin))
    result.verdict, result.reason = _decide(
        cs, (lambda c: c.excludes_below(0.0), f"the interval excludes 0 ({rule.direction})"),
        (lambda c: c.excludes_above(rule.margin),
         f"the interval excludes a {rule.direction} of {rule.margin:g}"))
    low, high = sorted((sign * cs.low, sign * cs.high))
    result.estimate, result.ci_low, result.ci_high, result.n = sign * cs.estimate, low, high, cs.n
    result.bound = sign * rule.margin
    x1, x2 = int(hits.sum()), int(ref_hits.sum())
    result.effect = (f"{result.estimate:+.2f} [{low:+.2f}, {high:+.2f}] "
                     f"({x1}/{cs.n} vs {x2}/{cs.n} seeds)")
    result.to_support = sequential.replicates_to_exclude(diff, -1.0, 1.0, 0.0, alpha)
    result.to_refute = sequential.replicates_to_exclude(diff, -1.0, 1.0, rule.margin, alpha)
    return result


def rate_bound(rule: RateBound, runs: Runs, alpha: float) -> Result:
    name = "/".join(rule.outcomes)
    result = Result(f"rate of {name} at ({describe(rule.cell)}) below {rule.max_rate:g}")
    rows, problem = runs.paired([rule.cell])
    if problem:
        result.reason = problem
        return result
    x = runs.indicator(rows[0], rule.outcomes)
    cs = sequential.mean_cs(x, 0.0, 1.0, alpha, (rule.max_rate,))
    result.verdict, result.reason = _decide(
        cs, (lambda c: c.excludes_above(rule.max_rate), f"upper end below {rule.max_rate:g}"),
        (lambda c: c.excludes_below(rule.max_rate), f"lower end above {rule.max_rate:g}"))
    result.estimate, result.ci_low, result.ci_high, result.n = cs.estimate, cs.low, cs.high, cs.n
    result.null = result.bound = rule.max_rate
    result.effect = (f"{cs.estimate:.2f} [{cs.low:.2f}, {cs.high:.2f}] "
                     f"({int(x.sum())}/{cs.n} seeds)")
    result.to_support = sequential.replicates_to_exclude(x, 0.0, 1.0, rule.max_rate, alpha)
    result.to_refute = result.to_support if x.mean() > rule.max_rate else math.inf
    if result.verdict == "inconclusive" and x.sum() == 0:
        needed = next(n for n in range(cs.n, 1000) if sequential.mean_cs(
            np.zeros(n), 0.0, 1.0, alpha, (rule.max_rate,)).excludes_above(rule.max_rate))
        result.reason += f" (with no failures, {needed} seeds would decide it)"
    return result


def steps_to_reach(curve: tuple[np.ndarray, np.ndarray], threshold: float) -> float:
    """First evaluated step with val_per <= threshold; +inf if never."""
    steps, per = curve
    reached = steps[per <= threshold]
    return float(reached.min()) if len(reached) else math.inf


def paired_step_ratios(rule: StepsRatio, runs: Runs, cell: np.ndarray, ref: np.ndarray
                       ) -> tuple[np.ndarray, int]:
    """Per seed: cell steps / reference steps to the reference run's threshold."""
    ratios, skipped = [], 0
    for cell_row, ref_row in zip(cell, ref):
        ref_curve = runs.curve(runs.trial_id[ref_row])
        cell_curve = runs.curve(runs.trial_id[cell_row])
        # A seed where either run collapsed or diverged has no speed to compare (the
        # collapse part of a claim judges collapse); skipping only the reference's
        # failures would count the cell's as "infinitely slow" and bias toward slower.
        if (runs.outcome[ref_row] in NO_DECODER or runs.outcome[cell_row] in NO_DECODER
                or ref_curve is None or cell_curve is None
                or not np.isfinite(runs.final_per[ref_row])):
            skipped += 1
            continue
        threshold = rule.threshold_factor * float(runs.final_per[ref_row])
        ratios.append(steps_to_reach(cell_curve, threshold)
                      / steps_to_reach(ref_curve, threshold))
    return np.asarray(ratios, dtype=float), skipped


def ratio_text(value: float) -> str:
    """A ratio of steps for the one-line summary: 'never' where the cell's runs never reach
    the threshold (+inf), and at least 0 (an interval end below 0, or -inf where too few
    seeds bound it, says no more than 0 about a ratio of positive step counts)."""
    return "never" if value == np.inf else f"x{max(value, 0.0):.2f}"


def steps_ratio(rule: StepsRatio, runs: Runs, alpha: float) -> Result:
    result = Result(f"median over seeds of steps to {rule.threshold_factor:g}x the reference "
                    f"run's final PER: ({describe(rule.cell)}) / ({describe(rule.reference)})")
    rows, problem = runs.paired([rule.cell, rule.reference])
    if problem:
        result.reason = problem
        return result
    ratios, skipped = paired_step_ratios(rule, runs, *rows)
    cs = sequential.median_cs(ratios, alpha, (1.0, rule.min_ratio))
    result.verdict, result.reason = _decide(
        cs, (lambda c: c.excludes_below(1.0), "the interval excludes 1 (slower)"),
        (lambda c: c.excludes_above(rule.min_ratio),
         f"the interval excludes a ratio of {rule.min_ratio:g}"))
    if skipped:
        result.reason += f"; {skipped} seed(s) skipped: a run collapsed or diverged"
    result.estimate, result.ci_low, result.ci_high, result.n = cs.estimate, cs.low, cs.high, cs.n
    result.null, result.bound = 1.0, rule.min_ratio
    never = int(np.isinf(ratios).sum())
    result.effect = (f"{ratio_text(cs.estimate)} [{ratio_text(cs.low)}, "
                     f"{ratio_text(cs.high)}] ({never}/{cs.n} seeds never reached the "
                     "threshold)" if cs.n else "")
    # Sign tests behind the two decisions: P(ratio > 1) > 1/2, P(ratio < min_ratio) > 1/2.
    result.to_support = sequential.replicates_to_exclude(ratios > 1.0, 0.0, 1.0, 0.5, alpha)
    result.to_refute = sequential.replicates_to_exclude(ratios < rule.min_ratio, 0.0, 1.0,
                                                        0.5, alpha)
    return result


def interaction(rule: Interaction, runs: Runs, alpha: float) -> Result:
    changed = {**rule.base, **rule.change}
    result = Result(f"difference of differences in the rate of {'/'.join(rule.outcomes)}: "
                    f"effect of ({describe(rule.change)}) at ({describe(rule.base)}) minus "
                    f"with {' / '.join(describe(m) for m in rule.moderators)}, paired by seed")
    share = alpha / len(rule.moderators)
    parts = []
    for moderator in rule.moderators:
        cells = [rule.base, changed, {**rule.base, **moderator},
                 {**changed, **moderator}]
        rows, problem = runs.paired(cells)
        if problem:
            result.reason = problem
            return result
        a, b, c, d = (runs.indicator(r, rule.outcomes) for r in rows)
        did = (b - a) - (d - c)
        cs = sequential.mean_cs(did, -2.0, 2.0, share, (0.0, -rule.margin, rule.margin))
        parts.append((moderator, did, cs))
    supported = [p for p in parts if p[2].excludes_below(0.0) or p[2].excludes_above(0.0)]
    refuted = all(p[2].excludes_above(rule.margin) and p[2].excludes_below(-rule.margin)
                  for p in parts)
    if refuted:
        result.verdict = "refuted"
        result.reason = f"every interval lies within +-{rule.margin:g}"
    elif supported:
        result.verdict = "supported"
        result.reason = ("the interval excludes 0 with "
                         + ", ".join(describe(p[0]) for p in supported))
    else:
        result.reason = "an interval contains both 0 and the claimed size"
    if len(parts) > 1:
        result.reason += f" (alpha/{len(parts)} each)"
    # The headline is the largest interaction found.
    moderator, did, cs = max(parts, key=lambda p: abs(p[2].estimate) if p[2].n else -1)
    result.estimate, result.ci_low, result.ci_high = cs.estimate, cs.low, cs.high
    result.bound = rule.margin if cs.estimate >= 0 else -rule.margin
    result.n = min(p[2].n for p in parts)
    result.effect = "; ".join(f"{describe(m)}: {c.estimate:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"
                              f" (n={c.n})" for m, _, c in parts)
    result.to_support = min(sequential.replicates_to_exclude(d, -2.0, 2.0, 0.0, share)
                            for _, d, _ in parts)
    result.to_refute = max(max(sequential.replicates_to_exclude(d, -2.0, 2.0, rule.margin,
                                                                share),
                               sequential.replicates_to_exclude(d, -2.0, 2.0, -rule.margin,
                                                                share))
                           for _, d, _ in parts)
    return result


def any_of(rule: AnyOf, runs: Runs, alpha: float) -> Result:
    results = [evaluate_rule(part, runs, alpha / len(rule.parts))
               for part in rule.parts]
    verdicts = [r.verdict for r in results]
    verdict = ("supported" if "supported" in verdicts else
               "refuted" if all(v == "refuted" for v in verdicts) else "inconclusive")
    lead = next((r for r in results if r.verdict == verdict), results[0])
    return Result(
        test=f"any of ({len(results)} parts at alpha/{len(results)}): "
             + " | ".join(r.test for r in results),
        verdict=verdict,
        reason=" | ".join(f"{r.verdict}: {r.reason}" for r in results),
        effect=" | ".join(r.effect or "-" for r in results),
        estimate=lead.estimate, ci_low=lead.ci_low, ci_high=lead.ci_high,
        n=min(r.n for r in results), null=lead.null, bound=lead.bound,
        to_support=min(r.to_support for r in results),
        to_refute=max(r.to_refute for r in results))


TESTS = {RateDifference: rate_difference, RateBound: rate_bound, StepsRatio: steps_ratio,
         Interaction: interaction, AnyOf: any_of}


def evaluate_rule(rule, runs: Runs, alpha: float) -> Result:
    return TESTS[type(rule)](rule, runs, alpha)


COLUMNS = ["id", "claim", "test", "effect", "estimate", "ci_low", "ci_high", "null", "bound",
           "n", "verdict", "reason", "to_decide"]


def evaluate_claims(claims: ClaimsFile, runs: pd.DataFrame, curves: pd.DataFrame
                    ) -> pd.DataFrame:
    """One row per claim: test, effect with its 95% CS, seeds, verdict, reason, and the
    projected further seeds to a verdict (`to_decide`, 0 once decided)."""
    rows = []
    prepared = Runs(runs, curves)
    for claim in claims.claims:
        result = evaluate_rule(claim.rule, prepared, claims.alpha(claim))
        rows.append({"id": claim.id, "claim": " ".join(claim.text.split()),
                     "test": result.test, "effect": result.effect,
                     "estimate": result.estimate, "ci_low": result.ci_low,
                     "ci_high": result.ci_high, "null": result.null,
                     "bound": result.bound, "n": result.n,
                     "verdict": result.verdict,
                     "reason": result.reason, "to_decide": result.to_decide})
    return pd.DataFrame(rows, columns=COLUMNS)


# --------------------------------------------------------------------------- over training
def runs_at_step(runs: pd.DataFrame, curves: pd.DataFrame, fraction: float
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs as if each had stopped at `fraction` of its budget: outcome, final PER and
    curve are those of its last evaluation at or before that step."""
    if curves.empty:
        return runs.iloc[0:0], curves
    budget = curves["trial_id"].map(runs.set_index("trial_id")["budget_steps"])
    cut = curves[curves["step"] <= fraction * budget + 1e-9]
    last = cut.sort_values("step").groupby("trial_id").tail(1).set_index("trial_id")
    complete = runs[runs["status"].isin(FULL_BUDGET) & runs["outcome"].notna()
                    ].set_index("trial_id")
    keep = complete.index.intersection(last.index)
    at = complete.loc[keep].copy()
    at["outcome"] = last.loc[keep, "outcome"]
    at["final_val_per"] = last.loc[keep, "val_per"]
    return at.reset_index(), cut[cut["trial_id"].isin(keep)]


def claims_over_training(claims: ClaimsFile, runs: pd.DataFrame, curves: pd.DataFrame,
                         fractions) -> pd.DataFrame:
    """Each claim's effect and verdict had every run stopped at each fraction of its
    budget: one row per (claim, fraction)."""
    rows = []
    for fraction in fractions:
        at, cut = runs_at_step(runs, curves, fraction)
        if at.empty:
            continue
        table = evaluate_claims(claims, at, cut)
        rows.append(table.assign(fraction=float(fraction)))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=[*COLUMNS, "fraction"])


SETTLE_FROM = 0.75  # "the last part of training": the final quarter of the budget


def settled(trajectory: pd.DataFrame, claim_id: str) -> tuple[bool, str]:
    """Not settled when, over the last quarter of training, the claim's verdict changed or
    its effect changed sign."""
    rows = trajectory[(trajectory["id"] == claim_id)
                      & (trajectory["fraction"] >= SETTLE_FROM - 1e-9)]
    if len(rows) < 2:
        return True, "too few evaluations to judge"
    verdicts = rows["verdict"].unique()
    signs = {int(np.sign(e - null)) for e, null in zip(rows["estimate"], rows["null"])
             if np.isfinite(e) and e != null}
    if len(verdicts) > 1:
        return False, ("the verdict changed over the last quarter of training ("
                       + " -> ".join(rows.sort_values("fraction")["verdict"]) + ")")
    if len(signs) > 1:
        return False, "the effect changed sign over the last quarter of training"
    return True, ""
