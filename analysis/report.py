"""`python -m analysis.report <experiment dir> [--out DIR] [--claims FILE]`

Reads an experiment folder (never Ray) and writes into <experiment dir>/report/ (or --out):
trials.csv/.parquet, curves.csv/.parquet, cells.csv, tests.csv, fanova.csv, regime.csv,
boundary.csv and boundary_columns.csv (a map), claims.csv, figures/*.png, report.html
(self-contained) and summary.txt.
`study.run` calls `build_report` when a study ends.
"""

from __future__ import annotations

import itertools
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import claims as claims_mod
from analysis import (boundary, controls, diffs, exploratory, figures, html, ladder, stats,
                      summary)
from analysis.load import Block, Experiment, load_experiment
from analysis.record import read_ladder
from analysis.scope import Scope, confirmation, first_sentence, study_scope
from analysis.verdicts import judge_claims, registered_claims
from trainable.errors import OneLineArgumentParser, UserError, run_cli

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
    frame: pd.DataFrame  # every run, with its eps regime (by design)
    blocks: list[BlockResults]
    tests: pd.DataFrame  # every block's interaction tests, Holm-adjusted together
    regime: pd.DataFrame  # the regime test, one row per regime (boundary.table)
    boundary: boundary.BoundaryAnalysis  # its brackets, columns and fitted lines
    claims: pd.DataFrame | None  # verdicts: the claims, then a claim-shaped primary
    claims_note: str
    post_hoc: str  # why the claims differ from the registered ones ("" when they do not)
    primary_text: str  # the preset's primary hypothesis in words ("" when none)
    primary_kind: str  # "claim", "regime" or ""
    trajectory: pd.DataFrame  # each claim's effect and verdict over the training steps
    # claim id -> did its verdict and effect sign hold over the last quarter of training:
    # 'yes', 'no: why', or 'too few evaluations (...)'
    held_late: dict[str, str]
    # claim id -> the detector check (latest controls study) of a verdict resting on no
    # failure being seen
    detector_checks: dict[str, str] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    scope: Scope | None = None  # the world the verdicts are about
    opening: str = ""  # the report's first sentence: that world, and what confirms it


def _analyse_block(experiment: Experiment, block: Block) -> tuple[BlockResults, pd.DataFrame]:
    runs = experiment.trials[block.mask(experiment.trials)]
    if experiment.study.boundary is not None and "wave" in runs:
        # A map's later waves add only refinement points off the grid: the cells, maps and
        # tests read the design; the boundary (analysis.boundary) reads every wave.
        runs = runs[runs["wave"] == 1]
    axes = [a for a in experiment.axes if a.name in block.factor_axes]
    frame, factors = stats.factorize(runs, axes)
    tests = pd.DataFrame()
    if len(factors) >= 2:
        # Claim-directed waves add seeds to a few cells only; the fixed-n tests keep their
        # error rates on the balanced first wave.
        first = frame[frame["wave"] == 1] if "wave" in frame else frame
        tests = stats.interaction_tests(first, factors, experiment.confirmatory)
        tests.insert(0, "block", block.name)
    exact = experiment.study.search == "grid" and not any(f.binned for f in factors)
    fanova = stats.fanova(frame, factors, exact_allowed=exact)
    fanova.insert(0, "block", block.name)
    result = BlockResults(block=block, frame=frame, factors=factors,
                          cells=stats.cell_summary(frame, [f.column for f in factors]),
                          fanova=fanova, binning=stats.binning_notes(factors))
    return result, tests


