"""The numbers behind the cell maps (analysis.figures.cells): what each heatmap cell shows
and which cells are hatched, checked on a planted grid without drawing."""

from __future__ import annotations

import numpy as np
import pytest
from support.experiments import Planted, planted_trials

from analysis import figures, stats
from analysis.load import Axis

AXES = [Axis("eps", "optim.eps", (1e-8, 0.1), None),
        Axis("white_noise_std", "augment.white_noise_std", (0.25, 1.0), None)]
GRID = {"eps": [1e-8, 0.1], "white_noise_std": [0.25, 1.0]}


def weak_big_eps_collapses_half(cell, rng):
    """eps 0.1 with weak augmentation collapses in seeds 0, 2, 4, ...; all else is stable
    at PER 0.30 (0.25 with strong augmentation)."""
    weak_big = cell["eps"] > 1e-3 and cell["white_noise_std"] < 0.5
    weak_big_eps_collapses_half.calls += 1
    if weak_big and weak_big_eps_collapses_half.calls % 2 == 1:
        return Planted("blank_collapse", 1.0)
    return Planted("stable", 0.30 if cell["white_noise_std"] < 0.5 else 0.25)


def _cells():
    weak_big_eps_collapses_half.calls = 0
    frame, factors = stats.factorize(
        planted_trials(weak_big_eps_collapses_half, 8, 0, grid=GRID), AXES)
    eps, noise = factors
    return stats.cell_summary(frame, [eps.column, noise.column]), eps, noise


def test_stable_grid_shows_stable_over_full_budget_runs_and_hatches_the_uncertain_cell():
    cells, eps, noise = _cells()
    grid = figures.stable_grid(cells, eps, noise)
    assert eps.levels == ("1e-08", "0.1") and noise.levels == ("0.25", "1")
    np.testing.assert_allclose(grid.values, [[1.0, 1.0], [0.5, 1.0]])
    assert grid.labels.tolist() == [["8/8", "8/8"], ["4/8", "8/8"]]
    assert grid.uncertain == [(1, 0)]  # half of 8 runs: neither stable nor unstable shown


def test_rate_and_per_grids_carry_the_interval_and_n_unless_compact():
    cells, eps, noise = _cells()
    collapse = figures.rate_grid(cells, eps, noise, "blank_collapse")
    np.testing.assert_allclose(collapse.values, [[0.0, 0.0], [0.5, 0.0]])
    row = cells.set_index([eps.column, noise.column]).loc[("0.1", "0.25")]
    assert collapse.labels[1, 0] == (f"0.50\n[{row['lo_blank_collapse']:.2f}, "
                                     f"{row['hi_blank_collapse']:.2f}]\nn=8")
    assert figures.rate_grid(cells, eps, noise, "blank_collapse",
                             compact=True).labels[1, 0] == "0.50\nn=8"
    per = figures.per_grid(cells, eps, noise)
    # the median PER of non-collapsed runs: the 4 collapsed runs are not in it
    assert per.values[1, 0] == pytest.approx(0.30) and per.values[0, 1] == pytest.approx(0.25)
    assert per.labels[1, 0].startswith("0.300\n[") and per.labels[1, 0].endswith("n=4")
    assert per.uncertain == []
