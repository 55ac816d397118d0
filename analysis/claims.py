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

Every interval is a 95% anytime-valid confidence sequence (analysis.stats.sequential: betting
CS of Waudby-Smith & Ramdas 2024, or the median CS by inverted sign tests), so verdicts
may be read after every wave of added runs without inflating their error. The CS is
hedged between an upper and a lower bettor, each a test martingale at alpha/2, so every
one-sided statement below is wrong with probability at most alpha/2, whatever the
planner does. Error control is per claim: six claims at alpha = 0.05 each are not a
family-wise 5%.

A claim names an effect (a rate difference, a difference of differences, a median steps
ratio, a rate), a "no effect" value (`null`) and the size it claims (`margin` away from
the null, `min_ratio`, `max_rate`). Verdicts are four regions that no single truth can
both reach (the CS covers the truth at every sample size with probability 1 - alpha):
  supported             the CS lies beyond the claimed size: an effect at least as large
                        as claimed (lower end above `null + margin`)
  smaller_than_claimed  the CS excludes the claimed size and excludes no effect: an effect
                        exists but is smaller than claimed
  refuted               the CS excludes the claimed size and contains no effect (or the
                        opposite effect): no effect of the claimed size, and none shown
  inconclusive          the CS contains the claimed size (the report says how many more
                        seeds the trend would need, and whether an effect is shown)
The first three are final: the planner stops serving the claim. A true effect between 0
and the margin can end SMALLER or REFUTED (both say "not of the claimed size"), never
SUPPORTED except with probability alpha/2; a true effect at the margin is REFUTED or
SMALLER with probability at most alpha/2.

`direction` says which way the claimed effect points: `increase` (null + margin),
`decrease` (null - margin), or `either` (|effect - null| >= margin; supported beyond
either side, excluded when the CS lies inside both). For `either` a false SUPPORTED can
happen on either side, each at most alpha/2, so at most alpha in all.

Tests:
  rate_difference  per seed: 1[event] at `cell` minus the same at `reference` (in
                   [-1, 1]); CS of the mean = the rate difference. An event is a final
                   outcome in `outcomes` or a latched flag in `flags` (`exploded` stays set
                   once a gradient spike was seen, whatever the run's final label).
  rate_bound       per seed: 1[event] at `cell`; CS of the rate. supported: upper end
                   below `max_rate`; refuted: lower end above it (two regions).
  steps_ratio      per seed: steps the `cell` run needs to reach `threshold_factor` x the
                   better of the two runs' final val PER, over the steps the `reference`
                   run needs; a cell run that never reaches it is infinitely slower (+inf),
                   a reference run that never does makes the ratio 0. The bar is the same
                   for both cells, so two identical cells give ratios whose median is 1 (a
                   bar from the reference's own PER could only make the cell slower).
                   Seeds where either run collapsed or diverged are skipped (no speed to
                   compare). CS of the median ratio by inverted sign
                   tests; null 1, claimed size `min_ratio` (direction increase).
  interaction      per seed: [y(base + change) - y(base)] minus
                   [y(base + moderator + change) - y(base + moderator)]; `endpoint`
                   failure_rate: y = 1[event] (in [-2, 2], CS of the mean), final_per:
                   y = final val PER (CS of the median, inverted sign tests).
  any_of           the claim holds if any part holds. supported: a part supported at
                   alpha/J (Bonferroni: false support of any part is a union of J errors);
                   size excluded: every part's size excluded at alpha (intersection-union:
                   a false exclusion needs the one true part to be falsely excluded);
                   effect shown: some part's effect shown at alpha/J.
  all_of           the claim holds only if every part holds. supported: every part
                   supported at alpha (intersection-union); size excluded: a part's size
                   excluded at alpha/J (Bonferroni); effect shown: every part's at alpha.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.stats import sequential
from analysis.stats.alpha import ALPHA
from analysis.load import FULL_BUDGET
from trainable.config import CONFIG_DIR
from trainable.contract import FLAGS, OUTCOMES
from trainable.errors import UserError, validation_line

DEFAULT_CLAIMS = CONFIG_DIR / "claims.yaml"
# Outcomes after which a run has no usable decoder (it sets no PER threshold).
NO_DECODER = ("blank_collapse", "diverged")
VERDICTS = ("supported", "smaller_than_claimed", "refuted", "inconclusive")
FINAL = ("supported", "smaller_than_claimed", "refuted")
VERDICT_WORDS = {"supported": "SUPPORTED", "smaller_than_claimed": "SMALLER THAN CLAIMED",
                 "refuted": "REFUTED", "inconclusive": "INCONCLUSIVE"}

Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]
Flag = Literal[FLAGS]  # type: ignore[valid-type]
Direction = Literal["increase", "decrease", "either"]
Cell = dict[str, float]


