"""Experiment folder -> tidy tables: one row per trial, one row per report.

The folder is what `study.run` leaves under `--storage/<name>/`: Tune's own trial folders
(params.json, result.json, progress.csv, error.txt) plus the driver's study.yaml (schema:
analysis.record). An adaptive study keeps each wave's Tune experiment in a `wave-NN/`
subfolder. Nothing here needs Ray; Tune's state files (experiment_state-*.json,
tuner.pkl, ...) are ignored.

Trial status is derived from the reports, never from Tune's state: Ray marks both
ASHA-stopped and finished runs TERMINATED.
  errored        an error file and no final (`completed`) report
  diverged       final outcome `diverged`: a complete observation of failure
  finished       final report reached the step budget
  stopped_early  no final report, not errored, step < budget (scheduler stop, interrupt)
`outcome` is the final classification of finished and diverged runs (None otherwise);
`last_outcome` is the last running classification of every run that reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.record import STUDY_FILE, LadderRecord, StudyRecord, read_record
from analysis.runs import FULL_BUDGET, STATUSES, in_cell
from trainable.config import get_dotted
from trainable.contract import DAY_PER_PREFIX, METRICS, REPORT_EXTRAS
from trainable.errors import UserError

ERROR_FILES = ("error.txt", "error.pkl")
# Tune's own per-report fields worth keeping in curves.csv.
TUNE_FIELDS = ("training_iteration", "time_total_s", "timestamp")


@dataclass(frozen=True)
class Axis:
    """One study axis as study.yaml declares it."""

    name: str
    key: str | None
    values: tuple[float, ...] | None  # declared grid values, None for a distribution
    distribution: str | None  # loguniform / uniform / None for a grid

    @property
    def log_scale(self) -> bool:
        if self.distribution is not None:
            return self.distribution.startswith("log")
        vals = [v for v in (self.values or ()) if isinstance(v, (int, float))]
        return len(vals) > 1 and min(vals) > 0 and max(vals) / min(vals) >= 100


@dataclass
class Block:
    """One block of the design: the axes it varies; every other axis sits at `fixed`.

    A preset's grid is the union of its blocks (study/presets.py): the map preset crosses
    eps x lr_max at the training config's augmentation, and the two augmentations at its
    eps and lr_max. Pooling a pair of axes across blocks would mix those designs, so each
    block is analysed on its own runs. A single-block grid or a random / TPE search is one
    block with nothing fixed.
    """

    axes: tuple[str, ...]
    fixed: dict[str, float] = field(default_factory=dict)
    linked: dict[str, str] = field(default_factory=dict)  # follower axis -> leader axis

    @property
    def name(self) -> str:
        return " x ".join(self.axes)

    @property
    def factor_axes(self) -> tuple[str, ...]:
        """The axes that are separate factors: a linked axis is its leader's factor."""
        return tuple(a for a in self.axes if a not in self.linked)

    def describe(self) -> str:
        held = ", ".join(f"{k}={v:g}" for k, v in self.fixed.items())
        return f"{self.name}" + (f" (at {held})" if held else "")

    def mask(self, trials: pd.DataFrame) -> pd.Series:
        return in_cell(trials, self.fixed)


