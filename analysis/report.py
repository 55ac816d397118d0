"""`python -m analysis.report <experiment dir> [--out DIR] [--claims FILE]`

Reads an experiment folder (never Ray) and writes into <experiment dir>/report/ (or --out):
trials.csv/.parquet, curves.csv/.parquet, cells.csv, tests.csv, fanova.csv, regime.csv,
claims.csv, figures/*.png, report.html (self-contained) and summary.txt.
`study.run` calls `build_report` when a study ends.
"""

from __future__ import annotations

import itertools
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import claims as claims_mod
from analysis import figures, html, stats
from analysis.load import Block, Experiment, load_experiment
from trainable.errors import OneLineArgumentParser, run_cli

# An R^2 below this means the surrogate's variance shares describe the forest, not the data.
SURROGATE_MIN_R2 = 0.5


@dataclass
class BlockResults:
    """Everything computed on one block of the design (see analysis.load.Block)."""

    block: Block
    frame: pd.DataFrame  # the block's runs with level columns
    factors: list[stats.Factor]
    cells: pd.DataFrame
    fanova: pd.DataFrame
    binning: list[str]

    @property
    def label(self) -> str:
        return self.block.describe()


@dataclass
class Results:
    frame: pd.DataFrame  # every run, with its eps regime
    blocks: list[BlockResults]
    tests: pd.DataFrame  # every block's interaction tests, Holm-adjusted together
    primary: stats.Primary | None
    primary_row: pd.Series | None  # the interaction test it names, if it names one
    primary_note: str
    regime: pd.DataFrame
    claims: pd.DataFrame | None
    claims_note: str
    caveats: list[str] = field(default_factory=list)


def _analyse_block(experiment: Experiment, block: Block, primary) -> tuple[BlockResults,
                                                                            pd.DataFrame]:
    runs = experiment.trials[block.mask(experiment.trials)]
    axes = [a for a in experiment.axes if a.name in block.axes]
    frame, factors = stats.factorize(runs, axes)
    tests = pd.DataFrame()
    if len(factors) >= 2:
        tests = stats.interaction_tests(frame, factors, experiment.confirmatory, primary)
        tests.insert(0, "block", block.name)
    exact = experiment.study.get("search", "grid") == "grid" and not any(
        f.binned for f in factors)
    fanova = stats.fanova(frame, factors, exact_allowed=exact)
    fanova.insert(0, "block", block.name)
    result = BlockResults(block=block, frame=frame, factors=factors,
                          cells=stats.cell_summary(frame, [f.column for f in factors]),
                          fanova=fanova, binning=stats.binning_notes(factors))
    return result, tests