# --------------------------------------------------------------------------- schema
class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Events(_Rule):
    """A run counts as an event when its final outcome is in `outcomes` or one of its
    latched `flags` is set; a rule on events must name at least one."""

    outcomes: list[Outcome] = Field(default_factory=list)
    flags: list[Flag] = Field(default_factory=list)

    def counts_events(self) -> bool:
        return True

    @model_validator(mode="after")
    def _events_named(self):
        named = bool(self.outcomes or self.flags)
        if self.counts_events() and not named:
            raise ValueError(f"rule {self.test!r} names the events it counts: outcomes "
                             "and/or flags")
        if not self.counts_events() and named:
            raise ValueError(f"rule {self.test!r} on final PER counts no events: drop "
                             "outcomes and flags")
        return self


class RateDifference(_Events):
    test: Literal["rate_difference"]
    cell: Cell
    reference: Cell
    direction: Direction
    margin: float = Field(gt=0.0, le=1.0)


class RateBound(_Events):
    test: Literal["rate_bound"]
    cell: Cell
    max_rate: float = Field(gt=0.0, lt=1.0)


class StepsRatio(_Rule):
    test: Literal["steps_ratio"]
    cell: Cell
    reference: Cell
    threshold_factor: float = Field(ge=1.0)
    min_ratio: float = Field(gt=1.0)


class Interaction(_Events):
    test: Literal["interaction"]
    endpoint: Literal["failure_rate", "final_per"] = "failure_rate"
    base: Cell
    change: Cell = Field(min_length=1)
    moderator: Cell = Field(min_length=1)
    direction: Direction
    margin: float = Field(gt=0.0, le=2.0)

    def counts_events(self) -> bool:
        return self.endpoint == "failure_rate"


Simple = Annotated[RateDifference | RateBound | StepsRatio | Interaction,
                   Field(discriminator="test")]


class AnyOf(_Rule):
    test: Literal["any_of"]
    parts: list[Simple] = Field(min_length=2)


class AllOf(_Rule):
    test: Literal["all_of"]
    parts: list[Simple] = Field(min_length=2)


RULE_TESTS = ("rate_difference", "rate_bound", "steps_ratio", "interaction", "any_of",
              "all_of")
