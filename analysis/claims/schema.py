"""The claims file's schema: a claim's rule (one of the tests, or a composite of
rules), the claim, a preset's primary hypothesis, and the file; validated once, when read."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analysis.stats.alpha import ALPHA
from trainable.contract import FLAGS, OUTCOMES


Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]
Flag = Literal[FLAGS]  # type: ignore[valid-type]
Direction = Literal["increase", "decrease", "either"]
Cell = dict[str, float]


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


class PerDifference(_Rule):
    """Per seed: final val PER at `cell` minus at `reference` (a diff study's PER claim)."""

    test: Literal["per_difference"]
    cell: Cell
    reference: Cell
    direction: Direction
    margin: float = Field(gt=0.0, le=1.0)


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


Simple = Annotated[RateDifference | RateBound | StepsRatio | PerDifference | Interaction,
                   Field(discriminator="test")]


class AnyOf(_Rule):
    test: Literal["any_of"]
    parts: list[Simple] = Field(min_length=2)


class AllOf(_Rule):
    test: Literal["all_of"]
    parts: list[Simple] = Field(min_length=2)


RULE_TESTS = ("rate_difference", "rate_bound", "steps_ratio", "per_difference",
              "interaction", "any_of", "all_of")
Rule = Annotated[RateDifference | RateBound | StepsRatio | PerDifference | Interaction | AnyOf
                 | AllOf, Field(discriminator="test")]


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


def primary_claim(primary: Primary | None) -> Claim | None:
    """A preset's claim-shaped primary hypothesis as a claim with id 'primary' (None for
    none, or for the regime test, which analysis.boundary.regime_test decides)."""
    if primary is None or primary.rule.test == "regime":
        return None
    return Claim(id=primary.id, text=primary.text, alpha=primary.alpha, rule=primary.rule)


def with_primary(claims: ClaimsFile | None, primary: Primary | None) -> ClaimsFile | None:
    """The claims plus a claim-shaped primary hypothesis: everything the planner serves."""
    extra = primary_claim(primary)
    if extra is None:
        return claims
    if claims is None:
        return ClaimsFile(claims=[extra])
    return claims.model_copy(update={"claims": [*claims.claims, extra]})
