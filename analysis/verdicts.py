"""Judging a study's claims: which claims apply (the registered ones, or a file applied
after the runs were seen, marked post hoc), and their verdicts at the end of the budget
and had every run stopped at each earlier evaluation. The main report and a scale
ladder's transfer table both read verdicts from `judge_claims`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import claims as claims_mod
from analysis.load import Experiment
from analysis.record import ANALYSIS_VERSION


@dataclass(frozen=True)
class Verdicts:
    claims: claims_mod.ClaimsFile  # the claims judged: the file's, then a claim-shaped primary
    table: pd.DataFrame  # one row per claim (claims.evaluate_claims)
    trajectory: pd.DataFrame  # one row per (claim, fraction of the budget)
    held_late: dict[str, tuple[str, str]]  # claim id -> (held over the last quarter, why)


def registered_claims(experiment: Experiment, claims_path: str | Path | None
                      ) -> tuple[claims_mod.ClaimsFile | None, str]:
    """The claims to judge, and why they are post hoc ("" when they are the ones the study
    registered before its first run: same content hash, same analysis version)."""
    registered = experiment.study.claims
    if claims_path is None and registered is None:
        return None, ""
    claims = (claims_mod.load_claims(claims_path) if claims_path is not None
              else claims_mod.load_registered(registered.path, registered.sha256))
    if registered is None:
        return claims, (f"the study registered no claims; {claims.path} was applied after "
                        "the runs were seen")
    if claims.sha256 != registered.sha256:
        return claims, (f"the rules in {claims.path} (sha256 {claims.sha256[:12]}) differ "
                        f"from the ones the study registered (sha256 "
                        f"{registered.sha256[:12]}) before its first run")
    if registered.analysis_version != ANALYSIS_VERSION:
        return claims, (f"the study registered its claims under analysis version "
                        f"{registered.analysis_version}; this is version {ANALYSIS_VERSION}")
    return claims, ""


def evaluation_fractions(experiment: Experiment) -> list[float]:
    """The evaluation points of the study's budget as fractions of it."""
    study = experiment.study
    steps = sorted({1, *range(1 + study.eval_every, study.budget_steps, study.eval_every),
                    study.budget_steps})
    return [s / study.budget_steps for s in steps]


def judge_claims(experiment: Experiment, claims: claims_mod.ClaimsFile | None) -> Verdicts | None:
    """The verdicts on `claims` plus the preset's claim-shaped primary hypothesis; None when
    there is nothing to judge."""
    judged = claims_mod.with_primary(claims, experiment.study.primary_hypothesis)
    if judged is None:
        return None
    table = claims_mod.evaluate_claims(judged, experiment.trials, experiment.curves)
    trajectory = claims_mod.claims_over_training(
        judged, experiment.trials, experiment.curves, evaluation_fractions(experiment))
    held = {claim_id: claims_mod.held_late(trajectory, claim_id) for claim_id in table["id"]}
    return Verdicts(judged, table, trajectory, held)