Rule = Annotated[RateDifference | RateBound | StepsRatio | Interaction | AnyOf | AllOf,
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
    rule: Annotated[RateDifference | RateBound | StepsRatio | Interaction | AnyOf | AllOf
                    | RegimeTest, Field(discriminator="test")]


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(ALPHA, gt=0.0, lt=0.5)


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
            rest = tuple(p for p in rest if p not in RULE_TESTS)
            return (name, *rest)
        return loc
    return rename


# --------------------------------------------------------------------------- cells
def cells_of(rule) -> list[Cell]:
    """Every cell a rule compares (the cells the planner adds seeds to)."""
    if isinstance(rule, (AnyOf, AllOf)):
        cells: list[Cell] = []
        for part in rule.parts:
            cells += [c for c in cells_of(part) if c not in cells]
        return cells
    if isinstance(rule, (RateDifference, StepsRatio)):
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
        self.complete = (runs["status"].isin(FULL_BUDGET) & runs["outcome"].notna()
                         ).to_numpy(dtype=bool)
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

    def cell(self, cell: Cell) -> tuple[np.ndarray, str]:
        """Row indices of the complete runs at the cell, or a reason there are none."""
        key = tuple(sorted(cell.items()))
        if key not in self._cells:
            self._cells[key] = self._find(cell)
        return self._cells[key]

    def _find(self, cell: Cell) -> tuple[np.ndarray, str]:
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

    def events(self, rows: np.ndarray, outcomes, flags=()) -> np.ndarray:
        """1 where the run's final outcome is in `outcomes` or a latched flag in `flags` is
        set (a flag without its column in the runs counts as unset)."""
        hit = np.isin(self.outcome[rows], list(outcomes))
        for flag in flags:
            if flag in self.flags:
                hit |= self.flags[flag][rows]
        return hit.astype(float)


# --------------------------------------------------------------------------- evidence
@dataclass(frozen=True)
class Evidence:
    """What a confidence sequence shows about a claimed effect."""

    size_shown: bool = False  # an effect at least the claimed size
    size_excluded: bool = False  # the claimed size is excluded
    effect_shown: bool = False  # some effect in the claimed direction (beyond the null)

    @property
    def verdict(self) -> str:
        if self.size_shown:
            return "supported"
        if self.size_excluded:
            return "smaller_than_claimed" if self.effect_shown else "refuted"
        return "inconclusive"


def claimed_size(null: float, margin: float, direction: str) -> float:
    return null - margin if direction == "decrease" else null + margin


def judge(cs: sequential.Interval, null: float, size: float, direction: str) -> Evidence:
    """The evidence in a CS about an effect claimed to reach `size` (beyond `null` in
    `direction`; for `either`, `size` and its mirror image around the null)."""
    if cs.n == 0 or cs.empty:
        return Evidence()
    if direction == "increase":
        return Evidence(cs.low > size, cs.high < size, cs.low > null)
    if direction == "decrease":
        return Evidence(cs.high < size, cs.low > size, cs.high < null)
    low, high = sorted((size, 2 * null - size))
    return Evidence(cs.low > high or cs.high < low, low < cs.low and cs.high < high,
                    cs.low > null or cs.high < null)


def reason_for(evidence: Evidence, cs: sequential.Interval, null: float, size: float,
               direction: str, unit: str = "") -> str:
    """Why the CS gives this verdict, in words."""
    claimed = (f"{'+-' if direction == 'either' else ''}{abs(size - null):g}{unit} beyond "
               f"{null:g}" if direction == "either" else f"{size:g}{unit}")
    if cs.n == 0:
        return "no seed has a complete run in every cell the claim compares"
    if cs.empty:
        return ("the interval is empty: no constant effect fits the seeds in order (did the "
                "runs change between waves?), so no verdict is read from it")
    if evidence.size_shown:
        return f"the interval lies beyond the claimed size ({claimed})"
    opposite = ((direction == "increase" and cs.high < null)
                or (direction == "decrease" and cs.low > null))
    if evidence.size_excluded:
        if evidence.effect_shown:
            return (f"the interval excludes both the claimed size ({claimed}) and no "
                    "effect: an effect exists but is smaller than claimed")
        if opposite:
            return (f"the interval excludes the claimed size ({claimed}) and shows the "
                    "opposite effect")
        return f"the interval excludes the claimed size ({claimed}) and contains no effect"
    if evidence.effect_shown:
        return (f"an effect is shown (the interval excludes {null:g}) but its size is not "
                f"yet known: the interval still contains the claimed size ({claimed})")
    return f"the interval contains both no effect ({null:g}) and the claimed size ({claimed})"


def seeds_to_decide(values, low: float, high: float, null: float, size: float,
                    direction: str, alpha: float, median: bool = False) -> float:
    """Further seeds at the current trend until the CS excludes the claimed size (or, for
    `either`, settles it on both sides): a projection for planning runs, never used for a
    verdict. `median`: the CS is the median's (sign tests on 1[value < size])."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.inf

    def exclude(point: float) -> float:
        if median:
            return sequential.replicates_to_exclude(values < point, 0.0, 1.0, 0.5, alpha)
        return sequential.replicates_to_exclude(values, low, high, point, alpha)

    if direction != "either":
        return exclude(size)
    lo, hi = sorted((size, 2 * null - size))
    centre = float(np.median(values) if median else values.mean())
    if centre > hi:
        return exclude(hi)
    if centre < lo:
        return exclude(lo)
    return max(exclude(lo), exclude(hi))


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


def rate_difference(rule: RateDifference, runs: Runs, alpha: float) -> Result:
    name = "/".join([*rule.outcomes, *(f"{f} flag" for f in rule.flags)])
    result = Result(f"rate of {name}: ({describe(rule.cell)}) minus ({describe(rule.reference)}),"
                    " paired by seed")
    rows, problem = runs.paired([rule.cell, rule.reference])
    if problem:
        result.reason = problem
        return result
    hits, ref_hits = (runs.events(r, rule.outcomes, rule.flags) for r in rows)
    diff = hits - ref_hits
    size = claimed_size(0.0, rule.margin, rule.direction)
    points = (0.0, size, -size)
    cs = sequential.mean_cs(diff, -1.0, 1.0, alpha, points)
    result.settle(cs, judge(cs, 0.0, size, rule.direction), 0.0, size, rule.direction)
    x1, x2 = int(hits.sum()), int(ref_hits.sum())
    result.effect = (f"{cs.estimate:+.2f} [{cs.low:+.2f}, {cs.high:+.2f}] "
                     f"({x1}/{cs.n} vs {x2}/{cs.n} seeds)")
    if result.verdict not in FINAL:
        result.to_decide = seeds_to_decide(diff, -1.0, 1.0, 0.0, size, rule.direction, alpha)
    return result


def rate_bound(rule: RateBound, runs: Runs, alpha: float) -> Result:
    name = "/".join([*rule.outcomes, *(f"{f} flag" for f in rule.flags)])
    result = Result(f"rate of {name} at ({describe(rule.cell)}) below {rule.max_rate:g}")
    rows, problem = runs.paired([rule.cell])
    if problem:
        result.reason = problem
        return result
    x = runs.events(rows[0], rule.outcomes, rule.flags)
    cs = sequential.mean_cs(x, 0.0, 1.0, alpha, (rule.max_rate,))
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
    result.effect = (f"{cs.estimate:.2f} [{cs.low:.2f}, {cs.high:.2f}] "
                     f"({int(x.sum())}/{cs.n} seeds)")
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
                                 {**changed, **rule.moderator}])
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
        a, b, c, d = (runs.events(r, rule.outcomes, rule.flags) for r in rows)
        did, skipped = (b - a) - (d - c), 0
        cs = sequential.mean_cs(did, -2.0, 2.0, alpha, points)
    result.settle(cs, judge(cs, 0.0, size, rule.direction), 0.0, size, rule.direction)
    if skipped:
        result.note = f"; {skipped} seed(s) without a final PER skipped"
        result.reason += result.note
    result.effect = (f"{describe(rule.moderator)}: {cs.estimate:+.3f} [{cs.low:+.3f}, "
                     f"{cs.high:+.3f}] (n={cs.n})" if per else
                     f"{describe(rule.moderator)}: {cs.estimate:+.2f} [{cs.low:+.2f}, "
                     f"{cs.high:+.2f}] (n={cs.n})")
    if result.verdict not in FINAL:
        result.to_decide = seeds_to_decide(did, -2.0, 2.0, 0.0, size, rule.direction, alpha,
                                           median=per)
    return result


def _composite(rule, runs: Runs, alpha: float) -> Result:
    """any_of / all_of: each part read at the level its side of the decision needs (see
    the module's docstring), then combined into one piece of evidence."""
    j = len(rule.parts)
    any_of = isinstance(rule, AnyOf)
    at_full = [evaluate_rule(part, runs, alpha) for part in rule.parts]
    at_split = [evaluate_rule(part, runs, alpha / j) for part in rule.parts]
    # any_of: support and "effect shown" at alpha/J, exclusion at alpha; all_of: the other
    # way round.
    support_level, exclusion_level = (at_split, at_full) if any_of else (at_full, at_split)
    parts = []
    for sup, exc, strict in zip(support_level, exclusion_level, at_split):
        evidence = Evidence(sup.evidence.size_shown, exc.evidence.size_excluded,
                            sup.evidence.effect_shown)
        # The words of the level that decided the part; an undecided part is undecided at
        # alpha/J on both sides, so its words come from there.
        shown = (sup if evidence.verdict == "supported" else
                 exc if evidence.verdict in FINAL else strict)
        interval = sequential.Interval(shown.estimate, shown.ci_low, shown.ci_high, shown.n)
        # The words follow the combined evidence (each side at its own level), with the
        # interval of the level that decided the part.
        reason = (reason_for(evidence, interval, shown.null, shown.bound, shown.direction)
                  + shown.note if shown.generic else shown.reason)
        part = Result(**{**shown.__dict__, "evidence": evidence, "verdict": evidence.verdict,
                         "reason": reason,
                         "to_decide": 0.0 if evidence.verdict in FINAL else
                         (sup if sup.leans_supported else exc).to_decide})
        parts.append(part)
    combine = any if any_of else all
    dual = all if any_of else any
    evidence = Evidence(size_shown=combine(p.evidence.size_shown for p in parts),
                        size_excluded=dual(p.evidence.size_excluded for p in parts),
                        effect_shown=combine(p.evidence.effect_shown for p in parts))
    verdict = evidence.verdict
    leaning = [p for p in parts if p.leans_supported]
    if any_of:
        to_decide = (min(p.to_decide for p in leaning) if leaning
                     else max(p.to_decide for p in parts))
    else:
        to_decide = (max(p.to_decide for p in parts) if len(leaning) == len(parts)
                     else min(p.to_decide for p in parts if not p.leans_supported))
    # The headline part: one that decided the claim, else the first.
    decided_by = {"supported": lambda p: p.evidence.size_shown,
                  "smaller_than_claimed": lambda p: p.evidence.size_excluded,
                  "refuted": lambda p: p.evidence.size_excluded}
    lead = next((p for p in parts if decided_by.get(verdict, lambda p: False)(p)), parts[0])
    levels = (f"support at alpha/{j}, exclusion at alpha" if any_of
              else f"support at alpha, exclusion at alpha/{j}")
    return Result(
        test=f"{'any' if any_of else 'all'} of {j} parts ({levels}): "
             + " | ".join(p.test for p in parts),
        verdict=verdict,
        reason=" | ".join(f"{VERDICT_WORDS[p.verdict].lower()}: {p.reason}" for p in parts),
        effect=" | ".join(p.effect or "-" for p in parts),
        estimate=lead.estimate, ci_low=lead.ci_low, ci_high=lead.ci_high,
        n=min(p.n for p in parts), null=lead.null, bound=lead.bound, evidence=evidence,
        to_decide=0.0 if verdict in FINAL else to_decide,
        leans_supported=combine(p.leans_supported for p in parts))


TESTS = {RateDifference: rate_difference, RateBound: rate_bound, StepsRatio: steps_ratio,
         Interaction: interaction, AnyOf: _composite, AllOf: _composite}


def evaluate_rule(rule, runs: Runs, alpha: float) -> Result:
    return TESTS[type(rule)](rule, runs, alpha)


COLUMNS = ["id", "claim", "test", "effect", "estimate", "ci_low", "ci_high", "null", "bound",
           "n", "verdict", "reason", "to_decide", "effect_shown"]


def evaluate_claims(claims: ClaimsFile, runs: pd.DataFrame, curves: pd.DataFrame
                    ) -> pd.DataFrame:
    """One row per claim: test, effect with its 95% CS, seeds, verdict, reason, whether an
    effect is shown, and the projected further seeds to a final verdict (`to_decide`, 0
    once decided)."""
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
                     "reason": result.reason, "to_decide": result.to_decide,
                     "effect_shown": result.evidence.effect_shown})
    return pd.DataFrame(rows, columns=COLUMNS)


