"""How the tiny-eps learning-rate boundary moves with layer 0's fan-in.

    python -m analysis.boundary.width results/width      # the ladder of configs/studies/width.yaml

The question (issue: the eps claim at the official width). With eps = 1e-8 Adam moves every
weight by about lr whatever its gradient, and the change of a layer's pre-activations grows
with its fan-in (Yang et al. 2022, arXiv 2203.03466), so the largest learning rate that
still trains should fall as layer 0's fan-in grows: a slope of about -1 in log lr against
log fan-in if the pre-activation change alone decides it. The proxy's fan-in is 896 (64
features x patch 14), the official model's 7,168 (512 x 14), and the official lr_max is
0.005: does the boundary at 7,168 lie above it?

Data. Each rung of the ladder is one fan-in; its runs cover an lr_max grid at eps 1e-8 in
every seed. A run has failed when it diverged or exploded, or when its final val PER is at
least PER_FACTOR x the rung's best (the lowest over lr_max of the seeds' median final PER;
blank collapse and a run that barely learns are failures by this rule). Only the upper
flank counts: lr_max values at or above the rung's best one. Below it the failures are
those of too small a step (slow runs, the lower boundary), a different boundary. Per rung
and seed the runs bracket the boundary B in (L, U]: L the highest lr_max that trained, U
the lowest that failed (analysis.boundary.bracket, side 'upper'; a non-monotone seed gets
the widened bracket, one with no failure is censored above).

Model: the package's interval-censored boundary regression with seed as block, log fan-in
in place of log eps (analysis.boundary.fit_regime): log B = a + b (log fan-in - centre) +
c_seed + e. The slope b has the profile-likelihood 95% interval (t-exact threshold,
identified set joined under separation); the boundary at the official fan-in is the
fitted line there with its pointwise interval, read against lr_max 0.005. Nothing here is
a registered claim: the slope's prediction (-1) was written before running, in
configs/studies/width.yaml, and the output says what the data show about it.

Writes <ladder>/report/width.csv (the fit), width_brackets.csv and figures/width.png.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.boundary.brackets import bracket
from analysis.boundary.model import RegimeFit, fit_regime
from analysis.figures.common import DPI
from analysis.load import Experiment, load_rungs
from analysis.record import read_ladder
from analysis.runs import full_budget
from analysis.scope import OFFICIAL, study_scope
from trainable.config import Config
from trainable.contract import OFFICIAL_AXES
from trainable.errors import OneLineArgumentParser, UserError, run_cli

FAILED_OUTCOMES = ("diverged", "exploding")
# A run whose final PER is this many times the rung's best has failed (the rule).
PER_FACTOR = 1.5
# The official model's layer-0 fan-in (512 features x patch 14) and its lr_max.
OFFICIAL_FANIN = OFFICIAL["n_features"] * OFFICIAL["patch_size"]
OFFICIAL_LR = OFFICIAL_AXES["lr_max"]
# The prediction written before running (configs/studies/width.yaml).
PREDICTED_SLOPE = -1.0
ALONG = "lr_max"


def fan_in(train_config: Config) -> int:
    """Layer 0's fan-in: features per bin x patch size."""
    return train_config.data.n_features * train_config.model.patch_size


def ladder_runs(ladder_dir: Path, rungs: dict[str, Experiment | str | UserError] | None = None
                ) -> pd.DataFrame:
    """Every full-budget run of the ladder's rungs, with its rung's fan-in. `rungs`:
    analysis.load.load_rungs of the ladder, when the caller has it already."""
    ladder = read_ladder(ladder_dir)
    if ladder is None:
        raise UserError(f"{ladder_dir}: no ladder.yaml; pass the folder "
                        "`python -m study.run grid --preset width` wrote")
    rungs = load_rungs(ladder, ladder_dir) if rungs is None else rungs
    frames = []
    for rung in ladder.rungs:
        experiment = rungs[rung.name]
        if isinstance(experiment, UserError):  # unreadable: say so rather than fit without it
            raise UserError(f"rung {rung.name}: {experiment}")
        if isinstance(experiment, str):  # not started or skipped: no runs
            continue
        runs = full_budget(experiment.trials)
        if ALONG not in runs:
            raise UserError(f"{experiment.path}: its runs have no {ALONG} axis; the width analysis "
                            "reads an lr_max grid per rung")
        frames.append(runs.assign(rung=rung.name,
                                  fan_in=fan_in(experiment.study.train_config),
                                  scope=study_scope(experiment.study).tag))
    if not frames:
        raise UserError(f"{ladder_dir}: no rung has a complete run yet")
    return pd.concat(frames, ignore_index=True)