def analyse(experiment: Experiment, claims: dict | None) -> Results:
    """Every statistic of the report, from the loaded tables (no files written)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        varied = [a.name for a in experiment.axes
                  if experiment.trials[a.name].nunique(dropna=True) > 1]
        primary, primary_note = stats.parse_primary(
            experiment.study.get("primary_hypothesis"), varied)
        blocks, tests = [], []
        for block in experiment.blocks:
            result, block_tests = _analyse_block(experiment, block, primary)
            blocks.append(result)
            tests.append(block_tests)
        tests = pd.concat([t for t in tests if not t.empty] or [pd.DataFrame(
            columns=["block", "pair", "a", "b", "endpoint", "p_value", "role", "note"])],
            ignore_index=True)
        tests = stats.holm_secondary(tests)
        # The lr/eps boundary is read where eps and lr_max vary together.
        regime_block = next((b for b in blocks if {"eps", "lr_max"} <= set(b.block.axes)),
                            blocks[0])
        regime = stats.regime_test(regime_block.frame)
        if claims is not None:
            scopes = [(set(b.block.axes), b.frame, b.factors) for b in blocks]
            claim_table = claims_mod.evaluate_claims(claims, experiment.trials, scopes,
                                                     experiment.curves,
                                                     experiment.confirmatory)
            claims_note = f"Claims from {claims['path']}."
        else:
            claim_table, claims_note = None, "study.yaml names no claims file."
    primary_rows = tests[tests["role"] == "primary"]
    if primary is not None and primary.kind == "interaction" and primary_rows.empty:
        primary_note = "the axes it names are not varied together in one block"
    results = Results(frame=stats.add_regime(experiment.trials), blocks=blocks, tests=tests,
                      primary=primary, primary_row=primary_rows.iloc[0]
                      if len(primary_rows) else None, primary_note=primary_note,
                      regime=regime, claims=claim_table, claims_note=claims_note)
    results.caveats = caveats(experiment, results, caught)
    return results


def caveats(experiment: Experiment, results: Results, caught) -> list[str]:
    """What the reader must keep in mind, in plain sentences."""
    notes = []
    frame = results.frame
    if not experiment.confirmatory:
        notes.append(f"Exploratory study (search={experiment.study.get('search')}, "
                     f"scheduler={experiment.study.get('scheduler')}): which runs reached the "
                     "full budget was decided by the scheduler or searcher, so rates and "
                     "interaction statistics are conditional on that selection and labelled "
                     "exploratory.")
    early = int((frame["status"] == "stopped_early").sum())
    errored = int((frame["status"] == "errored").sum())
    if early or errored:
        notes.append(f"{early} run(s) stopped early and {errored} errored; they are excluded "
                     "from every rate and test (see Denominators).")
    missing = frame[[a.name for a in experiment.axes if a.name in frame]].isna().any(axis=1)
    if missing.any():
        notes.append(f"{int(missing.sum())} run(s) lack a value for some axis and fall "
                     "outside every cell.")
    if len(results.blocks) > 1:
        notes.append(f"The design has {len(results.blocks)} blocks ("
                     + "; ".join(b.label for b in results.blocks)
                     + "); each is analysed on its own runs, and pairs of axes from different "
                     "blocks are not crossed, so they are not tested.")
    for block in results.blocks:
        notes += block.binning
        complete = stats.full_budget(block.frame)
        if len(complete) and block.factors:
            per_cell = complete.groupby([f.column for f in block.factors],
                                        observed=False).size()
            if per_cell.min() < 5:
                notes.append(f"Some cells of {block.block.name} hold fewer than 5 "
                             f"full-budget runs (minimum {int(per_cell.min())}): intervals "
                             "are wide and a cell can rarely be called stable or unstable "
                             "with confidence.")
        fa = block.fanova
        weak = fa[fa["oob_r2"] < SURROGATE_MIN_R2].drop_duplicates("response")
        for _, row in weak.iterrows():
            notes.append(f"The random-forest surrogate for {row['response']} in "
                         f"{block.block.name} fits poorly (out-of-bag R^2 "
                         f"{row['oob_r2']:.2f}); its variance shares are unreliable.")
    tests = results.tests
    if not tests.empty:
        separated = tests[tests["separation"] == "yes"]
        if len(separated):
            notes.append(f"{len(separated)} logistic test(s) show (quasi-)separation: some "
                         "cell always or never fails. Firth's penalised likelihood keeps the "
                         "estimates finite; interactions on the log-odds scale then have "
                         "little power.")
        troubled = tests[tests["note"].str.contains("did not converge|warned|failed",
                                                    na=False)]
        if len(troubled):
            notes.append(f"{len(troubled)} test(s) had fitting problems: "
                         + "; ".join(f"{r['pair']}/{r['endpoint']}: {r['note']}"
                                     for _, r in troubled.iterrows()))
        if (tests["endpoint"] == "per").any():
            notes.append("PER tests use type III sums of squares: cells are unbalanced once "
                         "runs collapse or diverge, and those runs are excluded from PER.")
        if (tests["endpoint"] != "per").any():
            notes.append("Interaction is scale-dependent: the logistic tests ask about the "
                         "log-odds scale, the variance shares about rates; a cell pinned at "
                         "0% or 100% can show a large difference in rates but little "
                         "log-odds interaction.")
    if not results.regime["p_eps_at_fixed_lr"].notna().any():
        notes.append("The lr/eps regime test was not testable here: it needs at least two "
                     "eps and two lr_max values, and some failures, within one regime "
                     "(a map preset with several eps levels provides them).")
    notes += experiment.caveats
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    if messages:
        notes.append(f"{len(messages)} distinct numerical warning(s) while fitting: "
                     + " | ".join(m[:160] for m in messages[:5]))
    return notes


def make_figures(experiment: Experiment, results: Results, directory: Path
                 ) -> dict[str, tuple[Path, str]]:
    """Every figure as a PNG; returns {name: (path, caption)} in report order."""
    directory.mkdir(parents=True, exist_ok=True)
    definition = figures.stable_definition(experiment.study.get("train_config"))
    several = len(results.blocks) > 1
    made: dict[str, tuple[plt.Figure | None, str]] = {}
    for i, block in enumerate(results.blocks, start=1):
        prefix = f"block{i}_" if several else ""
        where = f" - {block.label}" if several else ""
        frame, factors = block.frame, block.factors
        if len(factors) >= 2:
            made[f"{prefix}stable_map"] = (figures.stable_map(frame, factors, definition),
                                           f"Stable-region map{where}")
        for a, b in itertools.combinations(factors, 2):
            pooled = [f.axis for f in factors if f not in (a, b)]
            made[f"{prefix}pair_{a.axis}__{b.axis}"] = (
                figures.pair_heatmaps(frame, a, b, definition, pooled),
                f"{a.axis} x {b.axis}: outcome rates and median final PER{where}")
        made[f"{prefix}lr_sensitivity"] = (figures.lr_sensitivity(frame, factors),
                                           f"Learning-rate sensitivity{where}")
    made["eps_regime"] = (figures.regime_plot(results.frame), "eps regime, every run")
    made["training_curves"] = (figures.training_curves(experiment.curves), "Training curves")
    saved = {}
    for name, (fig, caption) in made.items():
        if fig is None:
            continue
        path = directory / f"{name}.png"
        # Fast zlib level: the PNGs are embedded once and a few percent larger.
        fig.savefig(path, pil_kwargs={"compress_level": 1})
        plt.close(fig)
        saved[name] = (path, caption)
    return saved


def write_tables(experiment: Experiment, results: Results, out: Path) -> None:
    for name, table in (("trials", results.frame), ("curves", experiment.curves)):
        table.to_csv(out / f"{name}.csv", index=False)
        table.to_parquet(out / f"{name}.parquet", index=False)
    cells = pd.concat([b.cells.rename(columns={f.column: f.axis for f in b.factors})
                       .assign(block=b.block.name) for b in results.blocks], ignore_index=True)
    cells.to_csv(out / "cells.csv", index=False)
    results.tests.to_csv(out / "tests.csv", index=False)
    pd.concat([b.fanova for b in results.blocks], ignore_index=True).to_csv(
        out / "fanova.csv", index=False)
    results.regime.to_csv(out / "regime.csv", index=False)
    if results.claims is not None:
        results.claims.to_csv(out / "claims.csv", index=False)


def build_report(experiment_dir: str | Path, out: str | Path | None = None,
                 claims_path: str | Path | None = None) -> Path:
    """Write the report folder; returns its path. Raises UserError for bad input."""
    experiment = load_experiment(experiment_dir)
    claims_file = (Path(claims_path) if claims_path is not None else
                   claims_mod.resolve_claims_path(experiment.study.get("claims")))
    claims = claims_mod.load_claims(claims_file) if claims_file is not None else None
    out = Path(out) if out is not None else experiment.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    results = analyse(experiment, claims)
    write_tables(experiment, results, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tight_layout / font fallbacks: cosmetic only
        saved = make_figures(experiment, results, out / "figures")
    definition = figures.stable_definition(experiment.study.get("train_config"))
    (out / "report.html").write_text(html.render(experiment, results, saved, definition))
    (out / "summary.txt").write_text(html.summary_text(experiment, results, out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m analysis.report",
        description="Stable-region map, interaction tests and claim verdicts for one "
                    "experiment folder.")
    parser.add_argument("experiment", help="the study's folder (holds study.yaml)")
    parser.add_argument("--out", help="report folder (default: <experiment>/report)")
    parser.add_argument("--claims", help="claims YAML (default: the one study.yaml names)")
    args = parser.parse_args(argv)
    def body() -> int:
        out = build_report(args.experiment, args.out, args.claims)
        sys.stdout.write((out / "summary.txt").read_text())
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
