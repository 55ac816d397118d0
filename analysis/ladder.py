"""Transfer report of a scale ladder: does each claim's verdict hold as the model grows?

Reads `<ladder>/ladder.yaml` (study/ladder.py) and each rung's study; judges the claims the
rungs registered on each rung's own runs (the same rules, the same cells), and writes into
`<ladder>/report/`: transfer.csv (claim x rung: verdict, effect, 95% confidence sequence,
seeds, held over the last quarter of training), agreement.csv (per claim: does the
decision agree across rungs, does the effect's direction), figures/transfer.png (effect vs
rung), report.html and summary.txt.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import claims as claims_mod
from analysis import figures, html
from analysis.boundary import width
from analysis.load import Experiment, load_rungs
from analysis.record import LadderRecord, read_ladder
from analysis.runs import is_full_budget
from analysis.verdicts import judge_claims, registered_claims
from trainable.config import Config
from trainable.errors import UserError


NO_CLAIMS = "the rung registered no claims; a ladder compares claim verdicts across rungs"


def _width_lines(ladder_dir: Path, out: Path, rungs: dict[str, Experiment | str | UserError]
                 ) -> list[str]:
    """A ladder without claims whose rungs sweep lr_max (configs/studies/width.yaml): the
    learning-rate boundary against layer-0 fan-in (analysis.boundary.width), or nothing
    when its rungs are not such a sweep."""
    try:
        return width.summary_lines(width.write(ladder_dir, out, rungs))
    except UserError:
        return []


def rung_size(train_config: Config, budget_steps: int) -> str:
    model = train_config.model
    return (f"{model.n_layers}x{model.n_units} GRU, "
            f"{train_config.data.n_features} features, {budget_steps} steps")


def judge_rung(experiment: Experiment) -> tuple[pd.DataFrame, str, str]:
    """(claims table with `held_late`, size description, note) of one rung's study."""
    if not is_full_budget(experiment.trials).any():
        raise UserError("no complete run yet")
    claims, post_hoc = registered_claims(experiment, None)
    verdicts = judge_claims(experiment, claims)
    if verdicts is None:
        raise UserError(f"{experiment.path}: {NO_CLAIMS}")
    table = verdicts.table
    table["held_late"] = [verdicts.held_late[i][0] for i in table["id"]]
    study = experiment.study
    note = f"POST HOC: {post_hoc}" if post_hoc else ""
    return table, rung_size(study.train_config, study.budget_steps), note


def transfer_table(ladder: LadderRecord, ladder_dir: Path,
                   rungs: dict[str, Experiment | str | UserError] | None = None
                   ) -> tuple[pd.DataFrame, list[str]]:
    """One row per (claim, rung that ran); plus a note per rung that did not. `rungs`:
    analysis.load.load_rungs of the ladder, when the caller has it already."""
    rows, notes = [], []
    rungs = load_rungs(ladder, ladder_dir) if rungs is None else rungs
    for order, rung in enumerate(ladder.rungs):
        experiment = rungs[rung.name]
        if not isinstance(experiment, Experiment):
            notes.append(f"rung {rung.name}: {experiment}")
            continue
        try:
            table, size, note = judge_rung(experiment)
        except UserError as err:
            notes.append(f"rung {rung.name}: {err}")
            continue
        if rung.status != "done":
            notes.append(f"rung {rung.name}: {rung.status} (verdicts from the runs so far)")
        if note:
            notes.append(f"rung {rung.name}: {note}")
        for _, row in table.iterrows():
            rows.append({"claim": row["id"], "rung": rung.name, "order": order, "size": size,
                         "verdict": row["verdict"], "effect": row["effect"],
                         "estimate": row["estimate"], "ci_low": row["ci_low"],
                         "ci_high": row["ci_high"], "null": row["null"],
                         "bound": row["bound"], "seeds": row["n"],
                         "held_late": row["held_late"], "reason": row["reason"]})
    return pd.DataFrame(rows), notes


def _direction(estimate: float, null: float) -> int | None:
    if np.isnan(estimate):
        return None  # no estimate: neither direction
    return int(np.sign(estimate - null))


def decision_agreement(verdicts: list[str]) -> str:
    """'agrees': one verdict everywhere; 'flips': SUPPORTED at one rung and REFUTED or
    SMALLER THAN CLAIMED at another (the claimed size holds at one, not at another);
    'partly decided': decided at some rungs, inconclusive at others, or REFUTED at some
    and SMALLER at others (not of the claimed size at either)."""
    decided = {"supported" if v == "supported" else "not of the claimed size"
               for v in verdicts if v != "inconclusive"}
    if len(set(verdicts)) == 1:
        return "agrees"
    return "flips" if len(decided) > 1 else "partly decided"


