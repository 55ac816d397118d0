"""Statistics on the tidy trial table: pure functions of DataFrames, no I/O.

What is tested and how (analysis.md):
  * outcome rates per cell with 95% anytime-valid confidence sequences (analysis.sequential),
    and the cell's stable / unstable / uncertain status from them;
  * median final PER per cell with its exact order-statistic interval;
  * interaction of each pair of axes:
      - final PER: two-way ANOVA with interaction, type III sums of squares with
        sum-to-zero contrasts (the cells are unbalanced once runs fail), the other varied
        axes entered as additive blocks; partial eta^2 as the effect size;
      - binary endpoints (collapse / divergence / failure): Firth-penalised logistic
        regression (Firth 1993) with a penalised likelihood-ratio test of the interaction
        columns (Heinze & Schemper 2002), because cells that always or never fail make the
        maximum-likelihood fit separate; separation is detected (Konis 2007) and reported;
  * Holm's step-down adjustment across all pairs x endpoints (Holm 1979);
  * functional-ANOVA variance shares of main effects and pairwise interactions: exact
    from cell means on a complete grid, or from a random-forest surrogate predicted on a
    grid of the sampled values (Hutter, Hoos & Leyton-Brown, ICML 2014) with its
    out-of-bag R^2;
The lr/eps regime test (the boundary's slope) is analysis.boundary's.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
from scipy import stats as sps
from scipy.special import expit
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests

from analysis import sequential
from analysis.load import FULL_BUDGET, Axis
from trainable.contract import OUTCOMES

ALPHA = 0.05
FAILURES: tuple[str, ...] = tuple(o for o in OUTCOMES if o != "stable")
# Binary endpoints: which final outcomes count as the event.
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "collapse": ("blank_collapse",),
    "divergence": ("diverged", "exploding"),  # the loss or the gradient blew up
    "failure": FAILURES,  # anything but stable, `slow` included
}
ENDPOINT_TEXT = {
    "per": "final val PER (non-collapsed, non-diverged runs)",
    "collapse": "blank collapse",
    "divergence": "divergence or gradient explosion",
    "failure": "any failure (outcome not stable)",
}
# PER is compared only among runs that produced a decoder at all.
PER_EXCLUDED: tuple[str, ...] = ("blank_collapse", "diverged")
PER_COLUMN = "final_val_per"
# A cell is called stable when at least this share of its runs are; cells whose 95%
# interval contains it are drawn as uncertain.
STABLE_RATE_THRESHOLD = 0.5
N_BINS = 4


# --------------------------------------------------------------------------- factors
@dataclass(frozen=True)
class Factor:
    """A varied axis as a categorical factor (binned when the axis is continuous)."""

    axis: str
    column: str  # ordered categorical level column in the prepared frame
    levels: tuple[str, ...]
    binned: bool
    log_scale: bool
    values: tuple[float, ...] | None  # numeric level values of an unbinned axis


def format_value(value) -> str:
    if isinstance(value, (int, float, np.floating, np.integer)):
        return f"{float(value):.3g}"
    return str(value)


def _level_column(axis: str) -> str:
    return re.sub(r"\W", "_", axis) + "__level"


def factorize(trials: pd.DataFrame, axes: list[Axis], n_bins: int = N_BINS
              ) -> tuple[pd.DataFrame, list[Factor]]:
    """Add an ordered level column per varied axis; continuous axes go to quantile bins.

    An axis is discrete when study.yaml declares grid values or it takes few distinct
    values; otherwise (random / TPE samples) it is cut at the quantiles of the sampled
    values, so every bin holds about the same number of runs.
    """
    frame = trials.copy()
    factors = []
    for axis in axes:
        if axis.name not in frame:
            continue
        raw = frame[axis.name]
        # 12 significant digits: a value that went through YAML, JSON and back is one level.
        numeric = pd.to_numeric(raw, errors="coerce").map(
            lambda v: float(f"{v:.12g}") if pd.notna(v) else v)
        is_numeric = numeric.notna().sum() == raw.notna().sum()
        observed = sorted((numeric if is_numeric else raw).dropna().unique())
        if len(observed) < 2:
            continue
        column = _level_column(axis.name)
        discrete = axis.values is not None or len(observed) <= 6 or not is_numeric
        if discrete:
            labels = _distinct([format_value(v) for v in observed], observed)
            mapping = dict(zip(observed, labels))
            source = numeric if is_numeric else raw
            frame[column] = pd.Categorical(source.map(mapping), categories=labels,
                                           ordered=True)
            factors.append(Factor(axis.name, column, tuple(labels), False, axis.log_scale,
                                  tuple(float(v) for v in observed) if is_numeric else None))
            continue
        scale = np.log10(numeric) if axis.log_scale else numeric
        edges = np.unique(np.quantile(scale.dropna(), np.linspace(0, 1, n_bins + 1)))
        real_edges = 10 ** edges if axis.log_scale else edges
        labels = _distinct([f"{lo:.2g} to {hi:.2g}" for lo, hi in
                            itertools.pairwise(real_edges)],
                           [f"{lo:.6g} to {hi:.6g}" for lo, hi in
                            itertools.pairwise(real_edges)])
        frame[column] = pd.cut(scale, edges, labels=labels, include_lowest=True,
                               ordered=True)
        factors.append(Factor(axis.name, column, tuple(labels), True, axis.log_scale, None))
    return frame, factors


def _distinct(short: list[str], fallback: list) -> list[str]:
    """Short labels unless two levels would share one."""
    return short if len(set(short)) == len(short) else [str(v) for v in fallback]


def binning_notes(factors: list[Factor]) -> list[str]:
    return [f"{f.axis} is continuous: cut into {len(f.levels)} quantile bins"
            f"{' of log10 value' if f.log_scale else ''} ({', '.join(f.levels)})"
            for f in factors if f.binned]


# --------------------------------------------------------------------------- subsets
def full_budget(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs whose outcome is a complete observation (finished, or diverged)."""
    return frame[frame["status"].isin(FULL_BUDGET) & frame["outcome"].notna()]


