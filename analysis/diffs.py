"""The report of a diff study (study/diff.py): which difference between two training
configs changes the failure rate or the final val PER, ranked, with intervals.

Each factor (a config key whose value differs) has two registered claims, one per
endpoint, each an any_of over two contexts: the difference applied alone to the `from`
config, and removed alone from the `to` config. The verdicts are the claims' (the
adaptive engine's error control, analysis/claims). Beside them, each context's effect is
shown with its confidence sequence at alpha/2, the level the any_of's support reads each
part at, so a reader sees how large each effect is and whether it depends on the other
differences: an effect seen when the key is applied alone but not when it is removed
from the failing config (or the reverse) interacts with the other differences.

The ranking orders the factors by how far their effect is shown to lie from none, in
units of the claimed size (the interval's end nearest zero over the margin, 0 when the
interval contains zero), failure rate before PER; among equals (often every factor early
in a study) by the largest point estimate in claimed sizes, again failure rate first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import claims as claims_mod
from analysis import figures, html
from analysis.load import Experiment
from analysis.scope import study_scope
from analysis.stats import ALPHA
from analysis.verdicts import judge_claims

ENDPOINTS = ("failure_rate", "final_per")
CONTEXTS = ("applied", "removed")  # applied alone to `from`; removed alone from `to`
EFFECT_COLUMNS = ["factor", "key", "from", "to", "endpoint", "context", "estimate", "ci_low",
                  "ci_high", "n", "margin"]
ENDPOINT_WORDS = {"failure_rate": "failure rate", "final_per": "final val PER"}


@dataclass(frozen=True)
class Factor:
    name: str  # the axis name
    key: str  # the dotted config key
    before: object  # the `from` value (level 0)
    after: object  # the `to` value (level 1)


def factors_of(experiment: Experiment) -> list[Factor]:
    return [Factor(name, axis.key, axis.levels[0], axis.levels[1])
            for name, axis in experiment.study.axes.items() if axis.levels is not None]


def is_diff_study(experiment: Experiment) -> bool:
    return bool(factors_of(experiment))


def effects(experiment: Experiment, claims: claims_mod.ClaimsFile, alpha: float = ALPHA
            ) -> pd.DataFrame:
    """One row per factor, endpoint and context: the effect (cell minus reference, paired
    by seed) with its confidence sequence at alpha/2, the seeds, and the margin."""
    runs = claims_mod.Runs(experiment.trials, experiment.curves)
    by_id = {c.id: c for c in claims.claims}
    rows = []
    for factor in factors_of(experiment):
        for endpoint in ENDPOINTS:
            claim = by_id.get(f"{factor.name}_changes_{endpoint}")
            if claim is None or not isinstance(claim.rule, claims_mod.AnyOf):
                continue
            for context, part in zip(CONTEXTS, claim.rule.parts, strict=False):
                result = claims_mod.evaluate_rule(part, runs, alpha / len(claim.rule.parts))
                rows.append({"factor": factor.name, "key": factor.key,
                             "from": repr(factor.before), "to": repr(factor.after),
                             "endpoint": endpoint, "context": context,
                             "estimate": result.estimate, "ci_low": result.ci_low,
                             "ci_high": result.ci_high, "n": result.n,
                             "margin": part.margin})
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def shown_distance(low: float, high: float, margin: float) -> float:
    """How far an interval is shown to lie from zero, in margins: its end nearest zero over
    the margin, 0 when it contains zero (or is missing)."""
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0.0 <= high:
        return 0.0
    return min(abs(low), abs(high)) / margin


def ranking(effect_table: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per factor, most clearly effective first: both claims' verdicts, the
    largest shown distance per endpoint, and whether an endpoint's effect depends on the
    context (the two contexts' intervals do not overlap)."""
    verdict = verdicts.set_index("id")["verdict"].to_dict() if len(verdicts) else {}
    rows = []
    for factor, group in effect_table.groupby("factor", sort=False):
        row = {"factor": factor, "key": group["key"].iloc[0], "from": group["from"].iloc[0],
               "to": group["to"].iloc[0]}
        for endpoint in ENDPOINTS:
            part = group[group["endpoint"] == endpoint]
            row[f"{endpoint}_verdict"] = verdict.get(f"{factor}_changes_{endpoint}",
                                                     "inconclusive")
            distances = [shown_distance(r.ci_low, r.ci_high, r.margin)
                         for r in part.itertuples()]
            row[f"{endpoint}_shown"] = max(distances, default=0.0)
            ends = part[["ci_low", "ci_high"]].to_numpy(dtype=float)
            row[f"{endpoint}_largest"] = max(
                (abs(r.estimate) / r.margin for r in part.itertuples()
                 if math.isfinite(r.estimate)), default=0.0)
            row[f"{endpoint}_context_dependent"] = bool(
                len(ends) == 2 and np.isfinite(ends).all()
                and (ends[0, 0] > ends[1, 1] or ends[1, 0] > ends[0, 1]))
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # Shown distances first; among equals (often all 0 early on) the point estimates.
    return table.sort_values(["failure_rate_shown", "final_per_shown", "failure_rate_largest",
                              "final_per_largest"], ascending=False,
                             kind="stable").reset_index(drop=True)


