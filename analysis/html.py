"""HTML for every report kind: escaping, tables, pages and figures embedded as data URIs;
and the main report's page, report.html (one self-contained file). Its text twin,
summary.txt, is analysis.summary's."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import boundary, stats
from analysis import claims as claims_mod

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.86em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.15em .6em;border-radius:.3em;color:#fff;font-weight:600}
.confirmatory{background:#2b7a3d}.exploratory{background:#b26b00}
.note{background:#fff8e1;border-left:4px solid #e0a800;padding:.5em .8em;margin:.8em 0}
.primary{background:#eef5ff;border-left:4px solid #2f6fd6;padding:.5em .8em;margin:.8em 0}
.supported{color:#1e7b34;font-weight:600}.refuted{color:#b3261e;font-weight:600}
.inconclusive{color:#6d6d6d;font-weight:600}.smaller_than_claimed{color:#9a6700;font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
figure{margin:1em 0}figcaption{font-size:.88em;color:#555}
"""


def esc(value) -> str:
    """Any value as HTML-escaped text."""
    return html.escape(str(value))


def fmt(value, digits: int = 3) -> str:
    """A number in `digits` significant digits; "" for a missing or non-finite one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def table(frame: pd.DataFrame, numeric: tuple[str, ...] = (), classes: dict | None = None
          ) -> str:
    """A plain HTML table; `classes` maps a column to a function value -> css class."""
    classes = classes or {}
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            value = row[column]
            css = []
            if column in numeric:
                css.append("num")
            if column in classes:
                css.append(classes[column](value))
            attr = f' class="{" ".join(c for c in css if c)}"' if any(css) else ""
            cells.append(f"<td{attr}>{esc(fmt(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def page(title: str, body: str) -> str:
    """A whole self-contained HTML page."""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body>"
            "</html>")


def embed(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def day_lr_text(study) -> str:
    """What the day layers' lr did while lr_max varied (study.yaml's day_lr)."""
    optim = study.train_config.optim
    day = optim.lr_max_day if optim.lr_max_day is not None else optim.lr_max
    if study.day_lr == "fixed":
        return (f"fixed at {day:g} whatever lr_max (as the official rnn_args.yaml, where "
                "lr_max_day is its own key)")
    if study.day_lr == "follow":
        return "follows each trial's lr_max"
    return "lr_max is not an axis" if not any(
        a.key == "optim.lr_max" for a in study.axes.values()) else \
        "follows each trial's lr_max (recorded before the choice existed)"


def what_was_run(experiment) -> str:
    study = experiment.study
    axes = []
    for axis in experiment.axes:
        raw = study.axes[axis.name]
        if axis.values is not None:
            spec = ", ".join(stats.format_value(v) for v in axis.values)
        else:
            spec = f"{axis.distribution}({raw.low:g}, {raw.high:g})"
        linked = f", moves with {raw.linked_to}" if raw.linked_to else ""
        axes.append(f"{axis.name} ({axis.key or '-'}): {spec}{linked}")
    data = study.data
    versions = ", ".join(f"{k} {v}" for k, v in study.versions.items())
    items = [
        ("study", experiment.name), ("preset", study.preset), ("kind", experiment.kind),
        ("search / scheduler", f"{study.search} / {study.scheduler}"),
        ("axes", "; ".join(axes)),
        ("seeds (first wave)", ", ".join(map(str, study.seeds))),
        ("budget (steps)", f"{study.budget_steps} ({study.budget}), evaluation every "
                           f"{study.eval_every}"),
        ("metric", f"{study.metric} ({study.mode})"),
        ("day-layer lr", day_lr_text(study)),
        ("data", f"{data.path}, fingerprint {data.fingerprint}, {data.n_sessions} sessions, "
                 f"{data.n_train_trials} train / {data.n_val_trials} val trials"),
        ("claims", f"{study.claims.path} (sha256 {study.claims.sha256[:12]}, analysis "
                   f"version {study.claims.analysis_version})" if study.claims else "none"),
        ("versions", versions), ("command", study.cli),
        ("started", study.started), ("folder", str(experiment.path)),
    ]
    return table(pd.DataFrame(items, columns=["", "value"]))


def _waves(experiment) -> str:
    adaptive = experiment.study.adaptive
    if adaptive is None:
        return "<p>A fixed design (no claim-directed waves).</p>"
    points = experiment.study.points
    rows = []
    for wave in adaptive.waves:
        cells = sorted({t.cell for t in wave.trials})
        rows.append({"wave": wave.index, "trials": len(wave.trials),
                     "cells": "; ".join(", ".join(f"{k}={v:g}" for k, v in points[c].items())
                                        for c in cells) if len(cells) <= 6
                     else f"{len(cells)} cells",
                     "seeds": ", ".join(map(str, sorted({t.seed for t in wave.trials}))),
                     "why": wave.reason,
                     "minutes": f"{wave.minutes:.1f}" if wave.minutes is not None else
                     "unfinished"})
    budget = ", ".join(x for x in (
        f"{adaptive.minutes:g} training minutes" if adaptive.minutes else "",
        f"{adaptive.max_trials} trials" if adaptive.max_trials else "") if x) or "none"
    return (f"<p>Budget: {esc(budget)}; spent {adaptive.minutes_spent:.1f} minutes on "
            f"{adaptive.n_trials} trials. Stopped: {esc(adaptive.stopped or 'not yet')}.</p>"
            + table(pd.DataFrame(rows), numeric=("wave", "trials")))


MAX_CELL_ROWS = 64
DENOMINATOR_COLUMNS = {"n_finished": "finished", "n_stopped_early": "stopped early",
                       "n_diverged": "diverged", "n_errored": "errored", "n_total": "total",
                       "n": "full budget", "count_stable": "stable",
                       "count_blank_collapse": "blank_collapse",
                       "count_diverged": "outcome diverged", "count_exploding": "exploding",
                       "count_slow": "slow"}


def _denominator_table(cells: pd.DataFrame, factors) -> str:
    shown = cells.rename(columns={f.column: f.axis for f in factors})
    shown = shown[[f.axis for f in factors] + list(DENOMINATOR_COLUMNS)]
    return table(shown.rename(columns=DENOMINATOR_COLUMNS),
                 numeric=tuple(DENOMINATOR_COLUMNS.values()))


def _denominators(results) -> str:
    trials = results.frame
    counts = trials["status"].value_counts().reindex(
        ["finished", "stopped_early", "diverged", "errored"], fill_value=0)
    overall = pd.DataFrame([{**{k.replace("_", " "): int(v) for k, v in counts.items()},
                             "total": len(trials)}])
    text = ("<p>Rates and tests count only full-budget runs (finished, or diverged: a "
            "divergence is a complete observation of failure). Runs stopped early and runs "
            "that errored are counted here and in no rate (the failure-rate claims bound an "
            "errored run's outcome both ways instead: see Verdicts). The outcome columns count "
            "full-budget runs by final outcome.</p>")
    parts = [text, table(overall)]
    for block in results.blocks:
        if not block.factors:
            continue
        if len(results.blocks) > 1:
            parts.append(f"<h3>{esc(block.label)}</h3>")
        if len(block.cells) <= MAX_CELL_ROWS:
            parts.append(_denominator_table(block.cells, block.factors))
        else:
            parts.append(f"<p>{len(block.cells)} cells: shown per level of each axis.</p>")
            for factor in block.factors:
                parts.append(_denominator_table(
                    stats.cell_summary(block.frame, [factor.column]), [factor]))
    return "".join(parts)


def _tests_section(experiment, results) -> str:
    parts = []
    if not experiment.confirmatory:
        parts.append('<div class="note"><b>Exploratory.</b> The scheduler or an adaptive '
                     "searcher decided which runs got the full budget, so these tests are "
                     "exploratory: they describe the runs that were completed, not the "
                     "factorial design. Confirm with a full-budget seeded grid.</div>")
    tests = results.tests
    if tests.empty:
        parts.append("<p>Fewer than two axes vary: no interaction to test.</p>")
        return "".join(parts)
    columns = ["pair", "endpoint", "method", "statistic", "df", "p_value", "p_holm",
               "partial_eta2", "n", "separation", "note"]
    if tests["block"].nunique() > 1:
        columns.insert(0, "block")
    shown = tests[columns].copy()
    shown["endpoint"] = shown["endpoint"].map(stats.ENDPOINT_TEXT)
    parts.append(
        "<p>Each row tests whether the effect of one axis depends on the other (the "
        "interaction term), with the remaining varied axes as additive blocks. PER: "
        "two-way ANOVA, type III sums of squares with sum-to-zero contrasts, on the raw "
        "final val_per of runs that neither collapsed nor diverged; effect size partial "
        "eta<sup>2</sup>. Binary endpoints: Firth-penalised logistic regression with a "
        "penalised likelihood-ratio test of the interaction columns (the constrained fit "
        "keeps the full model's penalty); separation is detected by linear programming "
        "and reported. p_holm: Holm-adjusted across all rows (blocks x pairs x endpoints). "
        "These are secondary, exploratory tests; the pre-registered primary hypothesis and "
        "the claims are decided at the top of this report."
        + (" In an adaptive study they use the first wave (the balanced design) only."
           if experiment.study.adaptive is not None else "") + "</p>")
    parts.append(table(shown, numeric=("statistic", "p_value", "p_holm", "partial_eta2", "n"),
                       classes={"p_holm": lambda p: "supported" if fmt(p) and p < stats.ALPHA
                                else ""}))
    return "".join(parts)


def _fanova_section(results) -> str:
    parts = ["<p>Share of the variance of each response across the grid explained by each "
             "axis and each pair of axes (functional ANOVA; shares sum to 1 with the "
             "higher-order remainder). Binary responses are rates per cell.</p>"]
    for block in results.blocks:
        fa = block.fanova
        if len(results.blocks) > 1:
            parts.append(f"<h3>{esc(block.label)}</h3>")
        if fa.empty or fa["term"].eq("").all():
            parts.append("<p>No variance decomposition: no response varies.</p>")
            continue
        shares = fa[fa["term"] != ""].pivot_table(index="term", columns="response",
                                                  values="share", sort=False)
        shares = shares.map(lambda v: f"{v:.3f}" if np.isfinite(v) else "").reset_index()
        methods = fa.drop_duplicates("response")[["response", "method", "oob_r2", "n",
                                                  "note"]]
        parts.append(table(shares, numeric=tuple(shares.columns[1:]))
                     + table(methods, numeric=("oob_r2", "n")))
    return "".join(parts)


def _regime_section(results) -> str:
    analysis = results.boundary
    spec = analysis.spec
    if spec is None:
        return f"<p>{esc(results.regime['note'].iloc[0])}.</p>"
    regimes = "; ".join(f"{regime.replace('_', ' ')}: {spec.across} "
                        f"{', '.join(f'{v:g}' for v in values)}"
                        for regime, values in spec.regimes.items())
    text = (
        "<p>With eps much larger than sqrt(v_hat) Adam is momentum SGD with step lr/eps "
        "(Choi et al. 2019), so its stability boundary should run along lr/eps = const "
        f"(slope d log {spec.along} / d log {spec.across} = 1); with tiny eps it should not "
        f"depend on eps (slope 0). Regimes by design, fixed in the preset before running "
        f"({esc(regimes)}); each column's median eps_dominance is a check, not an "
        f"assignment (table below: a large-eps column should exceed "
        f"{boundary.EPS_DOMINANCE_THRESHOLD:g}). A run has failed when its final outcome is "
        f"{esc(', '.join(spec.failed))}; runs fail "
        f"{'below' if spec.side == 'lower' else 'above'} the boundary. In each column and "
        "seed the failed and the fine value nearest each other bracket the boundary "
        f"(boundary.csv); refinement waves bisected the brackets in log {spec.along} to a "
        f"factor {spec.tolerance:g} while the budget lasted. Method: {esc(boundary.METHOD)}: "
        f"log boundary = a + b log {spec.across} + seed offset + normal noise, each bracket "
        "an interval-censored observation; the 95% interval of the slope b is where the "
        "profile likelihood stays within the F(1, n - p)-based threshold of its maximum, "
        "joined with the identified set (the slopes of the lines that pass through every "
        "bracket). Unlike a Wald or Fieller interval on a logistic fit it stays valid when "
        "the data separate (every run on its side of one line): then the noise estimate "
        "is 0, the likelihood is flat over the identified set, and more seeds of the same "
        "pattern cannot shrink the interval below it. Verdict: supported when the "
        "interval lies within the regime's band (large eps: 0.5 to 2; small eps: -0.5 to "
        "0.5), refuted when it misses the band, else inconclusive. p_linearity: the "
        "likelihood-ratio test of one free boundary per column against the line.</p>")
    shown = results.regime.assign(regime=results.regime["regime"].map(boundary.REGIME_TEXT))
    columns = analysis.columns
    return (text + table(shown.drop(columns=["method"]),
                         numeric=("prediction", "band_low", "band_high", "n_seeds",
                                  "n_brackets", "n_censored", "n_not_monotone", "slope",
                                  "slope_low", "slope_high", "identified_low",
                                  "identified_high", "p_linearity"),
                         classes={"verdict": str})
            + "<p>Columns and their measured eps_dominance:</p>"
            + table(columns, numeric=(spec.across, "n_runs", "median_eps_dominance")))


def decided_when(experiment, claim_id: str) -> str:
    """'wave 3, 17 seeds' for an adaptive study's decided claim, else ''."""
    adaptive = experiment.study.adaptive
    wave = adaptive.decided_at(claim_id) if adaptive is not None else None
    if wave is None:
        return ""
    return f"wave {wave.index}, {wave.seeds.get(claim_id, '?')} seeds"