def per_set(frame: pd.DataFrame) -> pd.DataFrame:
    sub = full_budget(frame)
    return sub[~sub["outcome"].isin(PER_EXCLUDED) & sub[PER_COLUMN].notna()]


def endpoint_indicator(frame: pd.DataFrame, endpoint: str) -> pd.Series:
    return frame["outcome"].isin(ENDPOINTS[endpoint]).astype(int)


# --------------------------------------------------------------------------- cells
def median_interval(values, alpha: float = ALPHA) -> tuple[float, float, float]:
    """Median with its exact distribution-free (order-statistic, binomial) interval
    (scipy.stats.quantile_test); NaN ends when n is too small for any interval at this
    level (n < 6 at 95%): a percentile bootstrap of 3 runs would claim [min, max] with 75%
    coverage."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    median = float(np.median(values))
    if len(values) < 2:
        return median, math.nan, math.nan
    ci = sps.quantile_test(values, q=median, p=0.5).confidence_interval(1 - alpha)
    return median, float(ci.low), float(ci.high)


def cell_status(low: float, high: float, threshold: float = STABLE_RATE_THRESHOLD) -> str:
    """stable / unstable / uncertain: the cell's stable-rate interval against the
    threshold, the same rule the claims use (analysis.sequential)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no runs"
    if low > threshold:
        return "stable"
    if high < threshold:
        return "unstable"
    return "uncertain"


def cell_summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One row per cell of `by` (level columns): denominators, outcome rates, median PER.

    Rates are over full-budget runs only (finished or diverged), each with its 95%
    anytime-valid confidence sequence (runs in seed order; valid however many waves added
    seeds to the cell); `status` reads the stable rate's against STABLE_RATE_THRESHOLD.
    The status counts show what else happened in the cell.
    """
    rows = []
    grouped = frame.groupby(by, observed=False, sort=True) if by else [((), frame)]
    for key, cell in grouped:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n_total"] = len(cell)
        for status in ("finished", "stopped_early", "diverged", "errored"):
            row[f"n_{status}"] = int((cell["status"] == status).sum())
        complete = full_budget(cell).sort_values("seed")
        n = len(complete)
        row["n"] = n
        for outcome in OUTCOMES:
            hits = (complete["outcome"] == outcome).to_numpy(dtype=float)
            cs = sequential.mean_cs(hits, 0.0, 1.0, ALPHA, (STABLE_RATE_THRESHOLD,))
            row[f"count_{outcome}"] = int(hits.sum())
            row[f"rate_{outcome}"] = cs.estimate
            row[f"lo_{outcome}"], row[f"hi_{outcome}"] = ((cs.low, cs.high) if n else
                                                          (math.nan, math.nan))
        row["status"] = cell_status(row["lo_stable"], row["hi_stable"])
        per_values = per_set(cell)[PER_COLUMN]
        row["per_n"] = len(per_values)
        row["per_median"], row["per_lo"], row["per_hi"] = median_interval(per_values)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Firth
@dataclass(frozen=True)
class FirthTest:
    chi2: float
    df: int
    p_value: float
    separation: bool
    n_infinite: int  # coefficients whose maximum-likelihood estimate is infinite
    converged: bool
    beta: np.ndarray
    note: str


def _firth_parts(X: np.ndarray, y: np.ndarray, beta: np.ndarray
                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalised log-likelihood l(b) + 1/2 log|I(b)|, its modified score, and I(b)."""
    eta = X @ beta
    p = expit(eta)
    w = p * (1.0 - p)
    info = (X.T * w) @ X
    sign, logdet = np.linalg.slogdet(info)
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)) + 0.5 * logdet)
    if sign <= 0:
        return -math.inf, np.zeros_like(beta), info
    # Firth's modified score: U_j + sum_i h_i (1/2 - p_i) x_ij, h the hat diagonal.
    leverage = w * np.einsum("ij,ji->i", X, np.linalg.solve(info, X.T))
    score = X.T @ (y - p + leverage * (0.5 - p))
    return loglik, score, info


