"""Verdicts on stated claims. The claims and their decision rules are data
(configs/claims.yaml), fixed before any result is seen; this module only applies them.

Every verdict is one of
  supported     the interval excludes "no effect" on the claimed side
  refuted       the interval excludes the effect size the claim asserts
  inconclusive  neither, or a needed cell is missing or holds fewer than `min_n` runs
Only full-budget runs (finished or diverged) count.

Tests:
  rate_difference  rate of `outcomes` in `cell` minus `reference`, Newcombe's hybrid-score
                   interval (Newcombe 1998, method 10; statsmodels method='newcomb').
                   supported: interval excludes 0 on the claimed side;
                   refuted: interval excludes `min_effect` (checked first: a smaller effect
                   than claimed refutes the claim as stated).
  steps_ratio      median steps to reach `threshold_factor` x the reference cell's median
                   final PER, cell / reference, seeded bootstrap interval; runs that never
                   reach it count as the full budget (censored, so conservative).
                   supported: lower bound > 1; refuted: upper bound < `min_ratio`.
  rate_bound       rate of `outcomes` in `cell` vs `max_rate`, Wilson interval.
                   supported: upper bound < max_rate; refuted: lower bound > max_rate.
  interaction      Firth penalised LRT of the listed pairwise interaction `terms` on a
                   binary endpoint, in a model with every varied axis' main effect and every
                   pairwise interaction among the named axes; effect size: the terms' summed
                   functional-ANOVA variance share on the full grid with a seeded bootstrap
                   interval (resampling runs within cells).
                   supported: p < alpha; refuted: p >= alpha and the share's upper bound
                   < `max_share`.
  any_of           `parts`, each one of the above at alpha / len(parts) (Bonferroni).
                   supported: any part supported; refuted: every part refuted.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import patsy
import yaml
from statsmodels.stats.proportion import confint_proportions_2indep

from analysis import stats
from trainable.config import CONFIG_DIR
from trainable.contract import OUTCOMES
from trainable.errors import UserError

DEFAULT_CLAIMS = CONFIG_DIR / "claims.yaml"
TESTS = {
    "rate_difference": ("outcomes", "cell", "reference", "direction", "min_effect"),
    "steps_ratio": ("cell", "reference", "threshold_factor", "min_ratio"),
    "rate_bound": ("outcomes", "cell", "max_rate"),
    "interaction": ("endpoint", "terms", "max_share"),
    "any_of": ("parts",),
}
BOOTSTRAP_RESAMPLES = 2000


# --------------------------------------------------------------------------- reading
def resolve_claims_path(value, base: Path = CONFIG_DIR) -> Path | None:
    """study.yaml's `claims`: relative to the configs dir, absolute, or null."""
    if value in (None, "", False):
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def load_claims(path: str | Path) -> dict:
    """Read and check a claims file; a mistake raises UserError naming claim and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: claims file not found; fix study.yaml's 'claims' or pass "
                        "--claims")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise UserError(f"{path}: not valid YAML; fix the syntax") from None
    if not isinstance(tree, dict) or not isinstance(tree.get("claims"), list):
        raise UserError(f"{path}: expected a mapping with a 'claims' list")
    defaults = {"alpha": stats.ALPHA, "min_n": 3, "seed": 0, **(tree.get("defaults") or {})}
    seen = set()
    for i, claim in enumerate(tree["claims"]):
        where = f"{path}: claims[{i}]"
        if not isinstance(claim, dict) or "id" not in claim:
            raise UserError(f"{where}: each claim needs an 'id'")
        where = f"{path}: claim {claim['id']!r}"
        if claim["id"] in seen:
            raise UserError(f"{where}: duplicate id")
        seen.add(claim["id"])
        if "text" not in claim:
            raise UserError(f"{where}: missing 'text'")
        _check_test(claim, where)
    return {"defaults": defaults, "claims": tree["claims"], "path": path}


def _check_test(spec: dict, where: str) -> None:
    test = spec.get("test")
    if test not in TESTS:
        raise UserError(f"{where}: test={test!r}; expected one of {', '.join(TESTS)}")
    missing = [k for k in TESTS[test] if k not in spec]
    if missing:
        raise UserError(f"{where}: test {test} needs {', '.join(missing)}")
    for key in ("cell", "reference"):
        if key in spec and not (isinstance(spec[key], dict) and all(
                _is_number(v) for v in spec[key].values())):
            raise UserError(f"{where}: {key} must map axis names to numbers, e.g. "
                            "{eps: 0.1, lr_max: 0.005}")
    for key in ("min_effect", "min_ratio", "max_rate", "max_share", "threshold_factor"):
        if key in spec and not _is_number(spec[key]):
            raise UserError(f"{where}: {key}={spec[key]!r}; expected a number")
    for outcome in spec.get("outcomes", []):
        if outcome not in OUTCOMES:
            raise UserError(f"{where}: outcome {outcome!r} is not one of "
                            f"{', '.join(OUTCOMES)}")
    if test == "rate_difference" and spec["direction"] not in ("increase", "decrease"):
        raise UserError(f"{where}: direction={spec['direction']!r}; expected increase or "
                        "decrease")
    if test == "interaction" and spec["endpoint"] not in stats.ENDPOINTS:
        raise UserError(f"{where}: endpoint={spec['endpoint']!r}; expected one of "
                        f"{', '.join(stats.ENDPOINTS)}")
    if test == "any_of":
        for j, part in enumerate(spec["parts"]):
            _check_test(part, f"{where} part {j}")


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


# --------------------------------------------------------------------------- evaluation
def evaluate_claims(claims: dict, trials: pd.DataFrame,
                    scopes: list[tuple[set[str], pd.DataFrame, list[stats.Factor]]],
                    curves: pd.DataFrame, confirmatory: bool) -> pd.DataFrame:
    """One row per claim: test, effect with 95% interval, n, verdict, reason.

    `trials` holds every run; `scopes` lists the design's blocks as (axes varied, the
    block's runs with level columns, its factors); `curves` the per-report table.
    """
    defaults = claims["defaults"]
    rows = []
    for claim in claims["claims"]:
        ctx = {"alpha": float(claim.get("alpha", defaults["alpha"])),
               "min_n": int(claim.get("min_n", defaults["min_n"])),
               "seed": int(defaults["seed"]), "curves": curves, "trials": trials,
               "scopes": scopes}
        result = _evaluate(claim, ctx)
        rows.append({"id": claim["id"], "claim": " ".join(str(claim["text"]).split()),
                     **result, "scope": "confirmatory" if confirmatory else "exploratory"})
    return pd.DataFrame(rows, columns=["id", "claim", "test", "effect", "estimate", "ci_low",
                                       "ci_high", "n", "verdict", "reason", "scope"])


def _evaluate(spec: dict, ctx: dict) -> dict:
    test = spec["test"]
    if test == "any_of":
        return _any_of(spec, ctx)
    function = {"rate_difference": _rate_difference, "steps_ratio": _steps_ratio,
                "rate_bound": _rate_bound, "interaction": _interaction}[test]
    return function(spec, ctx)


def _scope(ctx: dict, named: set[str]):
    """The block a claim about `named` axes is judged in: the first block varying them all
    (axes it does not name then sit at the block's fixed values, or are pooled over in a
    full factorial), else every run (its cells then name every axis they need)."""
    for axes, frame, factors in ctx["scopes"]:
        if named <= axes:
            return frame, factors
    return ctx["trials"], None


def _result(test: str, verdict: str, reason: str, effect: str = "", estimate=math.nan,
            ci=(math.nan, math.nan), n: str = "") -> dict:
    return {"test": test, "effect": effect, "estimate": estimate, "ci_low": ci[0],
            "ci_high": ci[1], "n": n, "verdict": verdict, "reason": reason}


def select_cell(frame: pd.DataFrame, cell: dict) -> tuple[pd.DataFrame, str]:
    """Runs at the given axis values (axes left out are pooled), any status."""
    data = frame
    for axis, value in cell.items():
        if axis not in data:
            return data.iloc[0:0], f"{axis} is not an axis of this study"
        numeric = pd.to_numeric(data[axis], errors="coerce").to_numpy(dtype=float)
        data = data[np.isclose(numeric, float(value), rtol=1e-6, atol=0.0)]
    return data, ""


def _describe(cell: dict) -> str:
    return ", ".join(f"{k}={stats.format_value(v)}" for k, v in cell.items())


def _cells(spec: dict, ctx: dict, names=("cell", "reference")):
    """The needed cells, or a reason the claim is inconclusive."""
    frame, _ = _scope(ctx, {axis for name in names for axis in spec[name]})
    cells = []
    for name in names:
        runs, problem = select_cell(frame, spec[name])
        if problem:
            return None, problem
        if runs.empty:
            return None, f"{name} ({_describe(spec[name])}) is not in this study's design"
        data = stats.full_budget(runs)
        if len(data) < ctx["min_n"]:
            return None, (f"{name} ({_describe(spec[name])}) has {len(data)} full-budget "
                          f"run(s), fewer than min_n={ctx['min_n']}")
        cells.append(data)
    return cells, ""


def _rate_difference(spec: dict, ctx: dict) -> dict:
    outcomes = list(spec["outcomes"])
    test = (f"rate of {'/'.join(outcomes)}: {_describe(spec['cell'])} minus "
            f"{_describe(spec['reference'])} (Newcombe)")
    cells, problem = _cells(spec, ctx)
    if cells is None:
        return _result(test, "inconclusive", problem)
    (cell, ref) = cells
    x1, n1 = int(cell["outcome"].isin(outcomes).sum()), len(cell)
    x2, n2 = int(ref["outcome"].isin(outcomes).sum()), len(ref)
    diff = x1 / n1 - x2 / n2
    lo, hi = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff",
                                        alpha=ctx["alpha"])
    lo, hi = float(lo), float(hi)
    sign = 1 if spec["direction"] == "increase" else -1
    # Orient so that the claimed direction is positive.
    claimed_lo, claimed_hi = sorted((sign * lo, sign * hi))
    min_effect = float(spec["min_effect"])
    if claimed_hi < min_effect:
        verdict = "refuted"
        reason = (f"the interval excludes a {spec['direction']} of {min_effect:g}"
                  + (" (a smaller effect is present)" if claimed_lo > 0 else ""))
    elif claimed_lo > 0:
        verdict, reason = "supported", f"the interval excludes 0 ({spec['direction']})"
    else:
        verdict, reason = "inconclusive", "the interval contains 0 and the claimed effect"
    return _result(test, verdict, reason, f"{diff:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                   f"({x1}/{n1} vs {x2}/{n2})", diff, (lo, hi), f"{n1} vs {n2}")


def steps_to_threshold(curves: pd.DataFrame, trial_ids, threshold: float,
                       budgets: pd.Series) -> np.ndarray:
    """First step with val_per <= threshold; runs that never get there are infinite (they
    are slower than any budget shows: counting them at the budget would cap the ratio)."""
    out = []
    for trial_id in trial_ids:
        run = curves[curves["trial_id"] == trial_id]
        reached = run.loc[run["val_per"] <= threshold, "step"]
        out.append(float(reached.min()) if len(reached) else math.inf)
    return np.asarray(out)


def _steps_ratio(spec: dict, ctx: dict) -> dict:
    factor = float(spec["threshold_factor"])
    test = (f"median steps to {factor:g}x the reference's median final PER: "
            f"{_describe(spec['cell'])} / {_describe(spec['reference'])} (bootstrap)")
    cells, problem = _cells(spec, ctx)
    if cells is None:
        return _result(test, "inconclusive", problem)
    cell, ref = cells
    ref_per = stats.per_set(ref)[stats.PER_COLUMN]
    if ref_per.empty:
        return _result(test, "inconclusive", "no non-failed reference run sets a threshold")
    threshold = factor * float(ref_per.median())
    budgets = ctx["trials"].set_index("trial_id")["budget_steps"]
    a = steps_to_threshold(ctx["curves"], cell["trial_id"], threshold, budgets)
    b = steps_to_threshold(ctx["curves"], ref["trial_id"], threshold, budgets)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(np.median(a) / np.median(b))
        rng = np.random.default_rng(ctx["seed"])
        draws_a = np.median(a[rng.integers(0, len(a), (BOOTSTRAP_RESAMPLES, len(a)))], axis=1)
        draws_b = np.median(b[rng.integers(0, len(b), (BOOTSTRAP_RESAMPLES, len(b)))], axis=1)
        ratios = np.where(np.isinf(draws_a) & np.isinf(draws_b), np.nan, draws_a / draws_b)
    lo, hi = np.nanquantile(ratios, [ctx["alpha"] / 2, 1 - ctx["alpha"] / 2],
                            method="inverted_cdf")  # no interpolation between inf draws
    min_ratio = float(spec["min_ratio"])
    # Refuting "much slower" needs most runs of the cell to reach the threshold at all.
    cell_reached = np.isfinite(a).mean() > 0.5
    if hi < min_ratio and cell_reached:
        verdict, reason = "refuted", f"the interval excludes a ratio of {min_ratio:g}"
    elif lo > 1:
        verdict, reason = "supported", "the interval excludes 1 (slower)"
    else:
        verdict, reason = "inconclusive", "the interval contains 1 and the claimed ratio"
    return _result(test, verdict, reason + f"; threshold PER {threshold:.3f}",
                   f"x{ratio:.2f} [{lo:.2f}, {hi:.2f}] ({int(np.isfinite(a).sum())}/{len(a)} "
                   "runs reached the threshold)", ratio, (float(lo), float(hi)),
                   f"{len(a)} vs {len(b)}")


def _rate_bound(spec: dict, ctx: dict) -> dict:
    outcomes = list(spec["outcomes"])
    max_rate = float(spec["max_rate"])
    test = (f"rate of {'/'.join(outcomes)} at {_describe(spec['cell'])} below "
            f"{max_rate:g} (Wilson)")
    cells, problem = _cells(spec, ctx, names=("cell",))
    if cells is None:
        return _result(test, "inconclusive", problem)
    cell = cells[0]
    x, n = int(cell["outcome"].isin(outcomes).sum()), len(cell)
    lo, hi = stats.wilson(x, n, ctx["alpha"])
    if hi < max_rate:
        verdict, reason = "supported", f"upper bound below {max_rate:g}"
    elif lo > max_rate:
        verdict, reason = "refuted", f"lower bound above {max_rate:g}"
    else:
        needed = next((m for m in range(n, 400) if stats.wilson(0, m, ctx["alpha"])[1]
                       < max_rate), None)
        reason = f"the interval contains {max_rate:g}"
        if x == 0 and needed:
            reason += f" (with no failures, {needed} runs would be needed)"
        verdict = "inconclusive"
    return _result(test, verdict, reason, f"{x / n:.2f} [{lo:.2f}, {hi:.2f}] ({x}/{n})",
                   x / n, (lo, hi), str(n))


def _interaction(spec: dict, ctx: dict) -> dict:
    endpoint = spec["endpoint"]
    terms = [tuple(t) for t in spec["terms"]]
    test = (f"Firth penalised LRT of {', '.join(' x '.join(t) for t in terms)} on "
            f"{stats.ENDPOINT_TEXT[endpoint]}")
    named = {a for t in terms for a in t}
    frame, factors = _scope(ctx, named)
    if factors is None:
        return _result(test, "inconclusive", "the axes it names are not varied together "
                       "in one block of this study")
    by_axis = {f.axis: f for f in factors}
    missing = sorted(named - set(by_axis))
    if missing:
        return _result(test, "inconclusive",
                       f"not varied in this study: {', '.join(missing)}")
    data = stats.full_budget(frame)
    n = len(data)
    y = stats.endpoint_indicator(data, endpoint).to_numpy()
    if n == 0 or y.min() == y.max():
        return _result(test, "inconclusive", "no variation in the endpoint" if n else
                       "no full-budget runs", n=str(n))
    named = [f for f in factors if f.axis in {a for t in terms for a in t}]
    others = [f for f in factors if f not in named]
    pairs = list(itertools.combinations(named, 2))
    term = stats.factor_term
    rhs = " + ".join([term(f.column) for f in factors]
                     + [f"{term(a.column)}:{term(b.column)}" for a, b in pairs])
    design = patsy.dmatrix(rhs, stats.drop_unused_levels(data, factors),
                           return_type="dataframe")
    if (np.linalg.matrix_rank(design.to_numpy()) < design.shape[1]
            or design.shape[1] >= n):
        return _result(test, "inconclusive", "too few runs or empty cells for the model",
                       n=str(n))
    wanted = {frozenset((by_axis[a].column, by_axis[b].column)) for a, b in terms}
    columns = []
    for a, b in pairs:
        if frozenset((a.column, b.column)) in wanted:
            name = f"{term(a.column)}:{term(b.column)}"
            columns += list(range(design.shape[1]))[design.design_info.term_name_slices[name]]
    result = stats.firth_lrt(design.to_numpy(), y, columns)
    share, lo, hi = _share_interval(data.assign(y=y), factors, terms, ctx)
    effect = (f"variance share {share:.2f} [{lo:.2f}, {hi:.2f}]; chi2={result.chi2:.2f}, "
              f"df={result.df}, p={result.p_value:.3g}")
    max_share = float(spec["max_share"])
    if result.p_value < ctx["alpha"]:
        verdict, reason = "supported", f"p < {ctx['alpha']:g}"
    elif np.isfinite(hi) and hi < max_share:
        verdict, reason = "refuted", f"not significant and the share is below {max_share:g}"
    else:
        verdict = "inconclusive"
        reason = ("not significant, but a share as large as "
                  f"{max_share:g} is not excluded" if np.isfinite(hi) else
                  "not significant; the grid is incomplete, so no share interval")
    if result.separation:
        reason += "; separation detected (Firth estimates finite)"
    if others:
        reason += f"; other axes as main effects: {', '.join(f.axis for f in others)}"
    return _result(test, verdict, reason, effect, share, (lo, hi), str(n))


def _share_interval(data: pd.DataFrame, factors: list[stats.Factor], terms, ctx
                    ) -> tuple[float, float, float]:
    """Summed fANOVA share of `terms` on the full grid, with a within-cell bootstrap."""
    names = [f.axis for f in factors]
    keys = [f"{a} x {b}" if names.index(a) < names.index(b) else f"{b} x {a}"
            for a, b in terms]

    def share(sample: pd.DataFrame) -> float:
        cube = stats.cell_mean_cube(sample, factors, "y")
        if cube is None:
            return math.nan
        shares = stats.grid_shares(cube, names)
        return sum(shares.get(k, 0.0) for k in keys) if shares else 0.0

    estimate = share(data)
    if not np.isfinite(estimate):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(ctx["seed"])
    groups = [g.to_numpy() for _, g in data.groupby([f.column for f in factors],
                                                    observed=True)["y"]]
    cube_shape = [len(f.levels) for f in factors]
    # A binary endpoint resamples each cell's rate from its Jeffreys posterior
    # Beta(x + 1/2, n - x + 1/2): resampling runs of a 0/3 or 3/3 cell has no variance and
    # would give a zero-width interval from three runs.
    binary = all(np.isin(g, (0.0, 1.0)).all() for g in groups)
    draws = []
    for _ in range(500):
        if binary:
            means = np.array([rng.beta(g.sum() + 0.5, len(g) - g.sum() + 0.5) for g in groups])
        else:
            means = np.array([g[rng.integers(0, len(g), len(g))].mean() for g in groups])
        shares = stats.grid_shares(means.reshape(cube_shape), names)
        draws.append(sum(shares.get(k, 0.0) for k in keys) if shares else 0.0)
    lo, hi = np.quantile(draws, [ctx["alpha"] / 2, 1 - ctx["alpha"] / 2])
    return estimate, float(lo), float(hi)


def _any_of(spec: dict, ctx: dict) -> dict:
    parts = spec["parts"]
    part_ctx = {**ctx, "alpha": ctx["alpha"] / len(parts)}
    results = [_evaluate(part, part_ctx) for part in parts]
    verdicts = [r["verdict"] for r in results]
    if "supported" in verdicts:
        verdict = "supported"
    elif all(v == "refuted" for v in verdicts):
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    joined = " | ".join
    return _result(f"any of ({len(parts)} parts at alpha/{len(parts)}): "
                   + joined(r["test"] for r in results), verdict,
                   joined(f"{r['verdict']}: {r['reason']}" for r in results),
                   joined(r["effect"] or "-" for r in results)
                   if any(r["effect"] for r in results) else "",
                   n=joined(r["n"] or "-" for r in results) if any(r["n"] for r in results)
                   else "")