# --------------------------------------------------------------------------- over training
def runs_at_step(runs: pd.DataFrame, curves: pd.DataFrame, fraction: float
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs as if each had stopped at `fraction` of its budget: outcome, final PER and
    curve are those of its last evaluation at or before that step (latched flags too)."""
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
    for flag in FLAGS:
        if flag in last:
            at[f"final_{flag}"] = last.loc[keep, flag]
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


LATE_FROM = 0.75  # "the last part of training": the final quarter of the budget
TOO_FEW = "too few evaluations"


def held_late(trajectory: pd.DataFrame, claim_id: str) -> tuple[str, str]:
    """Did the verdict and the effect's sign hold over the last quarter of training, had
    every run stopped at each evaluation there? ("yes" | "no" | TOO_FEW, why). A check of
    the budget, weaker than it sounds: it reads one budget's last quarter only, and a
    contrast with no failures in it cannot change."""
    rows = trajectory[(trajectory["id"] == claim_id)
                      & (trajectory["fraction"] >= LATE_FROM - 1e-9)]
    if len(rows) < 2:
        return TOO_FEW, (f"{len(rows)} evaluation(s) in the last quarter of training; "
                         "at least 2 are needed")
    verdicts = rows["verdict"].unique()
    signs = {int(np.sign(e - null)) for e, null in zip(rows["estimate"], rows["null"])
             if np.isfinite(e) and e != null}
    if len(verdicts) > 1:
        return "no", ("the verdict changed over the last quarter of training ("
                      + " -> ".join(rows.sort_values("fraction")["verdict"]) + ")")
    if len(signs) > 1:
        return "no", "the effect changed sign over the last quarter of training"
    return "yes", ""
