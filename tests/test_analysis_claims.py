"""Verdicts on claims: the decision rules in configs/claims.yaml applied to planted truths,
with the sample sizes at which each rule decides pinned to their computed values."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from support.experiments import (GRID, Planted, diagnosis_model, null_model,
                               official_failing_model, planted_trials)

from analysis import claims
from analysis.stats import sequential
from trainable.errors import UserError

OFFICIAL = {"eps": 0.1, "lr_max": 0.005, "white_noise_std": 1.0, "constant_offset_std": 0.2}
WEAK = {**OFFICIAL, "white_noise_std": 0.25, "constant_offset_std": 0.05}
SHIPPED = claims.load_claims(claims.DEFAULT_CLAIMS)
NO_CURVES = pd.DataFrame(columns=["trial_id", "step", "val_per"])


def only(*ids: str) -> claims.ClaimsFile:
    return SHIPPED.subset(list(ids))


def custom(*specs: dict) -> claims.ClaimsFile:
    return claims.ClaimsFile.model_validate({"claims": list(specs)})


def verdicts(spec: claims.ClaimsFile, trials: pd.DataFrame,
             curves: pd.DataFrame = NO_CURVES) -> pd.DataFrame:
    return claims.evaluate_claims(spec, trials, curves).set_index("id")


def test_shipped_claims_cover_the_diagnosis_and_are_hashed():
    assert [c.id for c in SHIPPED.claims] == [
        "weak_augmentation_collapses", "low_lr_slow_or_collapse", "tiny_eps_explodes",
        "official_setting_stable", "augmentation_interacts_with_optimizer",
        "augmentation_interacts_on_per"]
    text = claims.DEFAULT_CLAIMS.read_text()
    assert SHIPPED.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert SHIPPED.defaults.alpha == 0.05


def test_hedged_capital_matches_a_hand_computation():
    # One observation x=1 at m=0.5, alpha=0.05: the plug-in bet sqrt(2 log 40 /
    # (0.25 * 1 * log 2)) = 6.52 is truncated at 0.75/0.5 = 1.5, so K+ = 1.75, K- = 0.25
    # and the hedged capital is max(0.5 * 1.75, 0.5 * 0.25) = 0.875.
    path = sequential.log_capital_path(np.array([1.0]), np.array([0.5]), 0.05)
    assert path[0, 0] == pytest.approx(math.log(0.875))


def first_n(values_at, alpha, decide, limit=200) -> int:
    return next(n for n in range(1, limit) if decide(values_at(n), alpha))


def test_sample_sizes_the_rules_need_when_nothing_fails():
    # The numbers configs/claims.yaml states; changing the CS or a size moves them.
    rate_diff = first_n(lambda n: np.zeros(n), 0.05, lambda x, a: sequential.mean_cs(
        x, -1, 1, a, (0.25,)).excludes_above(0.25))
    bound = first_n(lambda n: np.zeros(n), 0.05, lambda x, a: sequential.mean_cs(
        x, 0, 1, a, (0.1,)).excludes_above(0.1))
    # A conjunction's size is excluded by one part at alpha/2.
    interaction = first_n(lambda n: np.zeros(n), 0.025, lambda x, a: sequential.mean_cs(
        x, -2, 2, a, (0.25, -0.25)).excludes_above(0.25))
    assert (rate_diff, bound, interaction) == (17, 47, 44)


def test_confidence_sequence_contains_the_mean_and_only_shrinks():
    rng = np.random.default_rng(3)
    x = rng.random(40) < 0.3
    previous = (0.0, 1.0)
    for n in range(1, 41):
        cs = sequential.mean_cs(x[:n], 0.0, 1.0)
        assert cs.low <= x[:n].mean() <= cs.high
        assert previous[0] <= cs.low + 1e-12 and cs.high <= previous[1] + 1e-12
        previous = (cs.low, cs.high)
    with pytest.raises(ValueError, match="outside the declared range"):
        sequential.mean_cs([2.0], 0.0, 1.0)


def test_median_cs_by_inverted_sign_tests():
    ratios = np.array([2.0, 3.0, np.inf, 2.5, 4.0, 5.0, 3.0, 2.0, np.inf, 3.0])
    cs = sequential.median_cs(ratios, 0.05, (1.0, 1.5))
    assert cs.estimate == 3.0 and cs.low == 2.0 and math.isinf(cs.high)
    # All ten above 1: the median is above 1; nothing says it is below 1.5.
    assert cs.excludes_below(1.0) and not cs.excludes_above(1.5)


def test_planted_diagnosis_is_supported():
    table = verdicts(SHIPPED, planted_trials(diagnosis_model, 20, 0))
    for claim_id in ("weak_augmentation_collapses", "low_lr_slow_or_collapse",
                     "tiny_eps_explodes"):
        assert table.loc[claim_id, "verdict"] == "supported", claim_id
    # SUPPORTED means the claimed size itself is shown: the lower end passes +0.25.
    assert table.loc["weak_augmentation_collapses", "ci_low"] > 0.25
    assert table.loc["weak_augmentation_collapses", "n"] == 20
    # 12 seeds show the effects exist but not yet their size.
    early = verdicts(SHIPPED, planted_trials(diagnosis_model, 12, 0))
    assert early.loc["weak_augmentation_collapses", "verdict"] == "inconclusive"
    assert early.loc["weak_augmentation_collapses", "effect_shown"]
    assert early.loc["weak_augmentation_collapses", "reason"].startswith(
        "an effect is shown (the interval excludes 0) but its size is not yet known")
    # A difference of differences spans [-2, 2], and the conjunction needs both
    # moderators' interactions at their size: more seeds than the simple effects.
    interaction = "augmentation_interacts_with_optimizer"
    assert table.loc[interaction, "verdict"] == "inconclusive"
    more = verdicts(only(interaction), planted_trials(diagnosis_model, 40, 0))
    assert more.loc[interaction, "verdict"] == "supported"


@pytest.mark.parametrize(("seeds", "verdict"), [(16, "inconclusive"), (17, "refuted")])
def test_null_truth_is_refuted_exactly_when_the_rule_says(seeds, verdict):
    table = verdicts(only("weak_augmentation_collapses", "tiny_eps_explodes"),
                     planted_trials(null_model, seeds, 0))
    assert (table["verdict"] == verdict).all()
    assert (table["estimate"] == 0).all() and (table["n"] == seeds).all()
    if verdict == "refuted":
        assert (table["ci_high"] < 0.25).all()
        assert table.loc["tiny_eps_explodes", "effect"].startswith("+0.00 [")


@pytest.mark.parametrize(("seeds", "verdict"), [(46, "inconclusive"), (47, "supported")])
def test_official_stability_needs_47_failure_free_seeds(seeds, verdict):
    row = verdicts(only("official_setting_stable"),
                   planted_trials(null_model, seeds, 0)).loc["official_setting_stable"]
    assert row["verdict"] == verdict
    if verdict == "inconclusive":
        assert "47 seeds would decide it" in row["reason"]
    else:
        assert row["ci_high"] < 0.1


def test_official_failing_most_seeds_is_refuted():
    row = verdicts(only("official_setting_stable"),
                   planted_trials(official_failing_model, 12, 0)).loc["official_setting_stable"]
    assert row["verdict"] == "refuted" and row["ci_low"] > 0.1
    assert row["reason"] == "lower end above 0.1"


def test_an_exploded_run_that_collapsed_counts_as_an_explosion():
    """The latched flag counts, not the final label after precedence (the tiny-eps
    positive control exploded and then collapsed)."""
    trials = planted_trials(null_model, 20, 0)
    tiny = np.isclose(trials["eps"], 1e-8)
    trials["final_exploded"] = 0.0
    trials.loc[tiny, "outcome"] = "blank_collapse"
    trials.loc[tiny, "final_exploded"] = 1.0
    row = verdicts(only("tiny_eps_explodes"), trials).loc["tiny_eps_explodes"]
    assert row["verdict"] == "supported" and row["estimate"] == 1.0
    # Without the flag's column (an older study) the final labels alone count.
    older = verdicts(only("tiny_eps_explodes"), trials.drop(columns="final_exploded"))
    assert older.loc["tiny_eps_explodes", "estimate"] == 0.0


def _errored(trials: pd.DataFrame, cell: dict, seeds: range) -> pd.DataFrame:
    """The runs of `cell` at `seeds` errored: no final report, so no outcome or PER."""
    at = np.ones(len(trials), dtype=bool)
    for axis, value in cell.items():
        at &= np.isclose(trials[axis], value)
    at &= trials["seed"].isin(list(seeds))
    trials = trials.copy()
    trials.loc[at, ["status", "outcome"]] = ["errored", None]
    trials.loc[at, "final_val_per"] = np.nan
    return trials


def test_errored_runs_bound_a_failure_claim_both_ways_and_cannot_fake_a_refutation():
    """A run that errored may have errored because it failed (missing not at random): each
    end of a failure effect's interval is read from the worst case for that end, so errored
    runs widen the interval but never decide a claim that the complete runs alone would
    (six errored weak-augmentation runs of 30 could be six collapses: +0.20 at most)."""
    spec = only("weak_augmentation_collapses")
    lost_seeds = range(2, 30, 5)  # 6 seeds spread over the sequence
    trials = planted_trials(null_model, 30, 0)
    weak = np.isclose(trials["white_noise_std"], 0.25)
    dropped = verdicts(spec, trials[~(weak & trials["seed"].isin(list(lost_seeds)))])
    assert dropped.loc["weak_augmentation_collapses", "verdict"] == "refuted"  # 24 seeds
    lost = verdicts(spec, _errored(trials, WEAK, lost_seeds)).loc[
        "weak_augmentation_collapses"]
    assert lost["verdict"] == "inconclusive" and lost["n"] == 30
    assert lost["estimate"] == pytest.approx(0.1)  # midpoint of 0/30 and 6/30
    assert lost["ci_high"] > 0.25 and lost["ci_low"] < 0
    assert "6 errored run(s) counted both as failing and as not" in lost["reason"]
    # errored reference runs cannot make an increase look supported either
    collapsing = planted_trials(diagnosis_model, 20, 0)
    assert verdicts(spec, collapsing).loc["weak_augmentation_collapses",
                                          "verdict"] == "supported"
    hidden = verdicts(spec, _errored(collapsing, OFFICIAL, range(1, 20, 2)))
    assert hidden.loc["weak_augmentation_collapses", "verdict"] != "supported"


def test_errored_official_runs_count_as_failures_against_stability():
    spec = only("official_setting_stable")
    trials = planted_trials(null_model, 60, 0)
    assert verdicts(spec, trials).loc["official_setting_stable", "verdict"] == "supported"
    row = verdicts(spec, _errored(trials, OFFICIAL, range(3, 60, 8))).loc[
        "official_setting_stable"]
    assert row["verdict"] == "inconclusive" and row["n"] == 60 and row["ci_high"] > 0.1


def test_failures_hiding_as_errored_runs_do_not_refute_an_effect_at_its_claimed_size():
    """Missing not at random, directly: weak augmentation collapses 25% more often (the
    claimed size) and 30% of its collapsed runs error. Read from the complete runs, 200
    seeds exclude the true size in 28 of 155 studies (18%); with errored runs bounded both
    ways, within the bound a procedure at alpha/2 passes with probability 0.99."""
    from scipy.stats import binom

    spec = only("weak_augmentation_collapses")
    rng = np.random.default_rng(0)

    def study(n: int, drop_errored: bool) -> str:
        rows = []
        for cell, rate in ((OFFICIAL, 0.0), (WEAK, 0.25)):
            for seed in range(n):
                failed = rng.random() < rate
                errored = failed and rng.random() < 0.3
                if errored and drop_errored:
                    continue
                rows.append({**cell, "seed": seed, "trial_id": f"t{len(rows)}",
                             "status": "errored" if errored else "finished",
                             "outcome": None if errored else
                             "blank_collapse" if failed else "stable",
                             "final_val_per": np.nan if errored else 0.3,
                             "budget_steps": 100.0})
        return verdicts(spec, pd.DataFrame(rows)).loc["weak_augmentation_collapses", "verdict"]

    bound = int(binom.ppf(0.99, 155, 0.025))
    excluded = [sum(study(200, drop) in ("refuted", "smaller_than_claimed")
                    for _ in range(155)) for drop in (True, False)]
    assert excluded[0] > bound >= excluded[1], excluded


EPS_INTERACTION = {"id": "eps_x_aug", "text": "t", "test": "interaction",
                   "outcomes": ["blank_collapse"], "base": OFFICIAL,
                   "change": {"white_noise_std": 0.25, "constant_offset_std": 0.05},
                   "moderator": {"eps": 1e-8}, "direction": "increase", "margin": 0.25}


def test_a_failure_interaction_bounds_errored_runs_and_keeps_its_reading():
    """A single failure-rate interaction (not through a composite, which words its own
    reason): its reason is the interval's reading, plus how many errored runs were bounded;
    an errored run in its cells widens the interval and keeps every seed."""
    spec = custom(EPS_INTERACTION)
    trials = planted_trials(null_model, 44, 0)
    lost_seeds = range(2, 44, 7)  # 6 seeds
    clean = verdicts(spec, trials).loc["eps_x_aug"]
    assert clean["verdict"] == "refuted" and clean["n"] == 44
    assert clean["reason"] == "the interval excludes the claimed size (0.25) and contains no effect"
    lost = verdicts(spec, _errored(trials, WEAK, lost_seeds)).loc["eps_x_aug"]
    assert lost["n"] == 44 and lost["verdict"] == "inconclusive"
    assert lost["ci_high"] > clean["ci_high"] and lost["ci_low"] == clean["ci_low"]
    assert lost["reason"].startswith("the interval contains")
    assert lost["reason"].endswith("; 6 errored run(s) counted both as failing and as not "
                                   "(worst-case bounds)")
    # a PER interaction skips errored seeds instead (no PER to bound)
    per = custom({**EPS_INTERACTION, "endpoint": "final_per", "outcomes": [], "margin": 0.02})
    per_lost = verdicts(per, _errored(trials, WEAK, lost_seeds)).loc["eps_x_aug"]
    assert per_lost["n"] == 38 and "errored" not in per_lost["reason"]


def test_bounded_mean_cs_reads_each_end_from_its_worst_case():
    lowest = np.array([0.0] * 20)
    highest = np.array([0.0] * 17 + [1.0] * 3)
    both = sequential.mean_cs_bounded(lowest, highest, 0.0, 1.0, 0.05, (0.1,))
    at_low = sequential.mean_cs(lowest, 0.0, 1.0, 0.05, (0.1,))
    at_high = sequential.mean_cs(highest, 0.0, 1.0, 0.05, (0.1,))
    assert (both.low, both.high, both.n) == (at_low.low, at_high.high, 20)
    assert both.estimate == pytest.approx(0.075)
    assert sequential.mean_cs_bounded(lowest, lowest, 0.0, 1.0) == sequential.mean_cs(
        lowest, 0.0, 1.0)


def test_direction_decrease_is_the_mirror_of_increase():
    trials = planted_trials(null_model, 20, 0)
    official = np.isclose(trials["white_noise_std"], 1.0) & np.isclose(
        trials["constant_offset_std"], 0.2)
    trials.loc[official, "outcome"] = "blank_collapse"  # the reference always collapses
    rule = {"id": "c", "text": "weak augmentation prevents collapse", "test": "rate_difference",
            "outcomes": ["blank_collapse"], "cell": WEAK, "reference": OFFICIAL,
            "margin": 0.25}
    down = verdicts(custom({**rule, "direction": "decrease"}), trials).loc["c"]
    up = verdicts(custom({**rule, "direction": "increase"}), trials).loc["c"]
    either = verdicts(custom({**rule, "direction": "either"}), trials).loc["c"]
    assert down["verdict"] == "supported" and down["estimate"] == -1.0
    assert down["bound"] == -0.25 and down["ci_high"] < -0.25
    assert up["verdict"] == "refuted" and up["estimate"] == -1.0
    assert "shows the opposite effect" in up["reason"]
    assert either["verdict"] == "supported"


def test_missing_or_ambiguous_cells_are_inconclusive():
    trials = planted_trials(diagnosis_model, 3, 0)
    table = verdicts(custom(
        {"id": "absent_value", "text": "x", "test": "rate_difference", "margin": 0.25,
         "outcomes": ["blank_collapse"], "cell": {**WEAK, "eps": 1e-3},
         "reference": OFFICIAL, "direction": "increase"},
        {"id": "absent_axis", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
         "cell": {"beta2": 0.95}, "max_rate": 0.3},
        {"id": "pooled", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
         "cell": {"eps": 1e-8}, "max_rate": 0.3}), trials)
    assert (table["verdict"] == "inconclusive").all()
    assert table.loc["pooled", "reason"] == ("(eps=1e-08) matches several cells of the "
                                             "design; name a value for every varied axis")
    assert table.loc["absent_value", "reason"] == (
        "(eps=0.001, lr_max=0.005, white_noise_std=0.25, constant_offset_std=0.05) is not in "
        "this study's design")
    assert table.loc["absent_axis", "reason"] == "beta2 is not an axis of this study"


def augmentation_needs_large_eps(cell, rng):
    """Weak augmentation fails only at eps=0.1 (at both lr_max)."""
    big_eps = cell["eps"] > 1e-3
    weak = cell["white_noise_std"] < 0.5
    if big_eps and weak and rng.random() < 0.9:
        return Planted("blank_collapse", 1.0)
    return Planted("stable", 0.25)


def augmentation_needs_large_eps_and_lr(cell, rng):
    """Weak augmentation fails only at eps=0.1 with lr_max 0.005."""
    if (cell["eps"] > 1e-3 and cell["white_noise_std"] < 0.5 and cell["lr_max"] > 0.003
            and rng.random() < 0.95):
        return Planted("blank_collapse", 1.0)
    return Planted("stable", 0.25)


def test_interaction_claim_needs_both_moderators():
    claim_id = "augmentation_interacts_with_optimizer"
    both = verdicts(only(claim_id), planted_trials(augmentation_needs_large_eps_and_lr, 20,
                                                   0)).loc[claim_id]
    assert both["verdict"] == "supported" and both["estimate"] > 0.5
    # eps matters, lr_max does not: the conjunction is not shown, and once the lr part's
    # size is excluded (at alpha/2) it is refuted.
    eps_only = verdicts(only(claim_id), planted_trials(augmentation_needs_large_eps, 20, 0)
                        ).loc[claim_id]
    assert eps_only["verdict"] == "inconclusive"
    assert eps_only["reason"].startswith("supported: the interval lies beyond the claimed "
                                         "size (0.25) | inconclusive: ")
    late = verdicts(only(claim_id), planted_trials(augmentation_needs_large_eps, 60, 0)
                    ).loc[claim_id]
    assert late["verdict"] == "refuted"
    few = verdicts(only(claim_id), planted_trials(null_model, 10, 0)).loc[claim_id]
    assert few["verdict"] == "inconclusive"
    many = verdicts(only(claim_id), planted_trials(null_model, 44, 0)).loc[claim_id]
    assert many["verdict"] == "refuted"


def _curves(trials: pd.DataFrame, steps_to_converge: dict, every: int = 100
            ) -> pd.DataFrame:
    rows = []
    for _, run in trials.iterrows():
        reach = steps_to_converge[run["lr_max"]]
        for step in range(1, 1001, every):
            rows.append({"trial_id": run["trial_id"], "step": step,
                         "val_per": 0.2 if step >= reach else 0.9})
    return pd.DataFrame(rows)


STEPS = {"id": "slow", "text": "x", "test": "steps_ratio", "threshold_factor": 1.25,
         "cell": {**OFFICIAL, "lr_max": 0.002}, "reference": OFFICIAL, "min_ratio": 1.5}


@pytest.mark.parametrize(("slow_steps", "verdict"), [
    (701, "supported"), (101, "refuted"), (None, "supported"), (121, "smaller_than_claimed")])
def test_steps_ratio(slow_steps, verdict):
    trials = planted_trials(null_model, 12, 0)
    trials["final_val_per"] = 0.2
    curves = _curves(trials, {0.002: slow_steps or 10**9, 0.005: 101}, every=10)
    row = verdicts(custom(STEPS), trials, curves).loc["slow"]
    assert row["verdict"] == verdict and row["n"] == 12
    expected = slow_steps / 101 if slow_steps else math.inf
    assert row["estimate"] == pytest.approx(expected)
    if slow_steps is None:  # the summary says so in words, not "xinf [-inf, inf]"
        assert row["effect"].startswith("never [") and "inf" not in row["effect"]
        assert row["effect"].endswith("(12 seeds, 12 never reached the threshold)")
    else:
        assert row["effect"].startswith(f"x{expected:.2f} [x")
    if verdict == "smaller_than_claimed":  # x1.20 every seed: slower, not 1.5x slower
        assert row["ci_low"] > 1.0 and row["ci_high"] < 1.5


def test_steps_ratio_bar_is_the_better_runs_so_both_cells_can_be_infinitely_slower():
    """Both runs drop to their final PER at step 201. Where the cell ends worse (0.3 vs
    0.2) it never reaches 1.25 x 0.2: infinitely slower (+inf); where the reference ends
    worse, the cell is infinitely faster (0); where they end level, 1. Ten seeds each way
    and one level: the median ratio is 1, as it must be for cells that differ only by
    seed noise, and the claim is refuted, not supported."""
    trials = planted_trials(null_model, 21, 0)
    slow_cell = np.isclose(trials["lr_max"], 0.002)
    seed = trials["seed"].to_numpy()
    # interleaved, as independent seeds would be (the sequence is read in seed order)
    worse = np.where(seed % 2 == 0, slow_cell, ~slow_cell) & (seed < 20)
    trials["final_val_per"] = np.where(worse, 0.3, 0.2)
    rows = []
    for _, run in trials.iterrows():
        for step in (1, 101, 201, 1000):
            rows.append({"trial_id": run["trial_id"], "step": step,
                         "val_per": 0.9 if step < 201 else run["final_val_per"]})
    curves = pd.DataFrame(rows)
    ratios, skipped = claims.paired_step_ratios(
        custom(STEPS).claims[0].rule, claims.Runs(trials, curves),
        *claims.Runs(trials, curves).paired([STEPS["cell"], STEPS["reference"]])[0])
    assert skipped == 0
    assert sorted(ratios.tolist()) == [0.0] * 10 + [1.0] + [math.inf] * 10
    row = verdicts(custom(STEPS), trials, curves).loc["slow"]
    assert row["estimate"] == 1.0 and row["verdict"] != "supported"


def test_a_run_stuck_near_its_initial_per_is_slower_not_level():
    """A cell run that ends at 0.95 (stuck; its first evaluation 0.9... then worse) never
    reaches 1.25 x the reference's 0.2, so the seed counts as infinitely slower; with the
    worse run's PER as the bar (1.19) both would meet it at step 1, a ratio of 1."""
    trials = planted_trials(null_model, 8, 0)
    slow_cell = np.isclose(trials["lr_max"], 0.002)
    trials["final_val_per"] = np.where(slow_cell, 0.95, 0.2)
    curves = _curves(trials, {0.002: 10**9, 0.005: 101})
    curves.loc[curves["trial_id"].isin(trials.loc[slow_cell, "trial_id"]), "val_per"] = 0.95
    row = verdicts(custom(STEPS), trials, curves).loc["slow"]
    assert math.isinf(row["estimate"]) and row["verdict"] == "supported"


