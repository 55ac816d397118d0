"""The adaptive main job: the wave planner, and error control of the whole procedure by a
small fixed-seed simulation (benchmarks/sim_adaptive.py runs the full one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from analysis import claims as claims_mod
from study import planner, simulate

CLAIMS = simulate.main_job_claims()
POINTS = simulate.POINTS


def index(**axes) -> int:
    return planner.cell_index(POINTS, axes)


def verdict_table(**by_id) -> pd.DataFrame:
    rows = []
    for claim in CLAIMS.claims:
        verdict, n, to_decide = by_id.get(claim.id, ("inconclusive", 2, float("inf")))
        rows.append({"id": claim.id, "verdict": verdict, "n": n, "to_decide": to_decide})
    return pd.DataFrame(rows)


def test_first_wave_is_the_design_in_seed_order():
    plan = planner.first_wave(8, 2)
    assert plan.trials == [(c, s) for s in range(2) for c in range(8)]
    assert plan.reason == "the design: 8 cells x 2 seed(s)"  # study.yaml's wave record


def test_claim_cells_are_design_points():
    official = index(eps=0.1, lr_max=0.005, white_noise_std=1.0, constant_offset_std=0.2)
    assert POINTS[official]["white_noise_std"] == 1.0
    # A cell that leaves out a varied axis matches several points: not plannable.
    assert planner.cell_index(POINTS, {"eps": 0.1}) is None
    # a value that went through YAML / JSON (relative noise 1e-8) is the same point
    assert planner.cell_index(POINTS, {"eps": 0.1 * (1 + 1e-8), "lr_max": 0.005,
                                       "white_noise_std": 1.0,
                                       "constant_offset_std": 0.2}) == official


def test_next_wave_adds_whole_seeds_to_the_cheapest_claims_first():
    done = set(planner.first_wave(8, 2).trials)
    decided = {c.id: ("refuted", 17, 0.0) for c in CLAIMS.claims}
    decided["official_setting_stable"] = ("inconclusive", 2, 3.0)  # 1 cell, 3 seeds
    decided["weak_augmentation_collapses"] = ("inconclusive", 2, 6.0)  # 2 cells
    plan = planner.next_wave(CLAIMS, verdict_table(**decided), POINTS, done, capacity=8)
    official = index(eps=0.1, lr_max=0.005, white_noise_std=1.0, constant_offset_std=0.2)
    weak = index(eps=0.1, lr_max=0.005, white_noise_std=0.25, constant_offset_std=0.05)
    # official first (seeds 2-4: 3 runs), then whole seeds of (weak, official) while they
    # fit in the 5 runs left: weak 2-4 (official has them already), then seed 5 of both.
    assert sorted(s for c, s in plan.trials if c == official) == [2, 3, 4, 5]
    assert sorted(s for c, s in plan.trials if c == weak) == [2, 3, 4, 5]
    assert len(plan.trials) == 8 and not set(plan.trials) & done
    assert plan.reason.startswith("for official_setting_stable (+3 seed(s))")


def test_planner_stops_and_says_why():
    decided = verdict_table(**{c.id: ("supported", 9, 0.0) for c in CLAIMS.claims})
    assert planner.next_wave(CLAIMS, decided, POINTS, set(), 10).reason == \
        "every claim is decided"
    open_claims = verdict_table()
    assert planner.next_wave(CLAIMS, open_claims, POINTS, set(), 0).reason == \
        "the budget is spent"
    tight = planner.next_wave(CLAIMS, open_claims, POINTS, set(), 1)
    assert tight.trials and len(tight.trials) == 1  # the one-cell claim fits
    outside = claims_mod.ClaimsFile.model_validate({"claims": [{
        "id": "x", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
        "cell": {"eps": 1e-3}, "max_rate": 0.3}]})
    table = pd.DataFrame([{"id": "x", "verdict": "inconclusive", "n": 0,
                           "to_decide": float("inf")}])
    assert "outside the design" in planner.next_wave(outside, table, POINTS, set(), 10).reason
    only_pairs = {c.id: ("supported", 9, 0.0) for c in CLAIMS.claims}
    only_pairs["weak_augmentation_collapses"] = ("inconclusive", 2, 6.0)  # 2 cells a seed
    assert planner.next_wave(CLAIMS, verdict_table(**only_pairs), POINTS, set(), 1).reason \
        == "the budget left is too small for one more seed of any undecided claim"


def test_capacity_counts_whole_rounds_within_both_budgets():
    assert planner.capacity(10.0, None, 2.0, 2, 0.5, 12) == 8  # 4 rounds of 2 in 9.5 min
    assert planner.capacity(10.0, 3, 2.0, 2, 0.5, 12) == 3
    assert planner.capacity(None, None, 2.0, 2, 0.5, 12) == 12
    assert planner.capacity(1.0, None, 2.0, 2, 0.5, 12) == 0


def test_simulated_study_is_reproducible():
    truths = [simulate.SCENARIOS["proxy_like"].truth(p) for p in POINTS]
    first = simulate.simulate_study(CLAIMS, truths, seed=3, max_trials=120)
    again = simulate.simulate_study(CLAIMS, truths, seed=3, max_trials=120)
    assert first == again and first["trials"] <= 120
    assert first["verdicts"]["weak_augmentation_collapses"] == "refuted"


def test_simulated_runs_carry_latched_flags_and_missing_failures():
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((100, 3))
    truth = simulate.CellTruth(explode_then_collapse=1.0)
    runs, _ = simulate.draw_runs([truth], [(0, s) for s in range(5)], latents, rng, 0.5, 0)
    assert {r["outcome"] for r in runs} == {"blank_collapse"}
    assert all(r["final_exploded"] == 1.0 for r in runs)
    hidden = simulate.CellTruth(blank_collapse=1.0, errored_if_failed=1.0)
    runs, _ = simulate.draw_runs([hidden], [(0, s) for s in range(5)], latents, rng, 0.5, 0)
    assert all(r["status"] == "errored" and r["outcome"] is None for r in runs)


# Each false verdict is controlled at alpha/2 = 0.025 per side. REPS studies and the bound
# MAX_ERRORS are chosen so that a procedure at 0.025 passes with probability >= 99% and one
# with a 10% error rate fails with probability >= 95%.
REPS = 155
MAX_ERRORS = int(binom.ppf(0.99, REPS, 0.025))


def test_the_error_bound_separates_a_valid_procedure_from_a_ten_percent_one():
    assert MAX_ERRORS == 9
    assert binom.sf(MAX_ERRORS, REPS, 0.025) <= 0.01
    assert binom.cdf(MAX_ERRORS, REPS, 0.10) <= 0.05


@pytest.mark.parametrize(("scenario", "errors"), [
    ("margin", {"false exclusion"}), ("between", {"false support", "false exclusion"})])
def test_adaptive_procedure_keeps_its_error_rates(scenario, errors):
    table = simulate.operating_characteristics(CLAIMS, simulate.SCENARIOS[scenario], REPS,
                                               seed=11, max_trials=60)
    found = simulate.error_rates(table)
    assert set(found["error"]) == errors and len(found) >= 5
    assert (found["count"] <= MAX_ERRORS).all(), found.to_string()


def test_a_claim_whose_cells_other_claims_already_filled_costs_only_its_missing_runs():
    """The PER interaction compares six cells but five already hold its seeds: it costs
    the six runs of the one cell that lacks them, less than the stability claim's 19."""
    official = index(eps=0.1, lr_max=0.005, white_noise_std=1.0, constant_offset_std=0.2)
    low_weak = index(eps=0.1, lr_max=0.002, white_noise_std=0.25, constant_offset_std=0.05)
    others = [i for i, p in enumerate(POINTS) if i not in (official, low_weak)]
    done = {(c, s) for c in others for s in range(12)} | {(official, s) for s in range(28)} \
        | {(low_weak, 0)}
    table = verdict_table(**{c.id: ("refuted", 17, 0.0) for c in CLAIMS.claims})
    table.loc[table["id"] == "official_setting_stable", ["verdict", "n", "to_decide"]] = \
        ["inconclusive", 28, 19.0]
    table.loc[table["id"] == "augmentation_interacts_on_per", ["verdict", "n", "to_decide"]] \
        = ["inconclusive", 1, 6.0]
    plan = planner.next_wave(CLAIMS, table, POINTS, done, capacity=6)
    assert plan.trials == [(low_weak, s) for s in range(1, 7)]
    assert plan.reason == "for augmentation_interacts_on_per (+6 seed(s))"


