"""The map's boundary and the lr/eps regime test: brackets, the interval-censored slope with
known answers (planted slopes 1 and 0, the separated pattern of the audit, uncensored data
where the interval is the t interval), the verdict, regimes by design, and the numbers
behind the boundary map."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from support.experiments import boundary_model, write_fake_experiment

from analysis import boundary, figures, report
from analysis.record import BoundarySpec

EPS = (1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 0.1, 1.0)
LR = (1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2, 3e-2)
REGIMES = {"large_eps": [1e-2, 0.1, 1.0], "small_eps": [1e-10, 1e-8, 1e-6]}
SPEC = BoundarySpec(regimes=REGIMES)
# The audit's pattern: the first fine lr_max is 1e-3 at eps <= 1e-2, 5e-3 at 0.1, 3e-2 at 1.
AUDIT = {1e-10: 5e-4, 1e-8: 5e-4, 1e-6: 5e-4, 1e-4: 5e-4, 1e-2: 5e-4, 0.1: 3e-3, 1.0: 2e-2}


def runs(boundary_lr, seeds: int = 2, lrs=LR, eps=EPS, wave: int = 1,
         dominance=None) -> pd.DataFrame:
    """Full-budget runs at every (eps, lr) x seed, failed (slow) below the boundary."""
    rows = []
    for e in eps:
        for lr in lrs(e) if callable(lrs) else lrs:
            for seed in range(seeds):
                fails = lr < boundary_lr(e, seed)
                rows.append({"eps": e, "lr_max": lr, "seed": seed, "status": "finished",
                             "outcome": "slow" if fails else "stable", "wave": wave,
                             "median_eps_dominance": (dominance or {}).get(
                                 e, 0.99 if e > 1e-3 else 0.01)})
    return pd.DataFrame(rows)


def near(b: float, factor: float = 1.1) -> tuple[float, ...]:
    """lr values bracketing b within factor**2, plus the grid (as refinement leaves it)."""
    return tuple(sorted({*LR, round(b / factor, 8), round(b * factor, 8)}))


def rows_of(result: boundary.BoundaryAnalysis) -> pd.DataFrame:
    return result.table.set_index("regime")


# --------------------------------------------------------------------------- brackets
@pytest.mark.parametrize(("values", "failures", "side", "expected"), [
    ([1e-4, 3e-4, 1e-3, 2e-3], [1, 1, 0, 0], "lower", (3e-4, 1e-3, True)),
    ([1e-4, 3e-4, 1e-3], [1, 1, 1], "lower", (1e-3, math.inf, True)),
    ([1e-4, 3e-4, 1e-3], [0, 0, 0], "lower", (0.0, 1e-4, True)),
    # a failure above a fine run: the stretch where both occur, flagged
    ([1e-4, 3e-4, 1e-3, 2e-3, 5e-3], [1, 0, 1, 0, 0], "lower", (3e-4, 1e-3, False)),
    ([1e-4, 3e-4, 1e-3, 2e-3], [0, 0, 1, 1], "upper", (3e-4, 1e-3, True)),
    ([1e-4, 3e-4], [1, 1], "upper", (0.0, 1e-4, True)),
    ([1e-4, 3e-4], [0, 0], "upper", (3e-4, math.inf, True)),
])
def test_bracket_of_one_column_and_seed(values, failures, side, expected):
    assert boundary.bracket(np.array(values), np.array(failures, dtype=bool), side) == expected


def test_brackets_use_the_presets_failure_and_full_budget_runs_only():
    frame = pd.DataFrame({
        "eps": [0.1] * 5, "lr_max": [1e-4, 1e-3, 1e-2, 3e-2, 1e-1], "seed": 0,
        "status": ["finished", "finished", "finished", "errored", "stopped_early"],
        "outcome": ["slow", "blank_collapse", "stable", None, None]})
    anything = boundary.brackets(frame, BoundarySpec(regimes=REGIMES)).iloc[0]
    assert (anything["low"], anything["high"]) == (1e-3, 1e-2)
    assert anything["n_runs"] == 3 and anything["regime"] == "large_eps"
    assert anything["tried"] == [1e-4, 1e-3, 1e-2]
    slow_only = boundary.brackets(frame, BoundarySpec(failed=["slow"])).iloc[0]
    assert (slow_only["low"], slow_only["high"]) == (1e-4, 1e-3)
    assert slow_only["regime"] is None


# --------------------------------------------------------------------------- the slope
def test_audit_pattern_is_separated_and_its_interval_holds_every_consistent_slope():
    # Every line through the grid's brackets at eps 0.01, 0.1, 1 has slope 0.5 to 1.
    for seeds in (2, 32):
        result = boundary.regime_test(runs(lambda e, s: AUDIT[e], seeds), SPEC)
        row = rows_of(result).loc["large_eps"]
        assert row["separated"] == "yes" and "separated" in row["note"]
        assert row["identified_low"] == pytest.approx(0.5, abs=1e-6)
        assert row["identified_high"] == pytest.approx(1.0, abs=1e-6)
        assert row["slope_low"] <= 0.5 + 1e-9 and row["slope_high"] >= 1.0 - 1e-9
    # Two seeds leave room below the band: the audit's verdict stays open.
    two = rows_of(boundary.regime_test(runs(lambda e, s: AUDIT[e], 2), SPEC))
    assert two.loc["large_eps", "slope_low"] < 0.5
    assert two.loc["large_eps", "verdict"] == "inconclusive"
    small = two.loc["small_eps"]
    assert small["verdict"] == "supported" and small["separated"] == "yes"
    assert small["identified_low"] == pytest.approx(-math.log10(1e-3 / 3e-4) / 4, abs=1e-6)


def planted(slope_large: float):
    return lambda e, s: 5e-4 if e <= 1e-4 else 2.5e-2 * e ** slope_large


@pytest.mark.parametrize("slope", [1.0, 0.0])
def test_planted_slope_is_recovered_once_the_brackets_are_narrow(slope):
    truth = planted(slope)
    result = boundary.regime_test(runs(truth, 2, lrs=lambda e: near(truth(e, 0))), SPEC)
    large, small = rows_of(result).loc["large_eps"], rows_of(result).loc["small_eps"]
    for row, expected in ((large, slope), (small, 0.0)):
        assert row["slope_low"] <= expected <= row["slope_high"]
        assert row["slope"] == pytest.approx(expected, abs=0.02)
        assert row["slope_high"] - row["slope_low"] < 0.2
    assert small["verdict"] == "supported"
    # Slope 1 lies in the large-eps band (0.5 to 2); slope 0 misses it.
    assert large["verdict"] == ("supported" if slope == 1.0 else "refuted")


def test_uncensored_data_give_the_t_interval_of_least_squares():
    # Brackets a hair wide are exact observations: the interval is the t interval of the
    # slope in log B ~ log eps + seed.
    rng = np.random.default_rng(4)
    rows = []
    for e in (1e-2, 0.1, 1.0):
        for seed, shift in enumerate((0.0, 0.3)):
            log_b = math.log(2.5e-2) + math.log(e) + shift + rng.normal(0, 0.25)
            rows.append({"eps": e, "seed": seed, "low": math.exp(log_b - 1e-5),
                         "high": math.exp(log_b + 1e-5), "log_b": log_b})
    table = pd.DataFrame(rows)
    fit = boundary.fit_regime(table, "large_eps", "eps")
    ols = smf.ols("log_b ~ np.log(eps) + C(seed)", data=table).fit()
    low, high = ols.conf_int().loc["np.log(eps)"]
    assert fit.slope == pytest.approx(ols.params["np.log(eps)"], abs=1e-3)
    assert (fit.slope_low, fit.slope_high) == pytest.approx((low, high), abs=2e-3)
    assert fit.identified is None  # no line passes through every (exact) observation
    # The band is the seed-average line with the t interval of its height.
    band = fit.band([0.1]).iloc[0]
    height = ols.t_test([1.0, 0.5, math.log(0.1)])  # intercept, seed 1 at half, log eps
    low, high = height.conf_int()[0]
    assert math.log(band["boundary"]) == pytest.approx(float(height.effect[0]), abs=1e-3)
    assert (math.log(band["low"]), math.log(band["high"])) == pytest.approx((low, high),
                                                                             abs=2e-3)


def test_threshold_is_the_likelihood_ratio_form_of_the_t_interval():
    # n = 6 brackets, p = 3 parameters: 6 log(1 + F(0.95; 1, 3) / 3), F = 10.128
    assert boundary.threshold(6, 3, 0.05) == pytest.approx(6 * math.log1p(10.128 / 3),
                                                           rel=1e-3)
    assert boundary.threshold(10_000, 3, 0.05) == pytest.approx(3.84, abs=0.01)
    assert math.isnan(boundary.threshold(3, 3, 0.05))


def test_noisy_seeds_are_not_separated_and_keep_their_slope():
    rng = np.random.default_rng(0)
    jitter = {(e, s): math.exp(rng.normal(0, 0.3)) for e in EPS for s in range(4)}
    truth = planted(1.0)
    result = boundary.regime_test(
        runs(lambda e, s: truth(e, s) * jitter[(e, s)], 4,
             lrs=lambda e: np.geomspace(1e-4, 0.1, 40)), SPEC)
    row = rows_of(result).loc["large_eps"]
    assert row["separated"] == "no" and math.isnan(row["identified_low"])
    assert row["slope_low"] < 1.0 < row["slope_high"]
    assert 0 < row["p_linearity"] <= 1


@pytest.mark.parametrize(("regime", "low", "high", "expected"), [
    ("large_eps", 0.6, 1.4, "supported"), ("large_eps", 0.5, 2.0, "supported"),
    ("large_eps", 0.45, 1.05, "inconclusive"), ("large_eps", -0.2, 0.4, "refuted"),
    ("large_eps", 2.1, 3.0, "refuted"), ("small_eps", -0.1, 0.2, "supported"),
    ("small_eps", 0.3, 0.9, "inconclusive"), ("small_eps", 0.6, 1.1, "refuted"),
    ("small_eps", -math.inf, 0.1, "inconclusive")])
def test_verdict_reads_the_interval_against_the_regimes_band(regime, low, high, expected):
    assert boundary.verdict(regime, low, high) == expected


def test_regimes_come_from_the_design_and_eps_dominance_only_checks_them():
    truth = planted(1.0)
    data = runs(truth, 2, lrs=lambda e: near(truth(e, 0)))
    wrong = runs(truth, 2, lrs=lambda e: near(truth(e, 0)),
                 dominance={1e-2: 0.2, 0.1: 0.3, 1.0: 0.99, 1e-10: 0.9})
    right, flipped = boundary.regime_test(data, SPEC), boundary.regime_test(wrong, SPEC)
    columns = ["slope", "slope_low", "slope_high", "verdict"]
    pd.testing.assert_frame_equal(right.table[columns], flipped.table[columns])
    assert rows_of(right).loc["large_eps", "eps_dominance_check"] == "3/3 columns agree"
    check = rows_of(flipped).loc["large_eps", "eps_dominance_check"]
    assert check.startswith("1/3 columns agree; not: eps 0.01 (0.20), eps 0.1 (0.30)")
    assert rows_of(flipped).loc["small_eps", "eps_dominance_check"].startswith("2/3")
    column = flipped.columns.set_index("eps")
    assert column.loc[1e-4, "regime"] == "" and column.loc[1e-4, "dominance_agrees"] == ""


def test_regime_rows_say_why_they_cannot_be_tested():
    one_column = runs(planted(1.0), 2, eps=(1e-2,))
    row = rows_of(boundary.regime_test(one_column, SPEC)).loc["large_eps"]
    assert row["note"].startswith("not testable: needs brackets in at least two columns")
    assert row["verdict"] == "inconclusive"
    assert rows_of(boundary.regime_test(one_column, SPEC)).loc["small_eps", "note"] == \
        "no full-budget runs in this regime's columns"
    # one seed, two columns: 2 brackets, 2 parameters, no residual freedom
    two = runs(planted(1.0), 1, eps=(1e-2, 0.1))
    note = rows_of(boundary.regime_test(two, SPEC)).loc["large_eps", "note"]
    assert note.startswith("not testable: 2 brackets leave no residual freedom")
    censored = runs(lambda e, s: 1.0, 2)  # every lr fails everywhere
    row = rows_of(boundary.regime_test(censored, SPEC)).loc["large_eps"]
    assert row["n_censored"] == 6 and row["verdict"] == "inconclusive"
    assert not (np.isfinite(row["slope_low"]) and np.isfinite(row["slope_high"]))
    assert row["separated"] == "n/a" and row["note"].startswith("every bracket is censored")


# --------------------------------------------------------------------------- the map
def test_boundary_map_data_holds_the_design_the_refinement_and_the_fitted_line():
    truth = planted(1.0)
    design = runs(truth, 2)
    refined = runs(truth, 2, lrs=lambda e: (truth(e, 0) / 1.1, truth(e, 0) * 1.1), wave=2)
    result = boundary.regime_test(pd.concat([design, refined]), SPEC)
    data = figures.boundary_map_data(pd.concat([design, refined]), result, n_band=5)
    assert len(data.cells) == 49 and (data.cells["n"] == 2).all()
    cell = data.cells.set_index(["eps", "lr_max"]).loc[(0.1, 2e-3)]
    assert cell["n_fine"] == 0 and cell["rate_fine"] == 0.0  # 2e-3 < 2.5e-3: fails
    assert data.cells.set_index(["eps", "lr_max"]).loc[(0.1, 5e-3), "rate_fine"] == 1.0
    assert len(data.refined) == len(refined)
    assert data.refined["failed"].sum() == 7 * 2  # the value below each boundary
    lines = data.lines.set_index(["regime", "eps"])
    for regime in ("large_eps", "small_eps"):
        ends = lines.loc[regime]
        assert list(ends.index) == pytest.approx(list(np.geomspace(
            min(REGIMES[regime]), max(REGIMES[regime]), 5)))
        for e, row in ends.iterrows():
            assert row["low"] <= truth(e, 0) <= row["high"]
            assert row["boundary"] == pytest.approx(truth(e, 0), rel=0.1)
    assert data.legend["large_eps"].endswith("SUPPORTED")
    assert "slow" in data.definition and "below" in data.definition
    figures.boundary_map(data)


def test_map_report_reads_the_boundary_from_every_wave_and_the_cells_from_the_design(
        tmp_path):
    def boundary_lr(e):
        return 5e-4 if e <= 1e-4 else 0.025 * e

    blocks = [{"eps": [1e-8, 1e-6, 1e-2, 0.1, 1.0],
               "lr_max": [1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2, 3e-2]},
              {"white_noise_std": [0.25, 1.0], "constant_offset_std": [0.05, 0.2]}]
    refined = [{"eps": e, "lr_max": round(boundary_lr(e) * f, 8), "white_noise_std": 1.0,
                "constant_offset_std": 0.2, "seed": s}
               for e in (1e-2, 0.1, 1.0) for f in (0.9, 1.1) for s in range(2)]
    spec = {"regimes": {"large_eps": [1e-2, 0.1, 1.0], "small_eps": [1e-8, 1e-6]}}
    path = write_fake_experiment(tmp_path, model=boundary_model(boundary_lr), n_seeds=2,
                                 blocks=blocks, boundary=spec, refined=refined, name="map")
    out = report.build_report(path)
    regime = pd.read_csv(out / "regime.csv").set_index("regime")
    assert regime.loc["large_eps", "n_brackets"] == 6
    assert regime.loc["large_eps", "slope_low"] <= 1.0 <= regime.loc["large_eps", "slope_high"]
    assert regime.loc["large_eps", "verdict"] == "supported"
    brackets = pd.read_csv(out / "boundary.csv")
    large = brackets[brackets["regime"] == "large_eps"]
    assert (large["high"] / large["low"]).max() == pytest.approx(1.1 / 0.9)
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells[cells["block"] == "eps x lr_max"]) == 5 * 7  # no refinement point
    columns = pd.read_csv(out / "boundary_columns.csv")
    assert (columns["dominance_agrees"].fillna("") != "no").all()
    assert (out / "figures" / "block1_stable_map.png").is_file()
    summary = (out / "summary.txt").read_text()
    assert "Regime large_eps (eps 0.01, 0.1, 1; prediction: slope 1, band 0.5 to 2): " \
           "SUPPORTED" in summary
    assert boundary.METHOD in summary
    assert "interval-censored" in (out / "report.html").read_text()


# --------------------------------------------------------------------------- width


def _width_runs(slope: float, seeds=(0, 1, 2), slow_low_lr: bool = False) -> pd.DataFrame:
    """Runs of a width ladder whose seed-s boundary is 0.015 * (fan-in / 896)**slope *
    1.1**s: above it a run diverges, below it trains to PER 0.10 (0.12 at the top fine lr);
    optionally the lowest lr is slow (PER 0.5, below the best lr: not the upper flank)."""
    from analysis.boundary.width import OFFICIAL_FANIN

    lrs = np.geomspace(1e-3, 0.5, 16)
    rows = []
    for fan in (896, 1792, 3584, OFFICIAL_FANIN):
        for seed in seeds:
            boundary_lr = 0.015 * (fan / 896) ** slope * 1.1 ** seed
            for k, lr in enumerate(lrs):
                fine = lr <= boundary_lr
                per = 0.10 if fine else 0.9
                if slow_low_lr and k == 0:
                    per = 0.5
                rows.append({"fan_in": fan, "lr_max": lr, "seed": seed,
                             "outcome": "stable" if fine else "diverged",
                             "final_val_per": per})
    return pd.DataFrame(rows)


def test_width_slope_recovers_a_planted_slope_and_places_the_official_boundary():
    from analysis.boundary.width import OFFICIAL_LR, analyse, summary_lines

    result = analyse(_width_runs(-1.0, slow_low_lr=True))
    fit = result.fit
    assert fit.slope_low <= -1.0 <= fit.slope_high
    assert fit.slope_high < -0.5  # a flat boundary (slope 0) is excluded
    # The slow lowest lr sits below the best lr: not on the upper flank, so every bracket
    # stays monotone.
    assert result.brackets["monotone"].all() and (result.brackets["censored"] == "").all()
    # Boundary at 7,168 about 0.015 / 8 * 1.1: below the official 0.005.
    assert result.official["high"] < OFFICIAL_LR
    assert "below the official lr_max" in "\n".join(summary_lines(result))
    flat = analyse(_width_runs(0.0)).fit
    assert flat.slope_low <= 0.0 <= flat.slope_high and flat.slope_low > -0.5


def test_width_counts_a_run_far_from_the_best_per_as_failed():
    """A stable run whose final PER is >= 1.5 x the rung's best fails (the issue's rule)."""
    from analysis.boundary.width import mark_failures

    runs = pd.DataFrame({"fan_in": 896, "seed": 0, "lr_max": [0.005, 0.01, 0.02, 0.05],
                         "outcome": ["stable"] * 4,
                         "final_val_per": [0.10, 0.14, 0.16, 0.9]})
    marked = mark_failures(runs)
    assert marked["failed"].tolist() == [False, False, True, True]