def test_ratio_text_writes_unreached_as_never_and_floors_at_zero():
    assert claims.ratio_text(math.inf) == "never"
    assert claims.ratio_text(-math.inf) == "x0.00"
    assert claims.ratio_text(-0.3) == "x0.00"
    assert claims.ratio_text(1.456) == "x1.46"


def test_any_of_supports_at_alpha_over_its_parts_and_excludes_at_alpha():
    # Seven seeds all 7x slower: a sign test at alpha 0.05 shows the median above 1.5, at
    # 0.025 (the disjunction's support level) it needs eight.
    trials = planted_trials(null_model, 7, 0)
    trials["final_val_per"] = 0.2
    curves = _curves(trials, {0.002: 701, 0.005: 101})
    alone = verdicts(custom(STEPS), trials, curves).loc["slow"]
    collapse = {"test": "rate_difference", "outcomes": ["blank_collapse"],
                "cell": STEPS["cell"], "reference": OFFICIAL, "direction": "increase",
                "margin": 0.25}
    steps = {k: v for k, v in STEPS.items() if k not in ("id", "text")}
    either = {"id": "slow", "text": "x", "test": "any_of", "parts": [collapse, steps]}
    both = verdicts(custom(either), trials, curves).loc["slow"]
    assert alone["verdict"] == "supported"
    assert both["verdict"] == "inconclusive"
    assert both["test"].startswith("any of 2 parts (support at alpha/2, exclusion at alpha)")
    # Refuting the disjunction needs every part's size excluded, each at the whole alpha
    # (intersection-union): with equal speeds and no collapse, 17 seeds, as one part alone.
    same = planted_trials(null_model, 17, 0)
    same["final_val_per"] = 0.2
    level = _curves(same, {0.002: 101, 0.005: 101})
    assert verdicts(custom(either), same, level).loc["slow", "verdict"] == "refuted"
    fewer = planted_trials(null_model, 16, 0).assign(final_val_per=0.2)
    assert verdicts(custom(either), fewer, _curves(fewer, {0.002: 101, 0.005: 101})
                    ).loc["slow", "verdict"] == "inconclusive"