def analyse(experiment: Experiment, claims: claims_mod.ClaimsFile | None,
            post_hoc: str = "") -> Results:
    """Every statistic of the report, from the loaded tables (no files written)."""
    study = experiment.study
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocks, tests = [], []
        for block in experiment.blocks:
            result, block_tests = _analyse_block(experiment, block)
            blocks.append(result)
            tests.append(block_tests)
        tests = pd.concat([t for t in tests if not t.empty] or [pd.DataFrame(
            columns=["block", "pair", "a", "b", "endpoint", "p_value", "role", "note"])],
            ignore_index=True)
        tests = stats.holm_secondary(tests)
        regime = regime_analysis(experiment)
        primary = study.primary_hypothesis
        verdicts = judge_claims(experiment, claims)
        claim_table, trajectory, held_late = None, pd.DataFrame(), {}
        if verdicts is not None:
            claim_table, trajectory = verdicts.table, verdicts.trajectory
            for claim_id, (held, why) in verdicts.held_late.items():
                held_late[claim_id] = (held if held == "yes" else f"no: {why}"
                                       if held == "no" else f"{held} ({why})")
            checks = detector_checks(experiment, verdicts.claims, claim_table)
        claims_note = (f"Claims from {claims.path} (sha256 {claims.sha256[:12]})."
                       if claims is not None else "The study names no claims file.")
    frame = experiment.trials.copy()
    if regime.spec is not None:
        frame["regime"] = boundary.regime_of(frame[regime.spec.across], regime.spec)
    results = Results(frame=frame, blocks=blocks, tests=tests, regime=regime.table,
                      boundary=regime, claims=claim_table, claims_note=claims_note,
                      post_hoc=post_hoc,
                      primary_text=" ".join(primary.text.split()) if primary else "",
                      primary_kind=("" if primary is None else
                                    "regime" if primary.rule.test == "regime" else "claim"),
                      trajectory=trajectory, held_late=held_late,
                      detector_checks=checks if verdicts is not None else {})
    results.caveats = caveats(experiment, results, caught)
    results.scope = study_scope(experiment.study)
    results.opening = first_sentence(results.scope, confirmation(
        experiment.path, experiment.study, claim_table))
    return results


def regime_analysis(experiment: Experiment) -> boundary.BoundaryAnalysis:
    """The regime test on the block that varies the boundary's two axes, every wave."""
    spec = experiment.study.boundary
    if spec is None:
        return boundary.not_run("not run: the preset defines no boundary (its columns, the "
                                "failure that bounds them and the regimes; see the map "
                                "preset)")
    block = boundary.boundary_block(experiment.blocks, spec)
    if block is None:
        return boundary.not_run(f"not testable: no block varies both {spec.along} and "
                                f"{spec.across}")
    return boundary.regime_test(experiment.trials[block.mask(experiment.trials)], spec)


def detector_checks(experiment: Experiment, claims: claims_mod.ClaimsFile,
                    verdicts: pd.DataFrame) -> dict[str, str]:
    """For each claim whose verdict rests on no failure being seen, how well the latest
    controls study beside this one saw those failures (analysis/controls.py), and the
    claim's upper end adjusted for the detectors' sensitivity."""
    unseen = claims_mod.unseen_failures(claims, experiment.trials)
    if not unseen:
        return {}
    evidence = controls.latest(experiment.path, experiment.study.train_config,
                               experiment.study.budget_steps)
    rows = verdicts.set_index("id")
    return {claim_id: controls.citation(evidence, events, float(rows.loc[claim_id, "ci_high"]),
                                        float(rows.loc[claim_id, "bound"]))
            for claim_id, events in unseen.items()}