def firth_constrained_fit(X: np.ndarray, y: np.ndarray, free: np.ndarray, beta0: np.ndarray,
                          max_iter: int = 200, tol: float = 1e-8
                          ) -> tuple[np.ndarray, float, bool]:
    """Maximise the full model's penalised likelihood with the non-free coefficients at 0.

    Keeping the full model's penalty in the constrained fit is what makes the penalised
    LRT valid (Heinze & Schemper 2002; logistf's default "nested" comparison). Newton steps
    on the free coordinates, capped at 5 and halved until the penalised likelihood rises.
    """
    beta = np.where(free, beta0, 0.0).astype(float)
    loglik, score, info = _firth_parts(X, y, beta)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(info[np.ix_(free, free)], score[free])
        except np.linalg.LinAlgError:
            return beta, loglik, False
        step *= min(1.0, 5.0 / max(float(np.abs(step).max()), 1e-300))
        for _ in range(40):
            trial = beta.copy()
            trial[free] += step
            new = _firth_parts(X, y, trial)
            if new[0] >= loglik - 1e-10:
                break
            step /= 2.0
        else:
            return beta, loglik, bool(np.abs(score[free]).max() < 1e-5)
        moved = float(np.abs(trial - beta).max())
        beta, (loglik, score, info) = trial, new
        if moved < tol or float(np.abs(score[free]).max()) < tol:
            return beta, loglik, True
    return beta, loglik, bool(np.abs(score[free]).max() < 1e-5)


def firth_lrt(X: np.ndarray, y: np.ndarray, test_columns: list[int]) -> FirthTest:
    """Penalised LRT that the coefficients in `test_columns` are all zero.

    X includes the intercept column. The full model is fitted with firthmodels'
    FirthLogisticRegression; the constrained one with `firth_constrained_fit`.
    """
    from firthmodels import FirthLogisticRegression, detect_separation
    from sklearn.exceptions import ConvergenceWarning

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            separation = detect_separation(X, y, fit_intercept=False)
            model = FirthLogisticRegression(fit_intercept=False, max_iter=200, gtol=1e-7,
                                            xtol=1e-7).fit(X, y)
        except (ValueError, np.linalg.LinAlgError) as exc:
            return FirthTest(chi2=math.nan, df=len(test_columns), p_value=math.nan,
                             separation=False, n_infinite=0, converged=False,
                             beta=np.full(X.shape[1], math.nan), note=f"fit failed: {exc}")
    if any(issubclass(w.category, (ConvergenceWarning, RuntimeWarning)) for w in caught):
        notes.append("Firth full fit warned: " + "; ".join(
            sorted({str(w.message) for w in caught})))
    beta_full = np.asarray(model.coef_, dtype=float)
    loglik_full = _firth_parts(X, y, beta_full)[0]
    free = np.ones(X.shape[1], dtype=bool)
    free[test_columns] = False
    _, loglik_null, converged = firth_constrained_fit(X, y, free, beta_full)
    converged = converged and bool(model.converged_)
    if not converged:
        notes.append("a Firth fit did not converge")
    chi2 = max(0.0, 2.0 * (loglik_full - loglik_null))
    df = len(test_columns)
    n_infinite = int(np.sum(~np.asarray(separation.is_finite)))
    return FirthTest(chi2=chi2, df=df, p_value=float(sps.chi2.sf(chi2, df)),
                     separation=bool(separation.separation), n_infinite=n_infinite,
                     converged=converged, beta=beta_full, note="; ".join(notes))


# --------------------------------------------------------------------------- interactions
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


# --------------------------------------------------------------------------- fANOVA
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