def test_an_errored_seed_is_skipped_not_waited_for():
    """Seed 2 of the weak cell errored: the claim has 3 complete seeds (0, 1, 3) though
    seeds 0-3 were run; its next seed is 4, in both cells."""
    official = index(eps=0.1, lr_max=0.005, white_noise_std=1.0, constant_offset_std=0.2)
    weak = index(eps=0.1, lr_max=0.005, white_noise_std=0.25, constant_offset_std=0.05)
    done = {(c, s) for c in (official, weak) for s in range(4)}
    table = verdict_table(**{c.id: ("refuted", 17, 0.0) for c in CLAIMS.claims})
    table.loc[table["id"] == "weak_augmentation_collapses", ["verdict", "n", "to_decide"]] \
        = ["inconclusive", 3, 1.0]
    plan = planner.next_wave(CLAIMS, table, POINTS, done, capacity=8)
    assert sorted(plan.trials) == sorted([(official, 4), (weak, 4)])


def test_a_trend_projecting_millions_of_seeds_is_costed_at_the_cap(monkeypatch):
    """A trend near zero projects millions of seeds; the cost counts at most
    MAX_PROJECTED of them (listing 3e7 seeds' runs took minutes)."""
    asked = []
    real = planner.missing_runs

    def recording(cells, done, seeds):
        asked.append(seeds)
        return real(cells, done, seeds)

    monkeypatch.setattr(planner, "missing_runs", recording)
    table = verdict_table(**{c.id: ("refuted", 17, 0.0) for c in CLAIMS.claims})
    table.loc[table["id"] == "augmentation_interacts_on_per", ["verdict", "n", "to_decide"]] \
        = ["inconclusive", 2, 3e7]
    plan = planner.next_wave(CLAIMS, table, POINTS, set(planner.first_wave(8, 2).trials), 8)
    assert plan.trials and max(asked) == planner.MAX_PROJECTED