def caveats(experiment: Experiment, results: Results, caught) -> list[str]:
    """What the reader must keep in mind, in plain sentences."""
    notes = []
    frame = results.frame
    if not experiment.confirmatory:
        notes.append(f"Exploratory study (search={experiment.study.search}, "
                     f"scheduler={experiment.study.scheduler}): which runs reached the "
                     "full budget was decided by the scheduler or searcher, so rates and "
                     "interaction statistics are conditional on that selection and labelled "
                     "exploratory.")
    early = int((frame["status"] == "stopped_early").sum())
    errored = int((frame["status"] == "errored").sum())
    if early or errored:
        notes.append(f"{early} run(s) stopped early and {errored} errored; they are excluded "
                     "from the maps' rates and tests (see Denominators); the failure-rate "
                     "claims count an errored run's seed with its outcome bounded both ways "
                     "(a run may error because it failed).")
    missing = frame[[a.name for a in experiment.axes if a.name in frame]].isna().any(axis=1)
    if missing.any():
        notes.append(f"{int(missing.sum())} run(s) lack a value for some axis and fall "
                     "outside every cell.")
    if results.post_hoc:
        notes.append(f"POST HOC: {results.post_hoc}")
    adaptive = experiment.study.adaptive
    spec = experiment.study.boundary
    if adaptive is not None and spec is not None:
        notes.append(f"Boundary refinement: after the first wave (the design), "
                     f"{len(adaptive.waves) - 1} wave(s) added {spec.along} values between "
                     f"the failed and the fine value nearest each other in each "
                     f"{spec.across} column and seed (stopped: {adaptive.stopped or 'not yet'}"
                     "). The regime test and the boundary map use every run; the cells, "
                     "tests and variance shares use the design's runs only.")
    elif adaptive is not None:
        notes.append("Adaptive replication: after the first wave (the design), seeds were "
                     "added only to the cells of undecided claims, so cells hold different "
                     "numbers of seeds. Claim verdicts use anytime-valid confidence sequences "
                     "(valid under this adaptivity); the interaction tests and variance "
                     "shares below use the balanced first wave only, and the per-cell maps "
                     "use every run.")
    for block in experiment.blocks:
        for follower, leader in block.linked.items():
            notes.append(f"In block {block.name}, {follower} moves together with {leader} "
                         f"(one factor): their effects are not separable there, and the "
                         f"{leader} factor stands for both.")
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
    if experiment.study.boundary is not None and not results.regime["slope"].notna().any():
        notes.append("The lr/eps regime test was not testable here: "
                     + "; ".join(sorted(set(results.regime["note"].dropna()))))
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
    definition = figures.stable_definition(experiment.study.train_config)
    several = len(results.blocks) > 1
    made: dict[str, tuple[plt.Figure | None, str]] = {}
    if results.claims is not None:
        made["claims"] = (figures.claim_effects(results.claims, results.trajectory),
                          "Each claim's effect (point) and 95% confidence sequence (bar) "
                          "at the end of training, and over training (right)")
    for i, block in enumerate(results.blocks, start=1):
        prefix = f"block{i}_" if several else ""
        where = f" - {block.label}" if several else ""
        frame, factors = block.frame, block.factors
        spec = results.boundary.spec
        if spec is not None and block.block is boundary.boundary_block(
                [b.block for b in results.blocks], spec):
            runs = experiment.trials[block.block.mask(experiment.trials)]
            made[f"{prefix}stable_map"] = (
                figures.boundary_map(figures.boundary_map_data(runs, results.boundary)),
                f"Stable-region map with the fitted boundary{where}")
        elif len(factors) >= 2:
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
    return figures.save_all(made, directory)


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
    if results.boundary.spec is not None:
        results.boundary.brackets.to_csv(out / "boundary.csv", index=False)
        results.boundary.columns.to_csv(out / "boundary_columns.csv", index=False)
    if results.claims is not None:
        results.claims.assign(held_last_quarter=results.claims["id"].map(results.held_late),
                              data=results.scope.data, model=results.scope.model,
                              budget=results.scope.budget)\
            .to_csv(out / "claims.csv", index=False)
        results.trajectory.to_csv(out / "claims_over_training.csv", index=False)


@dataclass(frozen=True)
class ReportKind:
    """One kind of report: which studies it is for, and how it is built (into `out`,
    returning the folder). The kinds are tried in REPORT_KINDS' order; the first that
    applies builds the report."""

    name: str
    applies: Callable[[Experiment, str | Path | None], bool]
    build: Callable[[Experiment, Path, str | Path | None, bool], Path]