def test_claims_file_mistakes_name_the_claim_and_key(tmp_path):
    path = tmp_path / "claims.yaml"
    cases = [
        ({"id": "c1", "text": "x", "test": "vibes"}, r"claim 'c1'.*'vibes'"),
        ({"id": "c2", "text": "x", "test": "rate_bound", "cell": {}, "outcomes": ["diverged"]},
         r"claim 'c2'.*max_rate.*Field required"),
        ({"id": "c3", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
          "cell": {"eps": "small"}, "max_rate": 0.3}, r"claim 'c3'.*cell.eps='small'"),
        ({"id": "c4", "text": "x", "test": "rate_bound", "outcomes": ["exploded"],
          "cell": {"eps": 0.1}, "max_rate": 0.3}, r"claim 'c4'.*outcomes.0='exploded'"),
        ({"id": "c5", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
          "cell": {"eps": 0.1}, "max_rate": 0.3, "min_n": 3}, r"unknown key.*min_n"),
        ({"id": "c6", "text": "x", "test": "rate_bound", "cell": {"eps": 0.1},
          "max_rate": 0.1}, r"claim 'c6'.*rule 'rate_bound' names the events it counts"),
        ({"id": "c7", "text": "x", "test": "interaction", "endpoint": "final_per",
          "flags": ["exploded"], "base": OFFICIAL, "change": {"lr_max": 0.002},
          "moderator": {"eps": 1e-8}, "direction": "either", "margin": 0.02},
         r"claim 'c7'.*rule 'interaction' on final PER counts no events"),
        ({"id": "c8", "text": "x", "test": "rate_bound", "outcomes": ["diverged"],
          "flags": ["diverging"], "cell": {"eps": 0.1}, "max_rate": 0.3},
         r"claim 'c8'.*flags.0='diverging'"),
    ]
    for claim, pattern in cases:
        path.write_text(yaml.safe_dump({"claims": [claim]}))
        with pytest.raises(UserError, match=pattern) as err:
            claims.load_claims(path)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="not found"):
        claims.load_claims(tmp_path / "missing.yaml")