def effects_figure(effect_table: pd.DataFrame, order: list[str]) -> plt.Figure:
    """Forest plot: each factor's effect and interval per endpoint, both contexts, the
    claimed sizes dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(order) + 1.6), sharey=True)
    y = {factor: len(order) - 1 - i for i, factor in enumerate(order)}
    for ax, endpoint in zip(axes, ENDPOINTS, strict=True):
        part = effect_table[effect_table["endpoint"] == endpoint]
        for context, offset, marker in (("applied", 0.15, "o"), ("removed", -0.15, "s")):
            rows = part[part["context"] == context]
            ys = np.array([y[f] for f in rows["factor"]]) + offset
            est = rows["estimate"].to_numpy(dtype=float)
            low = np.clip(est - rows["ci_low"].to_numpy(dtype=float), 0, None)
            high = np.clip(rows["ci_high"].to_numpy(dtype=float) - est, 0, None)
            ax.errorbar(est, ys, xerr=[low, high], fmt=marker, capsize=3,
                        label=f"{context} alone")
        margin = float(part["margin"].iloc[0]) if len(part) else 0.0
        for x in (-margin, margin):
            ax.axvline(x, linestyle="--", color="grey", linewidth=0.8)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"change in {ENDPOINT_WORDS[endpoint]}")
        ax.set_yticks(list(y.values()), list(y.keys()))
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def headline(rank: pd.DataFrame, scope_tag: str) -> list[str]:
    """The answer first: which differences change what, one line each."""
    lines = []
    for endpoint in ENDPOINTS:
        column = f"{endpoint}_verdict"
        for verdict in ("supported", "smaller_than_claimed", "refuted", "inconclusive"):
            names = rank.loc[rank[column] == verdict, "factor"].tolist()
            if names:
                lines.append(f"  {ENDPOINT_WORDS[endpoint]}: "
                             f"{claims_mod.VERDICT_WORDS[verdict]} for {', '.join(names)}")
    return [f"Which difference changes the outcome ({scope_tag}):", *lines]


def build(experiment: Experiment, out: Path, claims: claims_mod.ClaimsFile | None,
          post_hoc: str = "") -> Path:
    """report.html, summary.txt, ranking.csv, effects.csv, claims.csv and the figure."""
    out.mkdir(parents=True, exist_ok=True)
    verdicts = judge_claims(experiment, claims)
    table = verdicts.table if verdicts is not None else pd.DataFrame(columns=["id", "verdict"])
    effect_table = effects(experiment, claims) if claims is not None else pd.DataFrame(
        columns=EFFECT_COLUMNS)
    rank = ranking(effect_table, table)
    scope = study_scope(experiment.study)
    experiment.trials.to_csv(out / "trials.csv", index=False)
    effect_table.to_csv(out / "effects.csv", index=False)
    rank.to_csv(out / "ranking.csv", index=False)
    table.assign(data=scope.data, model=scope.model, budget=scope.budget).to_csv(
        out / "claims.csv", index=False)
    saved = {}
    if len(rank):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved = figures.save_all({"effects": (
                effects_figure(effect_table, rank["factor"].tolist()),
                "Each difference's effect, applied alone to the working config (circles) "
                "and removed alone from the failing one (squares), with 95% confidence "
                "sequences at alpha/2; dashed: the claimed sizes")}, out / "figures")
    answer = headline(rank, scope.tag) if len(rank) else ["No factor claims to judge."]
    warning = [f"POST HOC: {post_hoc}"] if post_hoc else []
    lines = [*warning, *answer, f"Scope: {scope.text}",
             f"Study {experiment.name}: {len(experiment.trials)} runs, "
             f"{experiment.study.budget_steps} steps each",
             f"Report: {out / 'report.html'}"]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    verdict_css = {f"{e}_verdict": lambda v: v for e in ENDPOINTS}
    body = "".join([
        f"<h1>Which difference changes the outcome? {html.esc(experiment.name)}</h1>",
        *(f'<p class="primary">{html.esc(w)}</p>' for w in warning),
        f"<p>{'<br>'.join(html.esc(a) for a in answer)}</p>",
        f"<p>Scope: {html.esc(scope.text)}</p>",
        html.what_was_run(experiment),
        "<h2>Ranking</h2>",
        "<p>Most clearly effective first: how far each effect's interval lies from zero, "
        "in claimed sizes (0: an interval that contains zero). Context-dependent: the "
        "effect applied alone and removed alone do not overlap, so the key acts together "
        "with other differences.</p>",
        html.table(rank, numeric=("failure_rate_shown", "final_per_shown",
                                  "failure_rate_largest", "final_per_largest"),
                   classes=verdict_css),
        *(html.embed(path, caption) for path, caption in saved.values()),
        "<h2>Effects per context</h2>",
        html.table(effect_table, numeric=("estimate", "ci_low", "ci_high", "n", "margin")),
        "<h2>Claims</h2>",
        html.table(table[["id", "claim", "effect", "n", "verdict", "reason"]]
                   if len(table) else table, classes={"verdict": lambda v: v}),
    ])
    (out / "report.html").write_text(html.page(f"diff {experiment.name}", body))
    return out