def _verdict_class(words: str) -> str:
    """The CSS class of a verdict as printed (its id)."""
    return {w: k for k, w in claims_mod.VERDICT_WORDS.items()}.get(words, "")


def _verdict_table(experiment, results) -> pd.DataFrame:
    claims = results.claims
    held = [results.held_late.get(i, "") for i in claims["id"]]
    table = pd.DataFrame({"claim": claims["id"], "statement": claims["claim"],
                          "verdict": claims["verdict"].map(claims_mod.VERDICT_WORDS),
                          "effect [95% CS]": claims["effect"], "seeds": claims["n"],
                          "held over the last quarter of training": held, "why": claims["reason"]})
    table["world"] = results.scope.tag
    if experiment.study.adaptive is not None:
        table.insert(5, "decided after", [decided_when(experiment, i) for i in claims["id"]])
    if results.detector_checks:
        table["no failure seen: detector check"] = [results.detector_checks.get(i, "")
                                                    for i in claims["id"]]
    return table


def _answer(experiment, results, figure: str) -> str:
    parts = []
    if results.post_hoc:
        parts.append(f'<div class="note"><b>POST HOC.</b> {esc(results.post_hoc)}. These '
                     "verdicts were not pre-registered.</div>")
    if results.claims is None:
        parts.append(f"<p>{esc(results.claims_note)} No claims to decide.</p>")
    else:
        if not experiment.confirmatory:
            parts.append('<div class="note">Exploratory study: these verdicts rest on the '
                         "runs the scheduler let finish.</div>")
        parts.append(table(_verdict_table(experiment, results), numeric=("seeds",),
                           classes={"verdict": _verdict_class}))
        parts.append(figure)
        parts.append(
            f"<p>{esc(results.claims_note)} Rules fixed before the runs, applied by "
            "analysis/claims/. Runs are paired by seed (seed k is replicate k in every "
            "cell: common random numbers), so each claim is a mean over seeds of a per-seed "
            "contrast; intervals are 95% anytime-valid confidence sequences (betting CS, "
            "Waudby-Smith &amp; Ramdas 2024), valid however many waves were looked at. "
            "SUPPORTED: the interval lies beyond the claimed size; SMALLER THAN CLAIMED: it "
            "excludes the claimed size and no effect; REFUTED: it excludes the claimed size "
            "and contains no effect (or shows the opposite); INCONCLUSIVE: it contains the "
            "claimed size. The four cannot both be reached under one truth, and each is "
            "wrong with probability at most 2.5% on its side. Error control is per claim "
            "(each at its own alpha), not across the claims. 'Held over the last quarter "
            "of training' asks whether the verdict and the effect's sign would have been "
            "the same had every run stopped at each evaluation of that quarter.</p>")
    if results.primary_kind == "claim":
        parts.append(f'<div class="primary"><b>Pre-registered primary hypothesis</b> '
                     f"({esc(results.primary_text)}): the row 'primary' above.</div>")
    elif results.primary_kind == "regime":
        parts.append(f'<div class="primary"><b>Pre-registered primary hypothesis</b> '
                     f"({esc(results.primary_text)}): the lr/eps regime test below.</div>")
    adaptive = experiment.study.adaptive
    if adaptive is not None:
        parts.append(f"<p>Adaptive replication: {len(adaptive.waves)} wave(s), "
                     f"{adaptive.n_trials} trials, {adaptive.minutes_spent:.1f} training "
                     f"minutes; stopped: {esc(adaptive.stopped or 'not yet')}.</p>")
    return "".join(parts)