def test_claims_path_resolution(tmp_path):
    assert claims.resolve_claims_path(None) is None
    assert claims.resolve_claims_path("claims.yaml") == claims.DEFAULT_CLAIMS
    assert claims.resolve_claims_path(str(tmp_path / "c.yaml")) == tmp_path / "c.yaml"
    with pytest.raises(UserError, match=r"c.yaml: claims file not found; fix the preset's "
                                        r"'claims' or pass --claims$"):
        claims.load_claims(tmp_path / "c.yaml")


def test_cells_of_each_rule():
    rule = SHIPPED.claims[4].rule
    cells = claims.cells_of(rule)
    assert len(cells) == 6 and cells[0] == OFFICIAL and cells[1] == WEAK
    assert {**OFFICIAL, "eps": 1e-8} in cells and {**WEAK, "lr_max": 0.002} in cells
    assert claims.cells_of(SHIPPED.claims[1].rule) == [{**OFFICIAL, "lr_max": 0.002},
                                                      OFFICIAL]


def test_trajectory_and_holding_late():
    rows = []
    for fraction, verdict, estimate in ((0.5, "supported", 0.3), (0.75, "supported", 0.2),
                                        (0.9, "inconclusive", 0.1), (1.0, "refuted", -0.1)):
        rows.append({"id": "c", "fraction": fraction, "verdict": verdict,
                     "estimate": estimate, "null": 0.0})
    held, why = claims.held_late(pd.DataFrame(rows), "c")
    assert held == "no" and "supported -> inconclusive -> refuted" in why
    steady = pd.DataFrame([{**r, "verdict": "supported", "estimate": 0.2} for r in rows])
    assert claims.held_late(steady, "c") == ("yes", "")
    sign = pd.DataFrame([{**r, "verdict": "inconclusive"} for r in rows])
    assert claims.held_late(sign, "c") == ("no", "the effect changed sign over the last "
                                           "quarter of training")