def direction_agreement(directions: list[int | None]) -> str:
    """'same': every estimate on the same side of no effect; 'reverses': on opposite sides
    at two rungs; 'vanishes': no effect at some rungs, an effect at others."""
    known = {d for d in directions if d is not None}
    if not known:
        return "unknown"
    if {-1, 1} <= known:
        return "reverses"
    return "same" if len(known) == 1 else "vanishes"


def agreement(transfer: pd.DataFrame) -> pd.DataFrame:
    """Per claim: the verdict at each rung, whether the decision and the effect's direction
    agree across the rungs that ran, and in words what changed."""
    columns = ["claim", "rungs", "verdicts", "decision", "direction", "change"]
    rows = []
    for claim, group in transfer.groupby("claim", sort=False) if len(transfer) else ():
        group = group.sort_values("order")
        verdicts = list(group["verdict"])
        decision = decision_agreement(verdicts)
        change = "" if decision == "agrees" else " -> ".join(
            f"{r} {v.upper()}" for r, v in zip(group["rung"], verdicts))
        rows.append({"claim": claim, "rungs": len(group),
                     "verdicts": ", ".join(f"{r}: {v.upper()}"
                                           for r, v in zip(group["rung"], verdicts)),
                     "decision": decision,
                     "direction": direction_agreement(
                         [_direction(e, n) for e, n in zip(group["estimate"], group["null"])]),
                     "change": change})
    return pd.DataFrame(rows, columns=columns)


def headline(agree: pd.DataFrame, n_rungs: int) -> list[str]:
    if agree.empty:
        return ["No rung has judged claims yet."]
    kept = int((agree["decision"] == "agrees").sum())
    lines = [f"{kept} of {len(agree)} claims keep their verdict across the {n_rungs} "
             "rung(s) that ran."]
    for row in agree.itertuples():
        if row.decision == "flips":
            lines.append(f"  VERDICT CHANGES WITH SCALE: {row.claim}: {row.change}")
        elif row.decision == "partly decided":
            lines.append(f"  decided at some rungs only: {row.claim}: {row.change}")
        if row.direction == "reverses":
            lines.append(f"  EFFECT REVERSES across rungs: {row.claim}")
    return lines