@dataclass
class Experiment:
    path: Path
    study: StudyRecord
    axes: list[Axis]
    trials: pd.DataFrame
    curves: pd.DataFrame
    blocks: list[Block] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def kind(self) -> str:
        return self.study.kind

    @property
    def confirmatory(self) -> bool:
        return self.kind == "confirmatory"

    @property
    def axis_names(self) -> list[str]:
        return [a.name for a in self.axes]


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment folder; a folder that is not one raises UserError."""
    if "://" in str(path):
        raise UserError(f"{path}: a URI is read by 'python -m analysis.report {path}', which "
                        "pulls the study into a local mirror; pass a local folder here")
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such folder; pass the experiment folder that "
                        "study.run wrote (e.g. results/<study name>)")
    study = read_record(path)
    axes = [Axis(name=name, key=a.key, values=tuple(a.values) if a.values else None,
                 distribution=a.distribution) for name, a in study.axes.items()]
    caveats: list[str] = []
    trial_dirs = trial_folders(path)
    if not trial_dirs:
        raise UserError(f"{path}: no trial folders (none holds params.json or result.json); "
                        "run the study first or pass the folder that holds its trials")
    rows, curves = [], []
    for wave, trial_dir in trial_dirs:
        trial, reports = _read_trial(trial_dir, axes, study.budget_steps, caveats)
        trial["wave"] = wave
        rows.append(trial)
        curves.append(reports)
    trials = pd.DataFrame(rows)
    trials["status"] = pd.Categorical(trials["status"], categories=STATUSES)
    curve_frame = pd.concat([c for c in curves if not c.empty] or [pd.DataFrame()],
                            ignore_index=True)
    if not curve_frame.empty:
        # Each report row also carries its trial's axes and final classification.
        labels = trials[["trial_id", *[a.name for a in axes], "seed", "status", "outcome"]]
        curve_frame = curve_frame.merge(labels.rename(columns={"outcome": "final_outcome"}),
                                        on="trial_id", how="left")
    blocks = [Block(tuple(b.axes), dict(b.fixed), dict(b.linked)) for b in study.blocks]
    return Experiment(path=path, study=study, axes=axes, trials=trials, curves=curve_frame,
                      blocks=blocks, caveats=caveats)


def load_rungs(ladder: LadderRecord, ladder_dir: Path
               ) -> dict[str, Experiment | str | UserError]:
    """Each rung of a scale ladder loaded once (rung name -> its experiment), or why it has
    none: "skipped (...)" or "not started", or the loader's UserError when its folder
    cannot be read."""
    loaded: dict[str, Experiment | str | UserError] = {}
    for rung in ladder.rungs:
        folder = Path(ladder_dir) / rung.folder
        if rung.status == "skipped":
            loaded[rung.name] = f"skipped ({rung.note})"
        elif not (folder / STUDY_FILE).is_file():
            loaded[rung.name] = "not started"
        else:
            try:
                loaded[rung.name] = load_experiment(folder)
            except UserError as err:
                loaded[rung.name] = err
    return loaded


def trial_folders(path: Path) -> list[tuple[int, Path]]:
    """(wave, folder) of every trial: in the study folder itself (wave 1), or in the
    `wave-NN/` folders of an adaptive study."""
    found = [(1, d) for d in sorted(path.iterdir()) if d.is_dir() and _is_trial_dir(d)]
    for wave_dir in sorted(path.glob("wave-*")):
        if wave_dir.is_dir() and wave_dir.name[5:].isdigit():
            found += [(int(wave_dir.name[5:]), d) for d in sorted(wave_dir.iterdir())
                      if d.is_dir() and _is_trial_dir(d)]
    return found


def _is_trial_dir(d: Path) -> bool:
    return d.name != "report" and any((d / f).is_file()
                                      for f in ("params.json", "result.json"))


def _as_number(value):
    # YAML 1.1 reads '1e-8' as a string.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _read_results(trial_dir: Path, caveats: list[str]) -> pd.DataFrame:
    """All reports of a trial, last row per step (a restored trial repeats steps)."""
    result_file = trial_dir / "result.json"
    records = []
    if result_file.is_file():
        bad = 0
        for line in result_file.read_text().splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                bad += 1  # a line cut short when the driver was killed
        if bad:
            caveats.append(f"{trial_dir.name}: skipped {bad} unreadable line(s) "
                           "in result.json")
        frame = pd.DataFrame.from_records(records)
    elif (trial_dir / "progress.csv").is_file():
        frame = pd.read_csv(trial_dir / "progress.csv")
    else:
        frame = pd.DataFrame()
    if frame.empty or "step" not in frame:
        return pd.DataFrame(columns=["step"])
    days = [c for c in frame.columns if str(c).startswith(DAY_PER_PREFIX)]
    keep = [c for c in (*METRICS, *REPORT_EXTRAS, *TUNE_FIELDS, "trial_id") if c in frame]
    keep += days
    frame = frame[keep].copy()
    for column in keep:
        if column not in ("outcome", "trial_id"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[frame["step"].notna()]
    frame = frame.drop_duplicates("step", keep="last").sort_values("step")
    return frame.reset_index(drop=True)


def _read_trial(trial_dir: Path, axes: list[Axis], study_budget, caveats: list[str]
                ) -> tuple[dict, pd.DataFrame]:
    params = {}
    if (trial_dir / "params.json").is_file():
        try:
            params = json.loads((trial_dir / "params.json").read_text())
        except json.JSONDecodeError:
            caveats.append(f"{trial_dir.name}: params.json unreadable; axis values "
                           "taken from its reports' config")
    reports = _read_results(trial_dir, caveats)
    if not params and (trial_dir / "result.json").is_file():
        first = (trial_dir / "result.json").read_text().splitlines()[:1]
        try:
            params = json.loads(first[0]).get("config", {}) if first else {}
        except json.JSONDecodeError:
            params = {}

    trial_id = _trial_id(trial_dir, reports)
    row: dict = {"trial_id": trial_id, "folder": trial_dir.name}
    for axis in axes:
        value = params.get(axis.name)
        if value is None and axis.key:
            value = params.get(axis.key, get_dotted(params, axis.key))
        row[axis.name] = _as_number(value) if value is not None else np.nan
    row["seed"] = params.get("seed", np.nan)

    error_file = next((trial_dir / f for f in ERROR_FILES if (trial_dir / f).is_file()), None)
    row["error"] = _error_line(error_file) if error_file is not None else ""
    budget = study_budget
    if not reports.empty and "budget_steps" in reports:
        budget = reports["budget_steps"].iloc[-1]
    row["budget_steps"] = float(budget) if budget is not None else np.nan
    row["n_reports"] = len(reports)

    if reports.empty:
        row["steps_reached"] = 0.0
        row["status"] = "errored" if error_file is not None else "stopped_early"
        row["outcome"] = row["last_outcome"] = None
        return row, reports.assign(trial_id=trial_id)

    last = reports.iloc[-1]
    done = bool(reports.get("completed", pd.Series([0])).fillna(0).astype(int).max())
    steps = float(last["step"])
    row["steps_reached"] = steps
    outcome = last.get("outcome")
    row["last_outcome"] = outcome if isinstance(outcome, str) else None
    if error_file is not None and not done:
        status = "errored"
    elif row["last_outcome"] == "diverged":
        status = "diverged"
    elif np.isfinite(row["budget_steps"]) and steps >= row["budget_steps"]:
        status = "finished"
    else:
        status = "stopped_early"
    row["status"] = status
    # `outcome` is final only for complete runs; the others keep their running label in
    # `last_outcome`.
    row["outcome"] = row["last_outcome"] if status in FULL_BUDGET else None

    for name in METRICS:
        if name != "step" and name in last:
            row[f"final_{name}"] = last[name]
    for name in last.index:
        if str(name).startswith(DAY_PER_PREFIX):  # each day's PER at the last evaluation
            row[f"final_{name}"] = last[name]
    for name in ("best_val_per", "initial_val_per", "initial_val_loss"):
        if name in last:
            row[name] = last[name]
    if "grad_norm_max" in reports:
        row["max_grad_norm"] = reports["grad_norm_max"].max()
    if "eps_dominance" in reports:
        # The first report follows a single batch: v_hat is one squared gradient. The
        # regime is judged on the rest of the run.
        later = reports.loc[reports["step"] > reports["step"].min(), "eps_dominance"]
        row["median_eps_dominance"] = (later if len(later) else reports["eps_dominance"]
                                       ).median()
    if "time_total_s" in reports:
        row["time_total_s"] = last["time_total_s"]
    curves = reports.assign(trial_id=trial_id)
    return row, curves


def _trial_id(trial_dir: Path, reports: pd.DataFrame) -> str:
    if "trial_id" in reports and reports["trial_id"].notna().any():
        return str(reports["trial_id"].dropna().iloc[-1])
    # Tune names folders <trainable>_<experiment id>_<index>_<params>_<date>.
    parts = trial_dir.name.split("_")
    for i in range(len(parts) - 1):
        if len(parts[i]) == 5 and parts[i + 1].isdigit() and len(parts[i + 1]) == 5:
            return f"{parts[i]}_{parts[i + 1]}"
    return trial_dir.name


def _error_line(error_file: Path) -> str:
    if error_file.suffix != ".txt":
        return "error (see error.pkl)"
    lines = [ln.strip() for ln in error_file.read_text(errors="replace").splitlines()
             if ln.strip()]
    return lines[-1][:200] if lines else "error"