def test_runs_at_a_fraction_of_the_budget_use_that_evaluation():
    trials = planted_trials(null_model, 1, 0).iloc[:1].copy()
    trials["budget_steps"] = 100.0
    curves = pd.DataFrame({"trial_id": [trials["trial_id"].iloc[0]] * 3, "step": [1, 50, 100],
                           "val_per": [1.0, 0.6, 0.2],
                           "outcome": ["stable", "slow", "stable"]})
    at, cut = claims.runs_at_step(trials, curves, 0.5)
    assert at["outcome"].iloc[0] == "slow" and at["final_val_per"].iloc[0] == 0.6
    assert list(cut["step"]) == [1, 50]


def test_grid_fixture_axes_match_the_claims():
    for claim in SHIPPED.claims:
        for cell in claims.cells_of(claim.rule):
            assert set(cell) <= set(GRID)


def test_steps_ratio_skips_seeds_where_either_run_failed():
    # Equal speeds; the cell collapses in 4 seeds and the reference in 2 others. Counting
    # the cell's collapses as infinitely slow would make 4 of 10 seeds "slower" for free.
    trials = planted_trials(null_model, 10, 0)
    trials["final_val_per"] = 0.2
    cell = np.isclose(trials["lr_max"], 0.002) & np.isclose(trials["eps"], 0.1) & \
        np.isclose(trials["white_noise_std"], 1.0)
    ref = np.isclose(trials["lr_max"], 0.005) & np.isclose(trials["eps"], 0.1) & \
        np.isclose(trials["white_noise_std"], 1.0)
    trials.loc[cell & trials["seed"].isin([0, 1, 2, 3]), "outcome"] = "blank_collapse"
    trials.loc[ref & trials["seed"].isin([4, 5]), "outcome"] = "diverged"
    row = verdicts(custom(STEPS), trials, _curves(trials, {0.002: 101, 0.005: 101})).loc["slow"]
    assert row["n"] == 4 and row["estimate"] == 1.0
    assert "6 seed(s) skipped: a run collapsed or diverged" in row["reason"]


@pytest.mark.parametrize("primary", [
    {"text": "lr/eps", "test": "regime"},                                    # as a preset
    {"id": "primary", "text": "lr/eps", "alpha": None, "rule": {"test": "regime"}},  # study.yaml
])
def test_regime_primary_is_not_a_claim_in_either_form(primary):
    from analysis.claims import Primary, primary_claim, with_primary

    parsed = Primary.model_validate(primary)
    assert parsed.rule.test == "regime" and parsed.text == "lr/eps"
    assert primary_claim(parsed) is None and with_primary(None, parsed) is None
    assert primary_claim(None) is None


def test_failure_outcomes_of_an_any_of_are_the_union_of_its_parts_once_each():
    spec = custom({"id": "c", "text": "t", "test": "any_of", "parts": [
        {"test": "rate_difference", "outcomes": ["blank_collapse", "stable"],
         "cell": WEAK, "reference": OFFICIAL, "direction": "increase", "margin": 0.25},
        {"test": "rate_difference", "outcomes": ["diverged", "blank_collapse"],
         "cell": WEAK, "reference": OFFICIAL, "direction": "increase", "margin": 0.25}]})
    assert claims.failure_outcomes(spec.claims[0].rule) == ["blank_collapse", "diverged"]
    # the shipped "slow or collapse" claim: a steps-ratio part counts no outcome
    assert claims.failure_outcomes(SHIPPED.claims[1].rule) == ["blank_collapse"]


