"""The statistics: planted interactions are found, absent ones are not, and nothing crashes
on separation or a constant outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2
from support.experiments import planted_trials
from firthmodels import FirthLogisticRegression

from analysis import stats
from analysis.load import Axis

AXES = [Axis("eps", "optim.eps", (1e-8, 0.1), None),
        Axis("lr_max", "optim.lr_max", (0.002, 0.005), None),
        Axis("white_noise_std", "augment.white_noise_std", (0.25, 1.0), None),
        Axis("constant_offset_std", "augment.constant_offset_std", (0.05, 0.2), None)]


def _logit(x: float) -> float:
    return 1 / (1 + np.exp(-x))


def additive_model(cell, rng):
    """Main effects of every axis on PER and on collapse, no interaction anywhere."""
    from support.experiments import Planted

    big_eps, strong = cell["eps"] > 1e-3, cell["white_noise_std"] > 0.5
    high_lr, offset = cell["lr_max"] > 0.003, cell["constant_offset_std"] > 0.1
    p_collapse = _logit(-1.0 + 1.0 * big_eps - 1.0 * strong + 0.5 * high_lr)
    if rng.random() < p_collapse:
        return Planted("blank_collapse", 1.0)
    per = 0.30 + 0.03 * big_eps - 0.04 * strong - 0.02 * high_lr - 0.01 * offset
    return Planted("stable", float(rng.normal(per, 0.02)))


def interaction_model(cell, rng):
    """eps changes what augmentation does, both for PER and for collapse."""
    from support.experiments import Planted

    big_eps, strong = cell["eps"] > 1e-3, cell["white_noise_std"] > 0.5
    p_collapse = (0.05 if strong else 0.8) if big_eps else 0.5
    if rng.random() < p_collapse:
        return Planted("blank_collapse", 1.0)
    per = 0.30 - (0.10 if big_eps and strong else 0.0)
    return Planted("stable", float(rng.normal(per, 0.02)))


def separated_model(cell, rng):
    from support.experiments import Planted

    weak = cell["white_noise_std"] < 0.5
    if cell["eps"] > 1e-3 and weak:
        return Planted("blank_collapse", 1.0)
    return Planted("stable", float(rng.normal(0.3, 0.02)))


def prepared(model, n_seeds: int, seed: int):
    return stats.factorize(planted_trials(model, n_seeds, seed), AXES)


def eps_noise_tests(frame, factors):
    by_axis = {f.axis: f for f in factors}
    pair = (by_axis["eps"], by_axis["white_noise_std"])
    return (stats.anova_interaction(frame, pair, factors),
            stats.logistic_interaction(frame, pair, factors, "collapse"))


def test_planted_interaction_is_detected():
    draws, anova_hits, glm_hits = 10, 0, 0
    for seed in range(draws):
        frame, factors = prepared(interaction_model, n_seeds=6, seed=seed)
        anova, glm = eps_noise_tests(frame, factors)
        anova_hits += anova["p_value"] < stats.ALPHA
        glm_hits += glm["p_value"] < stats.ALPHA
    assert anova_hits / draws >= 0.9 and glm_hits / draws >= 0.9
    assert anova["partial_eta2"] > 0.2
    assert glm["method"].startswith("Firth")
    # the row carries the penalised LR statistic its p-value comes from (chi2, 1 df)
    assert glm["df"] == "1" and glm["statistic"] > 0
    assert glm["p_value"] == pytest.approx(chi2.sf(glm["statistic"], 1))


def test_no_interaction_false_positive_rate():
    anova_hits = glm_hits = 0
    draws = 40
    for seed in range(draws):
        frame, factors = prepared(additive_model, n_seeds=3, seed=100 + seed)
        anova, glm = eps_noise_tests(frame, factors)
        assert np.isfinite(anova["p_value"]) and np.isfinite(glm["p_value"])
        anova_hits += anova["p_value"] < stats.ALPHA
        glm_hits += glm["p_value"] < stats.ALPHA
    assert anova_hits / draws <= 0.15
    assert glm_hits / draws <= 0.15


def test_perfect_separation_is_reported_not_fatal():
    frame, factors = prepared(separated_model, n_seeds=3, seed=0)
    _, glm = eps_noise_tests(frame, factors)
    assert np.isfinite(glm["p_value"])
    assert glm["separation"] == "yes"
    assert "separation" in glm["note"]


def test_constant_outcome_reports_no_variation():
    from support.experiments import null_model

    frame, factors = prepared(null_model, n_seeds=2, seed=0)
    tests = stats.holm_secondary(stats.interaction_tests(frame, factors, confirmatory=True))
    binary = tests[tests["endpoint"] != "per"]
    assert binary["note"].str.startswith("no variation").all()
    assert binary["p_value"].isna().all() and binary["p_holm"].isna().all()
    assert tests.loc[tests["endpoint"] == "per", "p_value"].notna().all()


def test_holm_adjusts_across_pairs_and_endpoints():
    frame, factors = prepared(interaction_model, n_seeds=3, seed=2)
    tests = stats.holm_secondary(stats.interaction_tests(frame, factors, confirmatory=True))
    assert len(tests) == 6 * 4
    tested = tests["p_value"].notna()
    assert (tests.loc[tested, "p_holm"] >= tests.loc[tested, "p_value"]).all()


def test_firth_lrt_matches_firthmodels_single_coefficient_lrt():
    rng = np.random.default_rng(3)
    n = 60
    X = np.column_stack([np.ones(n), rng.choice([-1.0, 1.0], n), rng.normal(size=n)])
    X = np.column_stack([X, X[:, 1] * X[:, 2]])
    y = (rng.random(n) < _logit(0.4 + X[:, 1] + 0.7 * X[:, 3])).astype(float)
    ours = stats.firth_lrt(X, y, [3])
    reference = FirthLogisticRegression(fit_intercept=False, gtol=1e-8, xtol=1e-8,
                                        max_iter=200).fit(X, y).lrt(3)
    assert ours.p_value == pytest.approx(reference.lrt_pvalues_[3], rel=1e-4)
    assert ours.converged and not ours.separation


def test_a_firth_fit_that_fails_says_why_and_reports_no_test():
    X = np.column_stack([np.ones(6), [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]])
    test = stats.firth_lrt(X, np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0]), [1])
    assert np.isnan(test.p_value) and np.isnan(test.chi2) and test.df == 1
    assert not test.converged and not test.separation and test.n_infinite == 0
    assert test.note.startswith("fit failed: ")


def test_cell_status_at_the_threshold_is_uncertain_on_both_sides():
    t = stats.STABLE_RATE_THRESHOLD
    assert stats.cell_status(t, 1.0) == "uncertain"  # stable needs the low end above it
    assert stats.cell_status(0.0, t) == "uncertain"  # unstable needs the high end below
    assert stats.cell_status(t + 1e-9, 1.0) == "stable"
    assert stats.cell_status(0.0, t - 1e-9) == "unstable"
    assert stats.cell_status(np.nan, 1.0) == "no runs"


def test_grid_shares_exact_decomposition():
    a = np.array([0.0, 1.0])[:, None]
    b = np.array([0.0, 2.0])[None, :]
    additive = a + b
    shares = stats.grid_shares(additive, ["a", "b"])
    assert shares["a x b"] == pytest.approx(0.0, abs=1e-12)
    assert shares["a"] == pytest.approx(0.2) and shares["b"] == pytest.approx(0.8)
    pure = np.array([[1.0, -1.0], [-1.0, 1.0]])
    assert stats.grid_shares(pure, ["a", "b"])["a x b"] == pytest.approx(1.0)
    assert stats.grid_shares(np.zeros((2, 2)), ["a", "b"]) == {}


def test_fanova_exact_on_grid_and_surrogate_otherwise():
    frame, factors = prepared(interaction_model, n_seeds=3, seed=4)
    exact = stats.fanova(frame, factors, exact_allowed=True)
    collapse = exact[exact["response"] == "collapse"].set_index("term")
    assert collapse["method"].str.startswith("exact").all()
    assert collapse["share"].sum() == pytest.approx(1.0)
    assert collapse.loc["eps x white_noise_std", "share"] > 0.1
    surrogate = stats.fanova(frame, factors, exact_allowed=False).set_index("response")
    assert surrogate.loc["collapse", "method"].str.contains("random-forest").all()
    assert surrogate.loc["collapse", "oob_r2"].notna().all()
    # No run of this model diverges: nothing to decompose.
    assert surrogate.loc["divergence", "note"] == "no variation"


def test_continuous_axes_are_binned_at_quantiles():
    rng = np.random.default_rng(0)
    trials = pd.DataFrame({"eps": 10 ** rng.uniform(-8, 0, 40),
                           "lr_max": rng.choice([0.002, 0.005], 40)})
    axes = [Axis("eps", "optim.eps", None, "loguniform"),
            Axis("lr_max", "optim.lr_max", (0.002, 0.005), None)]
    frame, factors = stats.factorize(trials, axes)
    eps = factors[0]
    assert eps.binned and len(eps.levels) == stats.N_BINS
    assert frame[eps.column].value_counts().min() >= 40 // stats.N_BINS - 1
    assert not factors[1].binned
    assert "quantile bins" in stats.binning_notes(factors)[0]


def test_holm_adjusts_every_secondary_test_with_known_values():
    # Holm by hand: sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04, made
    # monotone -> 0.03, 0.06, 0.06; an untested row stays NaN.
    tests = pd.DataFrame({"p_value": [0.01, 0.04, 0.03, np.nan], "role": "secondary"})
    adjusted = stats.holm_secondary(tests)["p_holm"].to_numpy()
    np.testing.assert_allclose(adjusted[:3], [0.03, 0.06, 0.06])
    assert np.isnan(adjusted[3])


def test_cell_summary_rates_and_intervals():
    frame, factors = prepared(separated_model, n_seeds=4, seed=0)
    eps = factors[0]
    cells = stats.cell_summary(frame, [eps.column]).set_index(eps.column)
    small = cells.loc["1e-08"]
    assert small["n"] == 32 and small["count_stable"] == 32
    assert small["lo_stable"] > 0.85 and small["hi_stable"] == pytest.approx(1.0)
    big = cells.loc["0.1"]
    assert big["rate_blank_collapse"] == pytest.approx(0.5)
    assert big["status"] == "uncertain" and small["status"] == "stable"
    assert big["per_lo"] <= big["per_median"] <= big["per_hi"]


def test_holm_known_answer_and_only_secondary_rows():
    """Holm (1979) by hand: sorted p 0.01, 0.03, 0.04 of three tests -> 3*0.01 = 0.03,
    max(0.03, 2*0.03) = 0.06, max(0.06, 1*0.04) = 0.06; untested rows stay NaN."""
    p = pd.Series([0.01, 0.04, 0.03, np.nan])
    assert stats.holm(p).tolist()[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(stats.holm(p).iloc[3])
    tests = pd.DataFrame({"p_value": [0.01, 0.04, 0.03, 0.001],
                          "role": ["secondary", "secondary", "secondary", "primary"]})
    adjusted = stats.holm_secondary(tests)
    assert adjusted["p_holm"].tolist()[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(adjusted["p_holm"].iloc[3])  # the primary test is not in the family


def test_cell_summary_without_levels_is_one_row_of_every_run():
    frame, factors = prepared(separated_model, n_seeds=2, seed=0)
    whole = stats.cell_summary(frame, [])
    by_eps = stats.cell_summary(frame, [factors[0].column])
    assert len(whole) == 1 and whole["n"].iloc[0] == by_eps["n"].sum() == len(frame)
    assert whole["count_stable"].iloc[0] == by_eps["count_stable"].sum()


TWO_BY_TWO = {"eps": [1e-8, 0.1], "lr_max": [0.002, 0.005], "white_noise_std": [1.0],
              "constant_offset_std": [0.2]}


def eps_raises_per(cell, rng):
    from support.experiments import Planted

    return Planted("stable", float(0.3 + 0.1 * (cell["eps"] > 1e-3) + rng.normal(0, 0.02)))


def test_interaction_rows_say_when_the_model_has_no_residual_degrees_of_freedom():
    # one run per cell of a 2 x 2 design: 4 runs, 4 parameters with the interaction
    frame, factors = stats.factorize(planted_trials(eps_raises_per, 1, 0, grid=TWO_BY_TWO),
                                     AXES)
    tests = stats.interaction_tests(frame, factors, confirmatory=True).set_index("endpoint")
    per = tests.loc["per"]
    assert (per["pair"], per["a"], per["b"]) == ("eps x lr_max", "eps", "lr_max")
    assert per["note"] == "too few runs for the model" and np.isnan(per["p_value"])
    assert per["method"] == stats.PER_METHOD and per["n"] == 4
    assert tests.loc["collapse", "note"] == "no variation (every run avoided blank collapse)"
    assert tests.loc["collapse", "method"] == stats.FIRTH_METHOD

    def collapses_at_big_eps_low_lr(cell, rng):
        from support.experiments import Planted

        big, low = cell["eps"] > 1e-3, cell["lr_max"] < 0.003
        return Planted("blank_collapse" if big and low else "stable", 0.3)

    frame, factors = stats.factorize(
        planted_trials(collapses_at_big_eps_low_lr, 1, 0, grid=TWO_BY_TWO), AXES)
    tests = stats.interaction_tests(frame, factors, confirmatory=True).set_index("endpoint")
    assert tests.loc["collapse", "note"] == "too few runs for the model"
    assert np.isnan(tests.loc["collapse", "p_value"])
    # fewer than two varied axes: no pair, the same columns
    none = stats.interaction_tests(frame, factors[:1], confirmatory=True)
    assert none.empty and list(none.columns[:4]) == ["pair", "a", "b", "endpoint"]


def test_cell_summary_counts_every_status():
    frame = prepared(separated_model, n_seeds=2, seed=0)[0].copy()
    frame.loc[frame.index[:3], "status"] = "stopped_early"
    frame.loc[frame.index[3:5], "status"] = "errored"
    cells = stats.cell_summary(frame, [])
    row = cells.iloc[0]
    assert row["n_total"] == len(frame)
    assert (row["n_stopped_early"], row["n_errored"]) == (3, 2)
    assert row["n_finished"] + row["n_diverged"] == len(frame) - 5
    assert row["n"] == len(frame) - 5  # rates over full-budget runs only
    assert row["per_n"] == (frame.loc[frame.index[5:], "outcome"] == "stable").sum()


def test_fanova_of_one_axis_and_of_sampled_axes_finds_the_axis_that_matters():
    frame, factors = stats.factorize(planted_trials(eps_raises_per, 3, 0, grid=TWO_BY_TWO),
                                     AXES)
    one = stats.fanova(frame, factors[:1], exact_allowed=True)
    per = one[one["response"] == "per"].set_index("term")
    assert per.loc["eps", "share"] > 0.9  # one axis is enough for a decomposition

    # random-search samples: continuous axes, binned; the surrogate's grid is quantiles
    rng = np.random.default_rng(0)
    n = 60
    eps, lr = 10 ** rng.uniform(-10, 0, n), 10 ** rng.uniform(-4, -1.5, n)
    sampled = pd.DataFrame({
        "eps": eps, "lr_max": lr, "seed": 0, "status": "finished", "outcome": "stable",
        "final_val_per": 0.2 + 0.05 * np.log10(eps) / -10 + rng.normal(0, 0.002, n),
        "median_eps_dominance": 0.9, "trial_id": [f"t{i}" for i in range(n)]})
    axes = [Axis("eps", "optim.eps", None, "loguniform"),
            Axis("lr_max", "optim.lr_max", None, "loguniform")]
    frame, factors = stats.factorize(sampled, axes)
    assert all(f.binned and f.values is None for f in factors)
    shares = stats.fanova(frame, factors, exact_allowed=False)
    per = shares[shares["response"] == "per"].set_index("term")
    assert per.loc["eps", "share"] > 0.8 and per.loc["lr_max", "share"] < 0.1
    assert (per["note"] == "").all() and per["method"].str.startswith("random-forest").all()
    again = stats.fanova(frame, factors, exact_allowed=False)  # same seed, same numbers
    pd.testing.assert_frame_equal(shares, again)
    # under 10 runs and no complete grid: no surrogate, one row saying so
    few = stats.fanova(frame.iloc[:6], factors, exact_allowed=False)
    few_per = few[few["response"] == "per"].iloc[0]
    assert (few_per["method"], few_per["term"], few_per["n"]) == ("", "", 6)
    assert few_per["note"] == "too few runs for a surrogate" and np.isnan(few_per["share"])


def test_an_empty_cell_is_named_in_every_interaction_row():
    trials = planted_trials(eps_raises_per, 2, 0, grid=TWO_BY_TWO)
    gone = (trials["eps"] == 0.1) & (trials["lr_max"] == 0.002)
    frame, factors = stats.factorize(trials[~gone], AXES)
    tests = stats.interaction_tests(frame, factors, confirmatory=True)
    assert (tests["note"] == "1 empty eps x lr_max cell(s): interaction not estimable").all()


def test_levels_that_differ_only_in_float_noise_are_one_level():
    trials = planted_trials(eps_raises_per, 2, 0, grid=TWO_BY_TWO)
    trials.loc[trials.index[0], "eps"] = 0.1 + 1e-17  # 0.1 after a JSON round trip
    trials.loc[trials.index[1], "eps"] = 1e-8 * (1 + 1e-14)
    frame, factors = stats.factorize(trials, AXES)
    eps = next(f for f in factors if f.axis == "eps")
    assert len(eps.levels) == 2 and frame[eps.column].notna().all()