def render(experiment, results, figures: dict[str, tuple[Path, str]], definition: str
           ) -> str:
    """The whole report as one HTML string (figures embedded)."""
    def fig(name: str) -> str:
        return embed(*figures[name]) if name in figures else ""

    def figs(kind: str) -> str:
        return "".join(embed(*figures[k]) for k in figures if kind in k)

    binning = sorted({note for block in results.blocks for note in block.binning})
    kind = experiment.kind
    caveats = "".join(f"<li>{esc(c)}</li>" for c in results.caveats) or "<li>none</li>"
    complete = int(results.frame["status"].isin(("finished", "diverged")).sum())
    body = f"""
<h1>Stability study: {esc(experiment.name)}</h1>
<p class="scope"><b>{esc(results.opening)}</b></p>
<p><span class="badge {esc(kind)}">{esc(kind)}</span>
preset <b>{esc(experiment.study.preset)}</b>, {len(results.frame)} runs, {complete}
with a complete outcome, {experiment.study.budget_steps} steps each.</p>
<h2>Verdicts</h2>{_answer(experiment, results, fig('claims'))}
<h2>Stable-region map</h2><p><b>Definition.</b> {esc(definition)}</p>
{figs('stable_map') or '<p>Fewer than two axes vary.</p>'}
<h2>Outcome rates and PER by pair of axes</h2>
<p>{esc(' '.join(binning) or 'All axes are grid axes (no binning).')}</p>
{figs('pair_')}
<h2>Learning-rate sensitivity</h2>{figs('lr_sensitivity') or '<p>lr_max does not vary.</p>'}
<h2>Interaction tests (secondary, exploratory)</h2>{_tests_section(experiment, results)}
<h2>Effect sizes: functional ANOVA</h2>{_fanova_section(results)}
<h2>The lr/eps regime test</h2>{fig('eps_regime')}{_regime_section(results)}
<h2>Training curves</h2>{fig('training_curves')}
<h2>Caveats</h2><ul>{caveats}</ul>
<h2>What was run</h2>{what_was_run(experiment)}
<h2>Waves</h2>{_waves(experiment)}
<h2>Denominators</h2>{_denominators(results)}
<h2>Methods and references</h2>
<ul>
<li>Claims: per-seed contrasts with 95% anytime-valid confidence sequences for means of
bounded variables by betting (Waudby-Smith &amp; Ramdas 2024, JRSS-B 86(1); Howard, Ramdas,
McAuliffe &amp; Sekhon 2021); the median of paired step ratios by inverted sign tests;
Bonferroni across the parts of one claim. Cell status on the maps: the same confidence
sequence for the cell's stable rate against {stats.STABLE_RATE_THRESHOLD:.0%}.</li>
<li>Median final PER per cell with its exact distribution-free (order-statistic) 95% interval
(scipy.stats.quantile_test); none below 6 runs.</li>
<li>Two-way ANOVA with type III sums of squares, sum-to-zero contrasts (statsmodels).</li>
<li>Firth-penalised logistic regression (Firth 1993) with penalised likelihood-ratio tests
(Heinze &amp; Schemper 2002); separation detection (Konis 2007) via firthmodels.</li>
<li>Holm step-down adjustment (Holm 1979).</li>
<li>Functional ANOVA variance shares, exact on a complete grid; random-forest surrogate with
out-of-bag R<sup>2</sup> otherwise (Hutter, Hoos &amp; Leyton-Brown, ICML 2014).</li>
<li>Learning-rate sensitivity plot after Wortsman et al. 2023 (arXiv 2309.14322); the eps
regime after Choi et al. 2019 (arXiv 1910.05446).</li>
<li>Regime test: interval-censored regression of the log boundary on log eps with seed as
block, profile-likelihood interval (concave in the scaled parameters: Pratt 1981; Burridge
1981) with the t-exact likelihood-ratio threshold, joined with the identified set of the
separated case (Manski 2003; Heinze &amp; Schemper 2002 on separation).</li>
</ul>
"""
    return page(f"{experiment.name}: stability report", body)