def test_unseen_failures_needs_runs_in_the_claims_cells():
    trials = planted_trials(null_model, 2, 0)
    unseen = claims.unseen_failures(SHIPPED, trials)
    assert unseen == {"weak_augmentation_collapses": ["blank_collapse"],
                      "low_lr_slow_or_collapse": ["blank_collapse"],
                      "tiny_eps_explodes": ["diverged", "exploding", "exploded"],
                      "official_setting_stable": ["blank_collapse", "diverged", "exploding",
                                                  "exploded"],
                      "augmentation_interacts_with_optimizer": ["blank_collapse", "diverged",
                                                                "exploding", "exploded"]}
    # no run in a claim's cells: nothing was seen, but nothing could have been
    assert claims.unseen_failures(SHIPPED, trials.iloc[:0]) == {}
    failed = trials.copy()
    failed.loc[(failed["eps"] == 1e-8) & (failed["seed"] == 0), "outcome"] = "diverged"
    assert "tiny_eps_explodes" not in claims.unseen_failures(SHIPPED, failed)
    flagged = trials.assign(final_exploded=0.0)
    flagged.loc[(flagged["eps"] == 1e-8) & (flagged["seed"] == 0), "final_exploded"] = 1.0
    assert "tiny_eps_explodes" not in claims.unseen_failures(SHIPPED, flagged)


def test_claims_over_training_rows_and_the_empty_table():
    trials = planted_trials(null_model, 2, 0).assign(budget_steps=100.0)
    curves = pd.concat([pd.DataFrame({"trial_id": t, "step": [50, 100], "val_per": [0.5, 0.3],
                                      "outcome": ["stable", "stable"]})
                        for t in trials["trial_id"]], ignore_index=True)
    table = claims.claims_over_training(only("weak_augmentation_collapses"), trials, curves,
                                        [0.5, 1.0])
    assert list(table.index) == [0, 1] and list(table["fraction"]) == [0.5, 1.0]
    empty = claims.claims_over_training(SHIPPED, trials, curves.iloc[:0], [0.5])
    assert empty.empty and list(empty.columns) == [*claims.COLUMNS, "fraction"]


def test_one_evaluation_in_the_last_quarter_is_too_few_to_judge():
    rows = pd.DataFrame([{"id": "c", "fraction": 1.0, "verdict": "supported",
                          "estimate": 0.2, "null": 0.0}])
    assert claims.held_late(rows, "c") == (claims.TOO_FEW, "1 evaluation(s) in the last "
                                           "quarter of training; at least 2 are needed")


@pytest.mark.parametrize(("claim_id", "seeds"), [("weak_augmentation_collapses", 10),
                                                  ("augmentation_interacts_with_optimizer", 30),
                                                  ("official_setting_stable", 30)])
def test_projected_seeds_to_decide_are_exactly_what_the_rule_needs(claim_id, seeds):
    """With no failure anywhere every paired difference is 0: the verdict is final at
    exactly n + to_decide seeds and not one seed earlier."""
    row = verdicts(only(claim_id), planted_trials(null_model, seeds, 0)).loc[claim_id]
    assert row["verdict"] == "inconclusive"
    if claim_id.startswith("weak"):
        assert row["reason"] == ("the interval contains both no effect (0) and the claimed "
                                 "size (0.25)")
    need = seeds + int(row["to_decide"])
    before = verdicts(only(claim_id), planted_trials(null_model, need - 1, 0)).loc[claim_id]
    after = verdicts(only(claim_id), planted_trials(null_model, need, 0)).loc[claim_id]
    final = "supported" if claim_id == "official_setting_stable" else "refuted"
    assert (before["verdict"], after["verdict"]) == ("inconclusive", final)
    assert after["to_decide"] == 0


def test_interaction_reasons_and_description_name_each_moderator():
    claim_id = "augmentation_interacts_with_optimizer"
    row = verdicts(only(claim_id), planted_trials(augmentation_needs_large_eps, 20, 0)
                   ).loc[claim_id]
    parts = row["test"].split(" | ")
    assert row["test"].startswith("all of 2 parts (support at alpha, exclusion at alpha/2)")
    assert parts[0].endswith("minus with (eps=1e-08), paired by seed")
    assert parts[1].endswith("minus with (lr_max=0.002), paired by seed")
    assert row["effect"].startswith("eps=1e-08: +1.00 [") and " | lr_max=0.002: " in row["effect"]
    assert row["claim"] == " ".join(SHIPPED.claims[4].text.split())
    refuted = verdicts(only(claim_id), planted_trials(null_model, 44, 0)).loc[claim_id]
    assert refuted["reason"] == (
        "refuted: the interval excludes the claimed size (0.25) and contains no effect | "
        "refuted: the interval excludes the claimed size (+-0.25 beyond 0) and contains no "
        "effect")


def test_any_of_reports_the_part_that_decided():
    collapse = {"test": "rate_difference", "outcomes": ["blank_collapse"], "cell": WEAK,
                "reference": OFFICIAL, "direction": "increase", "margin": 0.25}
    diverge = {**collapse, "outcomes": ["diverged"]}
    trials = planted_trials(diagnosis_model, 24, 0)
    both = verdicts(custom({"id": "c", "text": "x", "test": "any_of",
                            "parts": [diverge, collapse]}), trials).loc["c"]
    alone = verdicts(custom({"id": "c", "text": "x", **collapse}), trials, ).loc["c"]
    assert both["verdict"] == "supported"
    # the headline numbers are the collapse part's (the part that decided), not the first's
    assert (both["estimate"], both["ci_low"], both["ci_high"]) == pytest.approx(
        (alone["estimate"], alone["ci_low"], alone["ci_high"]), abs=0.1)
    assert both["estimate"] > 0.5
    assert both["effect"].count(" | ") == 1 and both["effect"].split(" | ")[0].startswith(
        "+0.00 [")


def test_a_loaded_claims_file_knows_its_path_and_hash(tmp_path):
    path = tmp_path / "mine.yaml"
    text = claims.DEFAULT_CLAIMS.read_text().replace("margin: 0.25", "margin: 0.3", 1)
    path.write_text(text)
    loaded = claims.load_claims(path)
    assert loaded.path == str(path)
    assert loaded.sha256 == hashlib.sha256(text.encode()).hexdigest()
    path.write_text(yaml.safe_dump({"claims": [{"id": "c1", "text": "x", "test": "vibes"}]}))
    with pytest.raises(UserError) as err:
        claims.load_claims(path)
    assert str(err.value).startswith(str(path))


def test_a_run_reaching_the_threshold_exactly_has_reached_it():
    steps, per = np.array([100, 200, 300]), np.array([0.5, 0.25, 0.2])
    assert claims.steps_to_reach((steps, per), 0.25) == 200
    assert claims.steps_to_reach((steps, per), 0.1) == math.inf


