"""Verdicts on claims: the decision rules in configs/claims.yaml applied to planted truths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from analysis_fixtures import (GRID, Planted, diagnosis_model, null_model,
                               official_failing_model, planted_trials, write_fake_experiment)

from analysis import claims, stats
from analysis.load import Axis, load_experiment
from trainable.errors import UserError

AXES = [Axis(name, None, tuple(values), None) for name, values in GRID.items()]
OFFICIAL = {"eps": 0.1, "lr_max": 0.005, "white_noise_std": 1.0, "constant_offset_std": 0.2}
WEAK = {**OFFICIAL, "white_noise_std": 0.25, "constant_offset_std": 0.05}
SHIPPED = claims.load_claims(claims.DEFAULT_CLAIMS)


def only(claim_id: str) -> dict:
    return {**SHIPPED, "claims": [c for c in SHIPPED["claims"] if c["id"] == claim_id]}


def verdicts(spec: dict, trials: pd.DataFrame, curves: pd.DataFrame | None = None
             ) -> pd.DataFrame:
    frame, factors = stats.factorize(trials, AXES)
    table = claims.evaluate_claims(spec, trials, [(set(GRID), frame, factors)],
                                   curves if curves is not None else pd.DataFrame(), True)
    return table.set_index("id")


def test_shipped_claims_cover_the_diagnosis():
    ids = [c["id"] for c in SHIPPED["claims"]]
    assert ids == ["weak_augmentation_collapses", "low_lr_slow_or_collapse",
                   "tiny_eps_explodes", "official_setting_stable",
                   "augmentation_interacts_with_optimizer"]


def test_planted_diagnosis_is_supported(tmp_path):
    experiment = load_experiment(write_fake_experiment(tmp_path, n_seeds=5))
    frame, factors = stats.factorize(experiment.trials, experiment.axes)
    table = claims.evaluate_claims(SHIPPED, experiment.trials, [(set(GRID), frame, factors)],
                                   experiment.curves, True).set_index("id")
    assert table.loc["weak_augmentation_collapses", "verdict"] == "supported"
    assert table.loc["low_lr_slow_or_collapse", "verdict"] == "supported"
    assert table.loc["tiny_eps_explodes", "verdict"] == "supported"
    assert table.loc["weak_augmentation_collapses", "ci_low"] > 0
    # 0 failures in 5 seeds cannot show a failure rate below 0.3.
    official = table.loc["official_setting_stable"]
    assert official["verdict"] == "inconclusive" and "9 runs" in official["reason"]


def test_null_truth_with_few_seeds_is_inconclusive():
    table = verdicts(only("weak_augmentation_collapses"), planted_trials(null_model, 3, 0))
    row = table.loc["weak_augmentation_collapses"]
    assert row["verdict"] == "inconclusive"
    assert row["ci_low"] < 0 < row["ci_high"]


def test_null_truth_with_many_seeds_is_refuted():
    spec = {**SHIPPED, "claims": [c for c in SHIPPED["claims"]
                                  if c["id"] in ("weak_augmentation_collapses",
                                                 "tiny_eps_explodes")]}
    table = verdicts(spec, planted_trials(null_model, 20, 0))
    assert (table["verdict"] == "refuted").all()
    assert (table["ci_high"] < 0.2).all()


def test_missing_cells_are_inconclusive():
    spec = {**SHIPPED, "claims": [
        {"id": "absent_value", "text": "x", "test": "rate_difference",
         "outcomes": ["blank_collapse"], "cell": {**WEAK, "eps": 1e-3},
         "reference": OFFICIAL, "direction": "increase", "min_effect": 0.2},
        {"id": "absent_axis", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
         "cell": {"beta2": 0.95}, "max_rate": 0.3}]}
    table = verdicts(spec, planted_trials(diagnosis_model, 3, 0))
    assert (table["verdict"] == "inconclusive").all()
    assert "not in this study's design" in table.loc["absent_value", "reason"]
    assert "not an axis" in table.loc["absent_axis", "reason"]


def test_too_few_full_budget_runs_are_inconclusive():
    table = verdicts(only("weak_augmentation_collapses"),
                     planted_trials(diagnosis_model, 2, 0))
    assert table.loc["weak_augmentation_collapses", "verdict"] == "inconclusive"
    assert "min_n=3" in table.loc["weak_augmentation_collapses", "reason"]


def test_official_stability_rate_bound():
    failing = verdicts(only("official_setting_stable"),
                       planted_trials(official_failing_model, 10, 0))
    assert failing.loc["official_setting_stable", "verdict"] == "refuted"
    stable = verdicts(only("official_setting_stable"), planted_trials(null_model, 10, 0))
    assert stable.loc["official_setting_stable", "verdict"] == "supported"


def augmentation_needs_large_eps(cell, rng):
    """Weak augmentation fails only at eps=0.1 and lr 0.005 is needed there too."""
    big_eps = cell["eps"] > 1e-3
    weak = cell["white_noise_std"] < 0.5 or cell["lr_max"] < 0.003
    p_fail = (0.85 if weak else 0.05) if big_eps else 0.3
    if rng.random() < p_fail:
        return Planted("blank_collapse", 1.0)
    return Planted("stable", 0.25)


def test_interaction_claim():
    claim_id = "augmentation_interacts_with_optimizer"
    planted = verdicts(only(claim_id), planted_trials(augmentation_needs_large_eps, 5, 0))
    assert planted.loc[claim_id, "verdict"] == "supported"
    null = verdicts(only(claim_id), planted_trials(null_model, 3, 0))
    assert null.loc[claim_id, "verdict"] == "inconclusive"
    assert "no variation" in null.loc[claim_id, "reason"]


def _curves(trials: pd.DataFrame, steps_to_converge: dict) -> pd.DataFrame:
    rows = []
    for _, run in trials.iterrows():
        reach = steps_to_converge[run["lr_max"]]
        for step in range(1, 1001, 100):
            rows.append({"trial_id": run["trial_id"], "step": step,
                         "val_per": 0.2 if step >= reach else 0.9})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("slow_steps", "verdict"), [(701, "supported"), (101, "refuted")])
def test_steps_ratio(slow_steps, verdict):
    trials = planted_trials(null_model, 4, 0)
    trials["final_val_per"] = 0.2
    spec = {**SHIPPED, "claims": [{
        "id": "slow", "text": "x", "test": "steps_ratio", "threshold_factor": 1.25,
        "cell": {**OFFICIAL, "lr_max": 0.002}, "reference": OFFICIAL, "min_ratio": 1.5}]}
    table = verdicts(spec, trials, _curves(trials, {0.002: slow_steps, 0.005: 101}))
    assert table.loc["slow", "verdict"] == verdict
    assert table.loc["slow", "estimate"] == pytest.approx(slow_steps / 101)


def test_claims_file_mistakes_name_the_claim(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [{"id": "c1", "text": "x", "test": "vibes"}]}))
    with pytest.raises(UserError, match=r"'c1'.*test='vibes'"):
        claims.load_claims(path)
    path.write_text(yaml.safe_dump({"claims": [{"id": "c2", "text": "x",
                                                "test": "rate_bound", "cell": {}}]}))
    with pytest.raises(UserError, match=r"'c2'.*needs outcomes, max_rate"):
        claims.load_claims(path)
    path.write_text(yaml.safe_dump({"claims": [{
        "id": "c3", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
        "cell": {"eps": "small"}, "max_rate": 0.3}]}))
    with pytest.raises(UserError, match=r"'c3'.*cell must map axis names to numbers"):
        claims.load_claims(path)
    with pytest.raises(UserError, match="not found"):
        claims.load_claims(tmp_path / "missing.yaml")


def test_claims_path_resolution(tmp_path):
    assert claims.resolve_claims_path(None) is None
    assert claims.resolve_claims_path("claims.yaml") == claims.DEFAULT_CLAIMS
    assert claims.resolve_claims_path(str(tmp_path / "c.yaml")) == tmp_path / "c.yaml"
    assert np.isfinite(SHIPPED["defaults"]["alpha"])


def test_runs_that_never_reach_the_threshold_count_as_infinitely_slow():
    import math

    import pandas as pd

    from analysis.claims import steps_to_threshold

    curves = pd.DataFrame({"trial_id": ["a", "a", "b", "b"], "step": [1, 50, 1, 50],
                           "val_per": [1.0, 0.2, 1.0, 0.9]})
    budgets = pd.Series({"a": 50, "b": 50})
    steps = steps_to_threshold(curves, ["a", "b"], 0.3, budgets)
    assert steps[0] == 50 and math.isinf(steps[1])
