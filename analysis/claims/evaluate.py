"""Evaluating claims: composites (any_of / all_of) over the single tests, one row per
claim, and the verdicts had every run stopped at each earlier evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.claims.cells import Runs
from analysis.claims.effects import (Result, interaction, per_difference, rate_bound,
                                     rate_difference, steps_ratio)
from analysis.claims.evidence import FINAL, VERDICT_WORDS, Evidence, reason_for
from analysis.claims.schema import (AllOf, AnyOf, ClaimsFile, Interaction, PerDifference,
                                    RateBound, RateDifference, StepsRatio)
from analysis.runs import full_budget
from analysis.stats import sequential
from trainable.contract import FLAGS


def _composite(rule, runs: Runs, alpha: float) -> Result:
    """any_of / all_of: each part read at the level its side of the decision needs (see
    the package docstring), then combined into one piece of evidence."""
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
         PerDifference: per_difference, Interaction: interaction, AnyOf: _composite,
         AllOf: _composite}


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
    complete = full_budget(runs).set_index("trial_id")
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