def _exploratory(experiment: Experiment, out: Path, claims_path, draw: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return exploratory.build(experiment, out)


def _diff(experiment: Experiment, out: Path, claims_path, draw: bool) -> Path:
    return diffs.build(experiment, out, *registered_claims(experiment, claims_path))


REPORT_KINDS: tuple[ReportKind, ...] = (
    # A controls study: each detector's sensitivity and specificity.
    ReportKind("controls", lambda e, c: bool(e.study.controls),
               lambda e, out, c, draw: controls.build(e, out)),
    # Random / TPE samples and no claims: best configurations, slices, importance, rungs;
    # no cells to tabulate.
    ReportKind("exploratory",
               lambda e, c: e.study.search != "grid" and c is None and e.study.claims is None,
               _exploratory),
    # A diff study: its differences ranked, not a factorial's maps.
    ReportKind("diff", lambda e, c: diffs.is_diff_study(e), _diff),
    # Everything else: the factorial's cells, maps, interaction tests and claim verdicts.
    ReportKind("factorial", lambda e, c: True,
               lambda e, out, c, draw: build_factorial(e, out, c, draw)),
)


def build_report(experiment_dir: str | Path, out: str | Path | None = None,
                 claims_path: str | Path | None = None, draw: bool = True) -> Path:
    """Write the report folder; returns its path. Raises UserError for bad input.
    `draw=False` (--no-figures) writes the tables, report.html and summary.txt without the
    main report's figures: the same numbers in a fraction of the time."""
    # A scale ladder (a folder of rung studies): the transfer table across its rungs.
    if "://" not in str(experiment_dir) and read_ladder(experiment_dir) is not None:
        return ladder.build(Path(experiment_dir), out)
    experiment = load_experiment(experiment_dir)
    out = Path(out) if out is not None else experiment.path / "report"
    kind = next(k for k in REPORT_KINDS if k.applies(experiment, claims_path))
    return kind.build(experiment, out, claims_path, draw)


def build_factorial(experiment: Experiment, out: Path, claims_path: str | Path | None = None,
                    draw: bool = True) -> Path:
    """The factorial report (the main job's): tables, figures, report.html, summary.txt."""
    claims, post_hoc = registered_claims(experiment, claims_path)
    out.mkdir(parents=True, exist_ok=True)
    results = analyse(experiment, claims, post_hoc)
    write_tables(experiment, results, out)
    saved: dict[str, tuple[Path, str]] = {}
    if draw:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tight_layout / font fallbacks: cosmetic only
            saved = make_figures(experiment, results, out / "figures")
    definition = figures.stable_definition(experiment.study.train_config)
    (out / "report.html").write_text(html.render(experiment, results, saved, definition))
    (out / "summary.txt").write_text(summary.summary_text(experiment, results, out))
    return out


def report_any(experiment: str, out: str | None = None, claims_path: str | None = None,
               endpoint: str | None = None, draw: bool = True) -> Path:
    """build_report for a folder or a study URI: a remote study's small files are pulled
    into the local mirror, the report is built there (and in --out) and pushed back."""
    if "://" not in experiment or experiment.startswith("file://"):
        return build_report(experiment.removeprefix("file://"), out, claims_path, draw)
    from analysis.storage import split_study_uri

    storage, name = split_study_uri(experiment, endpoint)
    storage.check()
    local = storage.pull(name)
    if not local.is_dir():
        raise UserError(f"{experiment}: no study there (nothing under that prefix); give "
                        "the URI that study.run printed")
    written = build_report(local, None, claims_path, draw)
    storage.push(name, "report")
    if out is not None:
        shutil.copytree(written, out, dirs_exist_ok=True)
        return Path(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m analysis.report",
        description="Stable-region map, interaction tests and claim verdicts for one "
                    "experiment folder.")
    parser.add_argument("experiment", help="the study's folder (holds study.yaml), or its "
                                           "URI, e.g. s3://bucket/prefix/<study name>")
    parser.add_argument("--out", help="report folder (default: <experiment>/report; for a "
                                      "URI also written back beside the study)")
    parser.add_argument("--claims", help="claims YAML (default: the one study.yaml names)")
    parser.add_argument("--storage-endpoint", default=None, metavar="URL",
                        help="S3-compatible endpoint for an s3:// study (default: "
                             "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)")
    parser.add_argument("--no-figures", action="store_true",
                        help="tables, report.html and summary.txt without the figures "
                             "(the same numbers, several times faster)")
    args = parser.parse_args(argv)

    def body() -> int:
        out = report_any(args.experiment, args.out, args.claims, args.storage_endpoint,
                         draw=not args.no_figures)
        sys.stdout.write((out / "summary.txt").read_text())
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
