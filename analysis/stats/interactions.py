"""The interaction of each pair of varied axes on every endpoint, and Holm's adjustment
across them: a two-way ANOVA for the final PER, Firth's penalised LRT for the binary
endpoints."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import patsy
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests

from analysis.stats.alpha import ALPHA
from analysis.stats.endpoints import (ENDPOINT_TEXT, ENDPOINTS, PER_COLUMN, endpoint_indicator,
                                      full_budget, per_set)
from analysis.stats.factors import Factor
from analysis.stats.firth import firth_lrt

PER_METHOD = "two-way ANOVA, type III SS, sum-to-zero contrasts, raw final val_per"
FIRTH_METHOD = "Firth logistic regression, penalised LRT (Heinze & Schemper 2002)"


def factor_term(column: str) -> str:
    return f"C({column}, Sum)"


def _test_row(pair: tuple[Factor, Factor], endpoint: str, method: str, n: int, **values
              ) -> dict:
    a, b = pair
    row = {"pair": f"{a.axis} x {b.axis}", "a": a.axis, "b": b.axis, "endpoint": endpoint,
           "method": method, "statistic": math.nan, "df": "", "p_value": math.nan,
           "partial_eta2": math.nan, "n": n, "separation": "", "note": ""}
    row.update(values)
    return row


def _design_problem(data: pd.DataFrame, a: Factor, b: Factor) -> str:
    for f in (a, b):
        if data[f.column].nunique() < 2:
            return f"only one level of {f.axis} in the analysed runs"
    cells = data.groupby([a.column, b.column], observed=True).size()
    expected = data[a.column].nunique() * data[b.column].nunique()
    if len(cells) < expected:
        return f"{expected - len(cells)} empty {a.axis} x {b.axis} cell(s): interaction " \
               "not estimable"
    return ""


def _blocks(data: pd.DataFrame, pair: tuple[Factor, Factor], factors: list[Factor]
            ) -> list[Factor]:
    return [f for f in factors if f not in pair and data[f.column].nunique() >= 2]


def _rhs(a: Factor, b: Factor, blocks: list[Factor]) -> str:
    return " + ".join([f"{factor_term(a.column)} * {factor_term(b.column)}",
                       *[factor_term(f.column) for f in blocks]])


def _full_rank_design(data: pd.DataFrame, a: Factor, b: Factor, blocks: list[Factor]):
    """The design with as many blocks as keep it full rank (blocks nested in a x b drop)."""
    for use in (blocks, []):
        design = patsy.dmatrix(_rhs(a, b, use), drop_unused_levels(data, [a, b, *use]),
                               return_type="dataframe")
        if np.linalg.matrix_rank(design.to_numpy()) == design.shape[1]:
            return design, use
    return None, []


def drop_unused_levels(data: pd.DataFrame, factors: list[Factor]) -> pd.DataFrame:
    """Level columns with unused categories removed (patsy would make empty columns)."""
    out = data.copy()
    for f in factors:
        out[f.column] = out[f.column].cat.remove_unused_categories()
    return out


def anova_interaction(frame: pd.DataFrame, pair: tuple[Factor, Factor],
                      factors: list[Factor]) -> dict:
    a, b = pair
    data = per_set(frame)
    n = len(data)
    problem = _design_problem(data, a, b) if n else "no non-failed full-budget runs"
    if problem:
        return _test_row(pair, "per", PER_METHOD, n, note=problem)
    if float(data[PER_COLUMN].var()) <= 0:
        return _test_row(pair, "per", PER_METHOD, n, note="no variation")
    design, blocks = _full_rank_design(data, a, b, _blocks(data, pair, factors))
    if design is None or design.shape[1] >= n:
        return _test_row(pair, "per", PER_METHOD, n, note="too few runs for the model")
    data = drop_unused_levels(data, [a, b, *blocks]).rename(columns={PER_COLUMN: "y"})
    fit = ols(f"y ~ {_rhs(a, b, blocks)}", data=data).fit()
    table = anova_lm(fit, typ=3)
    term = f"{factor_term(a.column)}:{factor_term(b.column)}"
    ss, ss_resid = table.loc[term, "sum_sq"], table.loc["Residual", "sum_sq"]
    blocks_note = (f"blocks: {', '.join(f.axis for f in blocks)}" if blocks else "")
    return _test_row(pair, "per", PER_METHOD, n, statistic=float(table.loc[term, "F"]),
                     df=f"{int(table.loc[term, 'df'])}, {int(table.loc['Residual', 'df'])}",
                     p_value=float(table.loc[term, "PR(>F)"]),
                     partial_eta2=float(ss / (ss + ss_resid)) if ss + ss_resid > 0 else 0.0,
                     note=blocks_note)


def logistic_interaction(frame: pd.DataFrame, pair: tuple[Factor, Factor],
                         factors: list[Factor], endpoint: str) -> dict:
    a, b = pair
    data = full_budget(frame)
    n = len(data)
    y = endpoint_indicator(data, endpoint).to_numpy()
    problem = _design_problem(data, a, b) if n else "no full-budget runs"
    if problem:
        return _test_row(pair, endpoint, FIRTH_METHOD, n, note=problem)
    if y.min() == y.max():
        return _test_row(pair, endpoint, FIRTH_METHOD, n,
                         note=f"no variation (every run {'had' if y[0] else 'avoided'} "
                              f"{ENDPOINT_TEXT[endpoint]})")
    design, blocks = _full_rank_design(data, a, b, _blocks(data, pair, factors))
    if design is None or design.shape[1] >= n:
        return _test_row(pair, endpoint, FIRTH_METHOD, n, note="too few runs for the model")
    term = f"{factor_term(a.column)}:{factor_term(b.column)}"
    columns = list(range(design.shape[1]))[design.design_info.term_name_slices[term]]
    test = firth_lrt(design.to_numpy(), y, columns)
    notes = [f"blocks: {', '.join(f.axis for f in blocks)}"] if blocks else []
    if test.separation:
        notes.append(f"separation: {test.n_infinite} ML coefficient(s) infinite; "
                     "Firth estimates finite")
    if test.note:
        notes.append(test.note)
    return _test_row(pair, endpoint, FIRTH_METHOD, n, statistic=test.chi2, df=str(test.df),
                     p_value=test.p_value, separation="yes" if test.separation else "no",
                     note="; ".join(notes))


def interaction_tests(frame: pd.DataFrame, factors: list[Factor], confirmatory: bool
                      ) -> pd.DataFrame:
    """Every pair of varied axes x {PER, collapse, divergence, failure}: secondary tests,
    adjusted together by `holm_secondary` (the preset's primary hypothesis is decided
    with the claims, analysis.claims)."""
    rows = []
    for pair in itertools.combinations(factors, 2):
        rows.append(anova_interaction(frame, pair, factors))
        for endpoint in ENDPOINTS:
            rows.append(logistic_interaction(frame, pair, factors, endpoint))
    columns = ["pair", "a", "b", "endpoint", "method", "statistic", "df", "p_value",
               "partial_eta2", "n", "separation", "note"]
    tests = pd.DataFrame(rows, columns=columns)
    tests["role"] = "secondary"
    tests["scope"] = "confirmatory" if confirmatory else "exploratory"
    return tests


def holm_secondary(tests: pd.DataFrame) -> pd.DataFrame:
    """Holm's adjustment over every secondary test (all blocks, pairs and endpoints)."""
    tests = tests.copy()
    secondary = tests["role"] == "secondary"
    tests["p_holm"] = np.nan
    tests.loc[secondary, "p_holm"] = holm(tests.loc[secondary, "p_value"])
    return tests


def holm(p_values: pd.Series, alpha: float = ALPHA) -> pd.Series:
    out = pd.Series(np.nan, index=p_values.index)
    tested = p_values.notna()
    if tested.any():
        out[tested] = multipletests(p_values[tested].to_numpy(), alpha=alpha,
                                    method="holm")[1]
    return out