def test_diff_claims_name_the_planted_cause_and_refute_the_inert_difference():
    """The diff study's claim family under the adaptive procedure (benchmarks/
    sim_adaptive.py --scenarios diff_null diff_planted diff_margin has the full table):
    the cause is supported in every study, an inert difference never is."""
    scenario = simulate.SCENARIOS["diff_planted"]
    table = simulate.operating_characteristics(simulate.claims_for(scenario), scenario, 20,
                                               max_trials=400).set_index("claim")
    assert table.loc["a_changes_failure_rate", "supported"] == 20
    assert table.loc["a_changes_final_per", "supported"] == 20
    for claim in ("b_changes_failure_rate", "b_changes_final_per"):
        assert table.loc[claim, "supported"] == 0
        assert table.loc[claim, "refuted"] >= 18


def test_a_claim_whose_runs_another_claim_already_chose_does_not_end_the_wave():
    """Claims are served cheapest first; one whose wanted runs are all chosen already (its
    cells are a subset of the primary's) adds nothing, and the claims after it are still
    served."""
    table = verdict_table(**{c.id: ("refuted", 17, 0.0) for c in CLAIMS.claims})
    for claim_id, to_decide in (("primary", 8.0), ("weak_augmentation_collapses", 100.0),
                                ("augmentation_interacts_on_per", float("inf"))):
        table.loc[table["id"] == claim_id, ["verdict", "to_decide"]] = ["inconclusive",
                                                                        to_decide]
    plan = planner.next_wave(CLAIMS, table, POINTS, set(), capacity=100)
    assert plan.reason == ("for primary (+8 seed(s)), augmentation_interacts_on_per "
                           "(+4 seed(s))")
    by_cell = {cell: sorted(s for c, s in plan.trials if c == cell) for cell, _ in plan.trials}
    assert by_cell[index(eps=0.1, lr_max=0.002, white_noise_std=1.0,
                         constant_offset_std=0.2)] == [0, 1, 2, 3]
    assert len(plan.trials) == 4 * 8 + 2 * 4


def test_a_claim_that_cannot_be_served_does_not_stop_the_ones_after_it():
    """A claim comparing a cell outside the design, and one whose next seed does not fit
    the wave, are passed over; a later claim that fits is still served."""
    outside = {"id": "outside", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
               "cell": {"eps": 1e-3}, "max_rate": 0.3}
    both = claims_mod.ClaimsFile.model_validate({"claims": [
        outside, *[c.model_dump() for c in CLAIMS.claims]]})
    table = pd.concat([pd.DataFrame([{"id": "outside", "verdict": "inconclusive", "n": 0,
                                      "to_decide": float("inf")}]),
                       verdict_table(**{c.id: ("refuted", 17, 0.0) for c in CLAIMS.claims
                                        if c.id != "official_setting_stable"})],
                      ignore_index=True)
    table.loc[table["id"] == "official_setting_stable", "to_decide"] = 3.0
    plan = planner.next_wave(both, table, POINTS, set(), capacity=10)
    assert plan.reason == "for official_setting_stable (+3 seed(s))"
    # the cheapest claim needs 4 runs a seed and the wave has room for 3
    table.loc[table["id"] == "primary", ["verdict", "to_decide"]] = ["inconclusive", 1.0]
    table.loc[table["id"] == "official_setting_stable", "to_decide"] = 10.0
    plan = planner.next_wave(both, table, POINTS, set(), capacity=3)
    assert plan.reason == "for official_setting_stable (+3 seed(s))"
    assert len(plan.trials) == 3