def mark_failures(runs: pd.DataFrame, per_factor: float = PER_FACTOR) -> pd.DataFrame:
    """The upper-flank runs of each rung with `failed` and the rung's `best_per`."""
    out = []
    for _, rung in runs.groupby("fan_in", sort=True):
        rung = rung.assign(_lr=pd.to_numeric(rung[ALONG]),
                           _per=pd.to_numeric(rung["final_val_per"]))
        medians = rung.groupby("_lr")["_per"].median()
        best_lr, best = float(medians.idxmin()), float(medians.min())
        flank = rung[rung["_lr"] >= best_lr].copy()
        per = flank["_per"].to_numpy(dtype=float)
        flank["failed"] = (flank["outcome"].isin(FAILED_OUTCOMES).to_numpy()
                           | ~np.isfinite(per) | (per >= per_factor * best))
        flank["best_per"], flank["best_lr"] = best, best_lr
        out.append(flank.drop(columns=["_per"]))
    return pd.concat(out, ignore_index=True)


def width_brackets(marked: pd.DataFrame) -> pd.DataFrame:
    """One row per (fan-in, seed): the bracket (low, high] of its boundary."""
    rows = []
    for (fan, seed), group in marked.groupby(["fan_in", "seed"], sort=True):
        values = group["_lr"].to_numpy(dtype=float)
        failures = group["failed"].to_numpy(dtype=bool)
        low, high, monotone = bracket(values, failures, "upper")
        rows.append({"fan_in": int(fan), "seed": int(seed), "low": low, "high": high,
                     "censored": "below" if low == 0 else "above" if math.isinf(high) else "",
                     "monotone": monotone, "n_runs": len(group),
                     "n_failed": int(failures.sum()),
                     "best_per": float(group["best_per"].iloc[0]),
                     "best_lr": float(group["best_lr"].iloc[0])})
    return pd.DataFrame(rows)


@dataclass
class WidthResult:
    brackets: pd.DataFrame
    fit: RegimeFit | None
    note: str
    official: dict
    scope: str = ""  # each rung's world (analysis.scope tags), "; "-joined

    def table(self) -> pd.DataFrame:
        fit = self.fit
        row = {"n_rungs": int(self.brackets["fan_in"].nunique()),
               "n_brackets": len(self.brackets),
               "n_censored": int((self.brackets["censored"] != "").sum()),
               "n_not_monotone": int((~self.brackets["monotone"]).sum()),
               "predicted_slope": PREDICTED_SLOPE, "note": self.note}
        if fit is not None:
            identified = fit.identified
            row.update(slope=fit.slope, slope_low=fit.slope_low, slope_high=fit.slope_high,
                       identified_low=identified[0] if identified else math.nan,
                       identified_high=identified[1] if identified else math.nan,
                       official_fan_in=OFFICIAL_FANIN, official_lr=OFFICIAL_LR,
                       **{f"official_{k}": v for k, v in self.official.items()})
        return pd.DataFrame([row])


def analyse(runs: pd.DataFrame, per_factor: float = PER_FACTOR) -> WidthResult:
    table = width_brackets(mark_failures(runs, per_factor))
    scope = "; ".join(dict.fromkeys(runs["scope"])) if "scope" in runs else ""
    fit = fit_regime(table, "width", "fan_in")
    if isinstance(fit, str):
        return WidthResult(brackets=table, fit=None, note=fit, official={}, scope=scope)
    band = fit.band([OFFICIAL_FANIN]).iloc[0]
    official = {"boundary": float(band["boundary"]), "low": float(band["low"]),
                "high": float(band["high"])}
    return WidthResult(brackets=table, fit=fit, note="", official=official, scope=scope)