def _reference_log_capital(x01, m, alpha, c=0.75):
    """Waudby-Smith & Ramdas (2024) hedged capital with the predictable plug-in bet
    (their eq. 26), written as a plain loop over observations, for one candidate m."""
    mu, var, plus, minus, path = 0.5, 0.25, 1.0, 1.0, []
    for t, x in enumerate(x01, start=1):
        lam = math.sqrt(2 * math.log(2 / alpha) / (var * t * math.log(1 + t)))
        plus *= 1 + min(lam, c / m) * (x - m)
        minus *= 1 - min(lam, c / (1 - m)) * (x - m)
        path.append(math.log(max(0.5 * plus, 0.5 * minus)))
        # the running estimates after observation t (used by the next bet)
        var = (var * t + (x - mu) ** 2) / (t + 1)  # sums distances from the mean before x
        mu = (mu * t + x) / (t + 1)
    return np.array(path)


@pytest.mark.parametrize("m", [0.1, 0.3, 0.7])
def test_capital_path_matches_the_papers_recursion(m):
    x01 = np.array([1.0, 0.0, 1.0, 0.8, 0.2, 1.0, 0.9])
    ours = sequential.log_capital_path(x01, np.array([m]), 0.05)[:, 0]
    np.testing.assert_allclose(ours, _reference_log_capital(x01, m, 0.05), rtol=1e-12)


def test_seven_ones_show_a_mean_above_one_half_six_do_not():
    # Every bet is capped at 0.75/0.5 = 1.5: each 1 multiplies the up-bettor's capital by
    # 1.75; 1/2 * 1.75^7 = 25.1 >= 1/0.05 = 20 > 1/2 * 1.75^6 = 14.4
    assert sequential.mean_is_beyond(np.ones(7), 0.5) == (False, True)
    assert sequential.mean_is_beyond(np.ones(6), 0.5) == (False, False)
    assert sequential.mean_is_beyond(np.zeros(7), 0.5) == (True, False)
    assert sequential.mean_is_beyond(np.zeros(0), 0.5) == (False, False)


def test_confidence_sequences_of_no_and_one_observation():
    empty = sequential.mean_cs([], -1.0, 1.0)
    assert math.isnan(empty.estimate) and (empty.low, empty.high, empty.n) == (-1.0, 1.0, 0)
    assert not empty.excludes_below(-2.0) and not empty.excludes_above(2.0)
    one = sequential.mean_cs([0.5], -1.0, 1.0)
    assert one.n == 1 and one.estimate == 0.5 and one.low == -1.0 and one.high == 1.0
    # one observation can already decide, if its interval says so
    decided = sequential.Interval(0.0, -0.2, 0.1, 1)
    assert decided.excludes_above(0.2) and decided.excludes_below(-0.3)
    nothing = sequential.median_cs([])
    assert math.isnan(nothing.estimate) and (nothing.low, nothing.high) == (-math.inf,
                                                                           math.inf)


def test_a_mean_between_grid_points_keeps_the_grid_points_around_it():
    cs = sequential.mean_cs(np.full(3000, 0.0005), 0.0, 1.0)
    assert cs.n == 3000 and cs.low <= 0.0005 <= cs.high
    # 3000 identical values exclude every grid point (0.001 apart) beyond its neighbours
    assert (cs.low, cs.high) == (0.0, pytest.approx(0.002))


def test_a_conjunction_supports_at_the_whole_alpha_per_part():
    """Intersection-union: each part at alpha, so all_of supports exactly when every part
    alone would."""
    part = {"test": "interaction", "outcomes": ["blank_collapse"], "base": OFFICIAL,
            "change": {"white_noise_std": 0.25, "constant_offset_std": 0.05},
            "moderator": {"eps": 1e-8}, "direction": "increase", "margin": 0.25}
    # 18 seeds: supported at alpha, not yet at alpha/2.
    trials = planted_trials(augmentation_needs_large_eps, 18, 0)
    alone = verdicts(custom({"id": "one", "text": "x", **part}), trials).loc["one"]
    twice = verdicts(custom({"id": "two", "text": "x", "test": "all_of",
                             "parts": [part, part]}), trials).loc["two"]
    assert alone["verdict"] == twice["verdict"] == "supported"
    assert (alone["ci_low"], alone["ci_high"]) == (twice["ci_low"], twice["ci_high"])


def test_rate_claims_need_no_per_column():
    trials = planted_trials(diagnosis_model, 20, 0).drop(columns="final_val_per")
    row = verdicts(only("weak_augmentation_collapses"), trials).loc[
        "weak_augmentation_collapses"]
    assert row["verdict"] == "supported"




def test_an_effect_between_zero_and_the_margin_is_smaller_than_claimed_never_supported():
    """+0.12 more collapse with weak augmentation (24 of 200 seeds, none at the official
    setting): an effect is shown, the claimed +0.25 is excluded."""
    trials = planted_trials(null_model, 200, 0)
    weak = np.isclose(trials["white_noise_std"], 0.25) & np.isclose(trials["eps"], 0.1) \
        & np.isclose(trials["lr_max"], 0.005)
    trials.loc[weak & (trials["seed"] % 25 < 3), "outcome"] = "blank_collapse"
    row = verdicts(only("weak_augmentation_collapses"), trials).loc[
        "weak_augmentation_collapses"]
    assert row["estimate"] == pytest.approx(0.12)
    assert row["verdict"] == "smaller_than_claimed"
    assert row["ci_low"] > 0 and row["ci_high"] < 0.25
    # at every smaller number of seeds the verdict is never SUPPORTED
    for n in range(5, 200, 5):
        early = verdicts(only("weak_augmentation_collapses"), trials[trials["seed"] < n])
        assert early.loc["weak_augmentation_collapses", "verdict"] != "supported"


@pytest.mark.parametrize(("low", "high", "direction", "expected"), [
    (0.3, 0.6, "increase", "supported"),
    (0.05, 0.2, "increase", "smaller_than_claimed"),
    (-0.1, 0.2, "increase", "refuted"),
    (-0.5, -0.1, "increase", "refuted"),
    (0.1, 0.3, "increase", "inconclusive"),
    (-0.6, -0.3, "decrease", "supported"),
    (-0.2, -0.05, "decrease", "smaller_than_claimed"),
    (-0.6, -0.3, "either", "supported"),
    (0.3, 0.6, "either", "supported"),
    (0.05, 0.2, "either", "smaller_than_claimed"),
    (-0.2, 0.2, "either", "refuted"),
    (-0.3, 0.2, "either", "inconclusive"),
])
def test_judge_reads_the_four_regions_off_the_interval(low, high, direction, expected):
    cs = sequential.Interval(estimate=(low + high) / 2, low=low, high=high, n=10)
    size = claims.claimed_size(0.0, 0.25, direction)
    assert claims.judge(cs, 0.0, size, direction).verdict == expected
    assert claims.judge(sequential.Interval(math.nan, -1, 1, 0), 0.0, size, direction
                        ).verdict == "inconclusive"


