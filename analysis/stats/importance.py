"""Functional-ANOVA variance shares of main effects and pairwise interactions (Hooker
2007; Hutter, Hoos & Leyton-Brown 2014): exact from the cell means of a complete grid, or
from a random-forest surrogate. `fanova` is the entry point."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from analysis.stats.endpoints import ENDPOINTS, PER_COLUMN, endpoint_indicator, full_budget, per_set
from analysis.stats.factors import Factor

def grid_shares(cube: np.ndarray, names: list[str]) -> dict[str, float]:
    """Variance shares of main effects and pairwise interactions of a function on a grid.

    The functional ANOVA decomposition under the uniform measure on the grid (Hooker 2007;
    Hutter et al. 2014): f = f0 + sum_i f_i + sum_ij f_ij + ...; each share is the
    variance of its component over the total variance. The remainder is the share of
    all higher-order interactions.
    """
    f0 = float(cube.mean())
    total = float(((cube - f0) ** 2).mean())
    if total <= 0:
        return {}
    dims = range(cube.ndim)
    mains = {i: cube.mean(axis=tuple(j for j in dims if j != i), keepdims=True) - f0
             for i in dims}
    shares = {names[i]: float((mains[i] ** 2).mean() / total) for i in dims}
    for i, j in itertools.combinations(dims, 2):
        joint = cube.mean(axis=tuple(k for k in dims if k not in (i, j)), keepdims=True)
        effect = joint - mains[i] - mains[j] - f0
        shares[f"{names[i]} x {names[j]}"] = float((effect ** 2).mean() / total)
    shares["higher-order interactions"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def cell_mean_cube(data: pd.DataFrame, factors: list[Factor], response: str
                   ) -> np.ndarray | None:
    """Cell means over the full grid of levels; None when a cell has no runs."""
    index = pd.MultiIndex.from_product([list(f.levels) for f in factors])
    means = data.groupby([f.column for f in factors], observed=True)[response].mean()
    means = means.reindex(index)
    if means.isna().any():
        return None
    return means.to_numpy().reshape([len(f.levels) for f in factors])


def surrogate_shares(data: pd.DataFrame, factors: list[Factor], response: str, seed: int
                      ) -> tuple[dict[str, float], float]:
    """Random-forest surrogate (Hutter et al. 2014) predicted on a grid of sampled values."""
    from sklearn.ensemble import RandomForestRegressor

    def features(values: pd.Series, f: Factor) -> np.ndarray:
        values = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        return np.log10(values) if f.log_scale else values

    X = np.column_stack([features(data[f.axis], f) for f in factors])
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, oob_score=True,
                                   random_state=seed, n_jobs=1)
    forest.fit(X, data[response].to_numpy(dtype=float))
    per_axis = max(2, int(20000 ** (1 / len(factors))))
    grids = []
    for k, f in enumerate(factors):
        if f.values is not None and len(f.values) <= per_axis:
            grids.append(features(pd.Series(f.values), f))
        else:
            grids.append(np.quantile(X[:, k], (np.arange(per_axis) + 0.5) / per_axis))
    mesh = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, len(factors))
    cube = forest.predict(mesh).reshape([len(g) for g in grids])
    return grid_shares(cube, [f.axis for f in factors]), float(forest.oob_score_)


def fanova(frame: pd.DataFrame, factors: list[Factor], exact_allowed: bool, seed: int = 0
           ) -> pd.DataFrame:
    """Variance shares for PER and the binary endpoints; one row per (response, term)."""
    rows = []
    responses = {"per": per_set(frame)}
    complete = full_budget(frame)
    for endpoint in ENDPOINTS:
        responses[endpoint] = complete.assign(**{endpoint: endpoint_indicator(complete,
                                                                              endpoint)})
    for response, data in responses.items():
        column = PER_COLUMN if response == "per" else response
        base = {"response": response, "n": len(data)}
        if len(factors) < 1 or len(data) < 2 or data[column].var() <= 0:
            rows.append({**base, "term": "", "share": math.nan, "method": "",
                         "oob_r2": math.nan, "note": "no variation" if len(data) >= 2
                         else "too few runs"})
            continue
        cube = cell_mean_cube(data, factors, column) if exact_allowed else None
        if cube is not None:
            shares, method, r2, note = (grid_shares(cube, [f.axis for f in factors]),
                                        "exact (cell means of the full grid)", math.nan, "")
        elif len(data) >= 10:
            shares, r2 = surrogate_shares(data, factors, column, seed)
            method = "random-forest surrogate (Hutter et al. 2014)"
            note = ("grid incomplete for this response" if exact_allowed else "")
        else:
            rows.append({**base, "term": "", "share": math.nan, "method": "",
                         "oob_r2": math.nan, "note": "too few runs for a surrogate"})
            continue
        for term, share in shares.items():
            rows.append({**base, "term": term, "share": share, "method": method,
                         "oob_r2": r2, "note": note})
    return pd.DataFrame(rows, columns=["response", "term", "share", "method", "oob_r2", "n",
                                       "note"])