def summary_lines(result: WidthResult) -> list[str]:
    b = result.brackets
    lines = ["Tiny-eps (1e-8) learning-rate boundary against layer-0 fan-in "
             f"(a run fails: diverged, exploding, or final PER >= {PER_FACTOR} x the rung's "
             "best; upper flank only)"]
    for fan, group in b.groupby("fan_in", sort=True):
        shown = ", ".join(f"seed {r.seed}: ({r.low:.3g}, {r.high:.3g}]"
                          + (" not monotone" if not r.monotone else "")
                          for r in group.itertuples())
        lines.append(f"  fan-in {fan:>5,}: best PER {group['best_per'].iloc[0]:.3f} at lr "
                     f"{group['best_lr'].iloc[0]:.3g}; boundary {shown}")
    fit = result.fit
    if fit is None:
        lines.append(f"  slope: {result.note}")
        return lines
    lines.append(f"  slope d log lr / d log fan-in: {fit.slope:+.2f} "
                 f"[{fit.slope_low:+.2f}, {fit.slope_high:+.2f}] (95%, {len(b)} brackets; "
                 f"predicted {PREDICTED_SLOPE:+.0f})")
    o = result.official
    side = ("above" if o["low"] > OFFICIAL_LR else "below" if o["high"] < OFFICIAL_LR
            else "not distinguishable from")
    lines.append(f"  boundary at the official fan-in {OFFICIAL_FANIN:,}: lr {o['boundary']:.3g} "
                 f"[{o['low']:.3g}, {o['high']:.3g}], {side} the official lr_max "
                 f"{OFFICIAL_LR}")
    if result.scope:
        lines.append(f"  world of each rung: {result.scope}")
    return lines


def draw(result: WidthResult, path: Path) -> None:
    b = result.brackets
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for seed, group in b.groupby("seed"):
        shift = 1 + 0.03 * (seed - 0.5)
        x = group["fan_in"].to_numpy(dtype=float) * shift
        low = group["low"].to_numpy(dtype=float)
        high = np.where(np.isinf(group["high"]), low * 4, group["high"])
        ax.vlines(x, low, high, lw=4, alpha=0.6, color=f"C{int(seed) % 10}",
                  label=f"seed {seed}: bracket")
    if result.fit is not None:
        fans = np.geomspace(b["fan_in"].min(), OFFICIAL_FANIN, 20)
        line = result.fit.band(fans)
        ax.plot(line["across"], line["boundary"], color="k",
                label=f"fit: slope {result.fit.slope:+.2f} "
                      f"[{result.fit.slope_low:+.2f}, {result.fit.slope_high:+.2f}]")
        ax.fill_between(line["across"], line["low"].clip(lower=1e-6),
                        line["high"].replace(np.inf, np.nan), color="k", alpha=0.12,
                        label="95% pointwise")
    ax.axhline(OFFICIAL_LR, ls="--", color="tab:red", label=f"official lr_max {OFFICIAL_LR}")
    ax.set(xscale="log", yscale="log", xlabel="layer-0 fan-in (features x patch 14)",
           ylabel="largest lr_max that trains (eps 1e-8)",
           title="Tiny-eps lr boundary against width")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def write(ladder_dir: Path, out: Path, rungs: dict[str, Experiment | str | UserError] | None = None
          ) -> WidthResult:
    """The analysis of a width ladder into `out`: width.csv, width_brackets.csv and
    figures/width.png."""
    result = analyse(ladder_runs(ladder_dir, rungs))
    out.mkdir(parents=True, exist_ok=True)
    result.brackets.to_csv(out / "width_brackets.csv", index=False)
    result.table().to_csv(out / "width.csv", index=False)
    draw(result, out / "figures" / "width.png")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python -m analysis.boundary.width",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("ladder", help="the width ladder's folder (results/<name>)")
    args = parser.parse_args(argv)

    def body() -> int:
        out = Path(args.ladder) / "report"
        result = write(Path(args.ladder), out)
        print("\n".join(summary_lines(result)))
        print(f"wrote {out}/width.csv, width_brackets.csv, figures/width.png")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