def transfer_figure(transfer: pd.DataFrame) -> plt.Figure | None:
    """One panel per claim: the effect (point) and its 95% confidence sequence (bar) at each
    rung, coloured by verdict; dashed: no effect, dotted: the claimed size."""
    if transfer.empty:
        return None
    claims = list(dict.fromkeys(transfer["claim"]))
    rungs = list(dict.fromkeys(transfer.sort_values("order")["rung"]))
    fig, axes = plt.subplots(len(claims), 1, figsize=(8, 1.9 * len(claims) + 0.8),
                             dpi=figures.DPI, squeeze=False)
    for ax, claim in zip(axes[:, 0], claims):
        group = transfer[transfer["claim"] == claim]
        first = group.iloc[0]
        ratio = first["null"] == 1.0 and first["bound"] > 1.0
        values = [*group["estimate"], *group["ci_low"], *group["ci_high"], first["null"],
                  first["bound"]]
        low, high = figures.claim_axis_limits(values, ratio)
        for row in group.itertuples():
            x = rungs.index(row.rung)
            colour = figures.VERDICT_COLOURS.get(row.verdict, "0.3")
            lo = row.ci_low if np.isfinite(row.ci_low) else low
            hi = row.ci_high if np.isfinite(row.ci_high) else high
            ax.plot([x, x], [max(lo, low), min(hi, high)], color=colour, linewidth=4,
                    solid_capstyle="butt")
            if np.isfinite(row.estimate):
                ax.plot([x], [row.estimate], "o", color="black", markersize=6)
            elif not np.isnan(row.estimate):
                ax.plot([x], [high if row.estimate > 0 else low], "^", color="black")
            words = claims_mod.VERDICT_WORDS.get(row.verdict, row.verdict.upper())
            ax.annotate(f"{words}\nn={row.seeds}", (x, high), xytext=(6, -4),
                        textcoords="offset points", va="top", fontsize=7, color=colour)
        for value, style in ((first["null"], "--"), (first["bound"], ":")):
            if np.isfinite(value):
                ax.axhline(value, color="0.35", linestyle=style, linewidth=1.0)
        ax.set_ylim(low, high)
        if ratio:
            ax.set_yscale("log")
        ax.set_xlim(-0.5, len(rungs) - 0.3)
        ax.set_xticks(range(len(rungs)), rungs, fontsize=8)
        ax.set_title(claim, fontsize=9.5, loc="left")
    fig.suptitle("Effect vs rung: point = estimate, bar = 95% anytime-valid confidence "
                 "sequence\ndashed = no effect, dotted = the claimed size", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def render(ladder: LadderRecord, transfer: pd.DataFrame, agree: pd.DataFrame,
           notes: list[str], saved: dict, answer: list[str]) -> str:
    figure = "".join(html.embed(*saved[name]) for name in ("width", "transfer")
                     if name in saved)
    lines = answer
    rungs = pd.DataFrame([{"rung": r.name, "folder": r.folder, "what": r.description,
                           "status": r.status, "minutes": f"{r.minutes:.1f}"
                           if r.minutes is not None else "", "note": r.note}
                          for r in ladder.rungs])
    shown = transfer.drop(columns=["order", "null", "bound"]) if len(transfer) else transfer
    notes_html = "".join(f"<li>{html.esc(n)}</li>" for n in notes) or "<li>none</li>"
    body = f"""
<h1>Scale ladder: {html.esc(ladder.name)}</h1>
<p>preset <b>{html.esc(ladder.preset)}</b>, budget {html.esc(ladder.budget)}: the same
cells and claims run at every rung, each rung its own study (its report is in its folder).</p>
<h2>Answer</h2><p>{'<br>'.join(html.esc(line) for line in lines)}</p>
{html.table(agree, classes={"decision": lambda v: "refuted" if v == "flips" else ""})}
{figure}
<h2>Transfer table</h2>
{html.table(shown, numeric=("estimate", "ci_low", "ci_high", "seeds"),
            classes={"verdict": lambda v: str(v).lower()})}
<h2>Rungs</h2>{html.table(rungs)}<ul>{notes_html}</ul>
<h2>How to read it</h2><ul>
<li>Each claim is judged on each rung's own runs with the registered rules
(analysis/claims/): per-seed contrasts and 95% anytime-valid confidence sequences.</li>
<li>decision: "agrees" (the same verdict at every rung), "flips" (SUPPORTED at one rung,
REFUTED or SMALLER THAN CLAIMED at another: the answer changes with scale) or "partly
decided" (inconclusive at some rungs, often too few seeds there, or REFUTED at some and
SMALLER THAN CLAIMED at others). direction: the estimate on the same side of no
effect at every rung ("same"), at no effect at some ("vanishes"), or on opposite sides
("reverses").</li>
<li>held late: the verdict and the effect's sign held over the last quarter of the rung's
training (a verdict that is still moving at the end of a rung may change with budget).</li>
</ul>
"""
    return html.page(f"{ladder.name}: scale ladder", body)


def build(ladder_dir: Path, out: str | Path | None = None) -> Path:
    ladder = read_ladder(ladder_dir)
    out = Path(out) if out is not None else Path(ladder_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    rungs = load_rungs(ladder, Path(ladder_dir))
    transfer, notes = transfer_table(ladder, Path(ladder_dir), rungs)
    agree = agreement(transfer)
    transfer.to_csv(out / "transfer.csv", index=False)
    agree.to_csv(out / "agreement.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = figures.save_all({"transfer": (transfer_figure(transfer),
                                               "Each claim's effect at every rung")},
                                 out / "figures")
    boundary = _width_lines(Path(ladder_dir), out, rungs) if transfer.empty else []
    if boundary:  # the rungs' "registered no claims" notes say nothing more
        notes = [n for n in notes if not n.endswith(NO_CLAIMS)]
        saved["width"] = (out / "figures" / "width.png",
                          "The tiny-eps learning-rate boundary against layer-0 fan-in")
    answer = boundary or headline(agree, transfer["rung"].nunique() if len(transfer) else 0)
    (out / "report.html").write_text(render(ladder, transfer, agree, notes, saved, answer))
    lines = [f"Scale ladder {ladder.name}: preset {ladder.preset}, budget {ladder.budget}",
             *answer]
    for row in transfer.itertuples():
        words = claims_mod.VERDICT_WORDS.get(row.verdict, row.verdict.upper())
        lines.append(f"  {row.claim} @ {row.rung} ({row.size}): {words} "
                     f"{row.effect}, {row.seeds} seed(s)"
                     + ("" if row.held_late == "yes" else
                        f" [held over the last quarter: {row.held_late}]"))
    lines += notes
    lines.append(f"Report: {out / 'report.html'}")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    return out