def test_verdict_regions_are_disjoint_and_final_along_any_sequence():
    """Along a sequence of observations the running-intersection CS only shrinks, so once a
    verdict is final it never becomes another one, and SUPPORTED and an excluded size
    never hold together."""
    rng = np.random.default_rng(5)
    for effect in (0.0, 0.12, 0.25, 0.5):
        x = (rng.random(120) < 0.2 + effect).astype(float) - (rng.random(120) < 0.2)
        seen = []
        for n in range(1, 121, 7):
            cs = sequential.mean_cs(x[:n], -1, 1, 0.05, (0.0, 0.25))
            evidence = claims.judge(cs, 0.0, 0.25, "increase")
            assert not (evidence.size_shown and evidence.size_excluded)
            seen.append(evidence.verdict)
        final = [v for v in seen if v != "inconclusive"]
        # at most one change from refuted to smaller (an effect shown later), never back
        assert final == sorted(final, key=["refuted", "smaller_than_claimed",
                                           "supported"].index)
        assert not ({"supported"} & set(final) and {"refuted", "smaller_than_claimed"}
                    & set(final))


def test_per_interaction_is_decided_by_the_median_of_per_seed_differences():
    """Weak augmentation lowers PER by 0.06 at eps 0.1 only (a difference of differences of
    -0.06 on both moderators); 7 seeds all beyond -0.02 decide it at alpha, per part."""
    rows = []
    for cell in planted_trials(null_model, 1, 0)[list(GRID)].to_dict("records"):
        for seed in range(8):
            weak = cell["white_noise_std"] < 0.5
            big = cell["eps"] > 1e-3 and cell["lr_max"] > 0.003
            per = 0.25 - (0.06 if weak and big else 0.0) + 0.001 * seed
            rows.append({**cell, "seed": seed, "trial_id": f"t{len(rows)}",
                         "status": "finished", "outcome": "stable", "final_val_per": per,
                         "budget_steps": 100.0})
    trials = pd.DataFrame(rows)
    claim_id = "augmentation_interacts_on_per"
    row = verdicts(only(claim_id), trials).loc[claim_id]
    assert row["verdict"] == "supported"
    assert row["estimate"] == pytest.approx(-0.06) and row["n"] == 8
    assert row["effect"].startswith("eps=1e-08: -0.060 [")
    six = verdicts(only(claim_id), trials[trials["seed"] < 6]).loc[claim_id]
    assert six["verdict"] == "inconclusive"
    seven = verdicts(only(claim_id), trials[trials["seed"] < 7]).loc[claim_id]
    assert seven["verdict"] == "supported"
    # no dependence anywhere: a part's size is excluded once the median sequence
    # bounds the differences inside +-0.02 at alpha/2 (8 seeds)
    flat = trials.assign(final_val_per=0.25 + 0.001 * trials["seed"])
    assert verdicts(only(claim_id), flat[flat["seed"] < 7]).loc[claim_id, "verdict"] \
        == "inconclusive"
    assert verdicts(only(claim_id), flat).loc[claim_id, "verdict"] == "refuted"


def test_an_empty_interval_gives_no_verdict():
    """20 zeros then 20 ones: no constant mean fits the sequence, every candidate is
    excluded; the verdict is not read from the sample mean (0.5, beyond +0.25)."""
    x = np.r_[np.zeros(20), np.ones(20)]
    cs = sequential.mean_cs(x, -1, 1, 0.05, (0.0, 0.25))
    assert cs.empty and cs.low == cs.high == 0.5
    evidence = claims.judge(cs, 0.0, 0.25, "increase")
    assert evidence.verdict == "inconclusive"
    assert claims.reason_for(evidence, cs, 0.0, 0.25, "increase").startswith(
        "the interval is empty")


def test_edge_cases_of_the_sequences_the_verdicts_rest_on():
    # values outside the declared range are a bug in the caller, on either side
    for bad in ([-0.5], [1.5]):
        with pytest.raises(ValueError, match="outside the declared range"):
            sequential.mean_cs(np.array(bad), 0.0, 1.0)
    # a decision point outside the range does not stretch the interval past it
    cs = sequential.mean_cs(np.full(30, 0.5), 0.0, 1.0, 0.05, (2.0, -1.0))
    assert 0.0 <= cs.low < 0.5 < cs.high <= 1.0
    one = sequential.mean_cs(np.array([0.5]), 0.0, 1.0, 0.05, (2.0, -1.0))
    assert (one.low, one.high) == (0.0, 1.0)  # one observation bounds nothing
    # no observations in k sequences: nothing shown for any of them
    below, above = sequential.mean_is_beyond(np.zeros((0, 3)), 0.5)
    assert below.shape == above.shape == (3,) and not below.any() and not above.any()
    # a median that jumps: every candidate excluded at some point, no verdict from it
    rng = np.random.default_rng(0)
    jump = sequential.median_cs(np.r_[rng.uniform(-2, -1, 40), rng.uniform(1, 2, 200)])
    assert jump.empty and jump.low == jump.high == jump.estimate > 1


def _per_pairs(differences, base: float = 0.3) -> pd.DataFrame:
    """Two cells of one factor f, one finished run each per seed, final PER `base` at f=0
    and base + difference at f=1."""
    rows = []
    for seed, d in enumerate(differences):
        for level, per in ((0, base), (1, base + d)):
            rows.append({"f": level, "seed": seed, "trial_id": f"t{level}_{seed}",
                         "status": "finished", "outcome": "stable", "final_val_per": per})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("difference, verdict", [
    (+0.2, "supported"), (-0.2, "supported"), (0.0, "refuted"), (+0.02, "smaller_than_claimed"),
])
def test_per_difference_reads_cell_minus_reference_and_decides_at_seven_seeds(difference,
                                                                              verdict):
    rule = custom({"id": "c", "text": "x", "test": "per_difference", "cell": {"f": 1},
                   "reference": {"f": 0}, "direction": "either", "margin": 0.05})
    six = verdicts(rule, _per_pairs([difference] * 6)).loc["c"]
    seven = verdicts(rule, _per_pairs([difference] * 7)).loc["c"]
    assert six["verdict"] == "inconclusive" and seven["verdict"] == verdict
    assert seven["estimate"] == pytest.approx(difference)
    increase = custom({"id": "c", "text": "x", "test": "per_difference", "cell": {"f": 1},
                       "reference": {"f": 0}, "direction": "increase", "margin": 0.05})
    expected = "supported" if difference > 0.05 else "refuted"
    assert verdicts(increase, _per_pairs([difference] * 7)).loc["c"]["verdict"] == (
        expected if difference != 0.02 else "smaller_than_claimed")
