"""The study record: what `study.run` writes to <experiment>/study.yaml and the analysis
reads back. One pydantic model, so both sides agree on every key and a damaged file gives
one line naming the key.

The record carries what the analysis needs without reading the preset again: the axes,
the design's blocks (with the values held fixed and the axes moved together), the budget,
the structured primary hypothesis, the registration of the claims (content hash and
analysis version, so a report made under other rules says it is post hoc) and, for an
adaptive study, every wave with the trials it added and why the study stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.claims.schema import Primary
from trainable.config import Config
from trainable.contract import OUTCOMES, Detector
from trainable.errors import UserError, validation_line

STUDY_FILE = "study.yaml"
LADDER_FILE = "ladder.yaml"
# Bumped when a change to analysis/ can change a verdict computed from the same runs.
ANALYSIS_VERSION = "4"  # 4: errored runs bounded both ways in the failure-rate rules


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AxisFields(_Record):
    """An axis as a preset states it (study.presets.AxisSpec) and study.yaml records it
    (AxisRecord): explicit `values` (grids), or a distribution (random / Optuna search)."""

    key: str | None = None  # config key; default from trainable.contract.AXES
    values: list[float] | None = None
    distribution: Literal["loguniform", "uniform"] | None = None
    low: float | None = None
    high: float | None = None
    # In a grid block: this axis moves together with another one (values zipped, not
    # crossed), e.g. both augmentation strengths as one factor.
    linked_to: str | None = None
    # A factor whose levels are config values of any type (strings, booleans, null: a diff
    # study's two configs, study/diff.py): `values` are then indices into `levels`, so the
    # design, the cells and the claims stay numeric, and each trial gets levels[value].
    levels: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AxisFields:
        if (self.values is None) == (self.distribution is None):
            raise ValueError("give either values or distribution (+ low, high)")
        if self.levels is not None and (self.values is None or len(self.levels) < 2 or any(
                v != int(v) or not 0 <= v < len(self.levels) for v in self.values)):
            raise ValueError("an axis with levels needs at least two levels and values "
                             "that are their indices (0, 1, ...)")
        if self.distribution is not None:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError("a distribution needs low < high")
            if self.distribution == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
        elif not self.values:
            raise ValueError("values must not be empty")
        return self


class AxisRecord(AxisFields):
    key: str  # the config key, resolved when the study was planned


class BlockRecord(_Record):
    """One block of the design: the axes it varies; every other axis sits at `fixed`."""

    axes: list[str]
    fixed: dict[str, float] = Field(default_factory=dict)
    # Axes that move together with a leader axis: {follower: leader}.
    linked: dict[str, str] = Field(default_factory=dict)


class BoundarySpec(_Record):
    """A stability boundary to locate: in each column (a value of `across`) of the block that
    varies both axes, the value of `along` where runs go from failed to fine. The preset
    fixes it before any run (configs/studies/map.yaml); analysis.boundary measures it and
    study.refine adds `along` values near it.

    side: lower  runs fail below the boundary (too small a step to train in the budget);
          upper  runs fail above it (too large a step).
    A run has failed when its final outcome is one of `failed`. A column's boundary is
    bracketed when the failed and the fine value nearest each other are within a factor
    `tolerance`. Where every value tried failed (or none did), refinement steps out by a
    factor `expand`, but never past `limits`; without limits it never leaves the grid.
    `regimes` assigns columns to regimes by design, before running: each regime's slope is
    tested against its prediction (analysis.boundary.REGIME_BANDS).
    """

    along: str = "lr_max"
    across: str = "eps"
    side: Literal["lower", "upper"] = "lower"
    failed: list[str] = Field(default_factory=lambda: [o for o in OUTCOMES if o != "stable"])
    tolerance: float = Field(1.25, gt=1.0)
    expand: float = Field(3.0, gt=1.0)
    limits: tuple[float, float] | None = None
    regimes: dict[Literal["large_eps", "small_eps"], list[float]] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> BoundarySpec:
        unknown = [o for o in self.failed if o not in OUTCOMES]
        if unknown or "stable" in self.failed or not self.failed:
            raise ValueError(f"failed must list outcomes other than stable (from "
                             f"{', '.join(OUTCOMES[1:])}), got {self.failed}")
        if self.limits is not None and not 0 < self.limits[0] < self.limits[1]:
            raise ValueError(f"limits must be two values 0 < low < high, got {self.limits}")
        seen = [v for values in self.regimes.values() for v in values]
        if len(seen) != len(set(seen)):
            raise ValueError("a column may belong to one regime only")
        return self


class DataRecord(_Record):
    path: str
    synthetic: bool
    fingerprint: str
    n_sessions: int
    n_train_trials: int
    n_val_trials: int
    dropped: int = 0
    # The built-in generator's version ("v1", ...) for synthetic data; None for user data
    # (and for synthetic data recorded before the field existed: v1).
    generator: str | None = None


class ClaimsRecord(_Record):
    """The claims the study registered before its first run."""

    path: str
    sha256: str
    analysis_version: str = ANALYSIS_VERSION


class WaveTrial(_Record):
    cell: int  # index into `points`
    seed: int


class WaveRecord(_Record):
    index: int  # 1 = the first wave (the design itself)
    folder: str  # Tune experiment folder of the wave, relative to the study folder
    trials: list[WaveTrial]
    reason: str  # why these trials
    minutes: float | None = None  # wall time, once the wave ended
    # The look after the wave: each claim's verdict and the seeds it rested on.
    verdicts: dict[str, str] = Field(default_factory=dict)
    seeds: dict[str, int] = Field(default_factory=dict)


class AdaptiveRecord(_Record):
    minutes: float | None = None  # training time budget over all waves
    max_trials: int | None = None
    wave_trials: int | None = None  # most trials added by one wave
    waves: list[WaveRecord] = Field(default_factory=list)
    stopped: str | None = None  # why no further wave was planned

    @property
    def n_trials(self) -> int:
        return sum(len(w.trials) for w in self.waves)

    @property
    def minutes_spent(self) -> float:
        return sum(w.minutes or 0.0 for w in self.waves)

    def decided_at(self, claim_id: str) -> WaveRecord | None:
        """The wave after which the claim's verdict was first other than inconclusive
        (and stayed what it is now)."""
        first = None
        for wave in self.waves:
            verdict = wave.verdicts.get(claim_id)
            if verdict is None:
                continue
            if verdict == "inconclusive":
                first = None
            elif first is None or first.verdicts.get(claim_id) != verdict:
                first = wave
        return first


class ControlFields(_Record):
    """One cell of a controls study, as a preset states it (study.presets.Control) and
    study.yaml records it (ControlRecord): a setting expected to make `detector` fire (a
    positive control), or, with `detector: null`, a setting expected to make none fire
    (negative)."""

    name: str
    detector: Detector | None = None
    set: dict[str, float] = Field(default_factory=dict)  # dotted config key -> value
    why: str

    @model_validator(mode="after")
    def _dotted(self) -> ControlFields:
        bad = [k for k in self.set if "." not in k]
        if bad:
            raise ValueError(f"control {self.name!r}: set needs dotted config keys "
                             f"(section.name), got {', '.join(bad)}")
        return self


class ControlRecord(ControlFields):
    """A cell of a controls study and its index in `points`."""

    cell: int


class ResourcesRecord(_Record):
    """What each trial asks of Ray, and how many run at once (None: the default for the
    request, study.cluster.default_concurrency)."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None


class StudyRecord(_Record):
    name: str
    preset: str
    kind: Literal["confirmatory", "exploratory"]
    search: Literal["grid", "random", "optuna"]
    scheduler: Literal["fifo", "asha"]
    metric: str
    mode: Literal["min", "max"]
    axes: dict[str, AxisRecord]
    blocks: list[BlockRecord]
    # Grid cells, in order; a boundary study appends the points its refinement waves add.
    points: list[dict[str, float]] = Field(default_factory=list)
    seeds: list[int]
    samples: int | None = None
    search_seed: int = 0  # random / TPE sampler seed (--search-seed)
    n_trials: int
    budget: str
    budget_steps: int
    eval_every: int
    primary_hypothesis: Primary | None = None
    claims: ClaimsRecord | None = None
    adaptive: AdaptiveRecord | None = None
    train_config_file: str
    train_config: Config  # the training config every trial starts from, as the trainer reads it
    # The day layers' lr when lr_max is an axis (study.presets.Preset.day_lr); None: no
    # lr_max axis, or a record written before the choice existed (the day layers followed).
    day_lr: Literal["follow", "fixed"] | None = None
    controls: list[ControlRecord] | None = None  # a controls study's cells
    # The boundary the study locates (a map); its refinement waves add points to `points`.
    boundary: BoundarySpec | None = None
    rung: str | None = None  # the rung of a scale ladder this study is (study/ladder.py)
    data: DataRecord
    resources: ResourcesRecord
    # Tune's own logger callbacks the study was started with: wandb -> project,
    # mlflow -> tracking URI (--wandb / --mlflow); none by default.
    loggers: dict[str, str] = Field(default_factory=dict)
    versions: dict[str, str | None]
    cli: str
    started: str
    preset_config: dict[str, Any]

    @property
    def axis_keys(self) -> dict[str, str]:
        return {name: axis.key for name, axis in self.axes.items()}

    @property
    def axis_levels(self) -> dict[str, list[Any]]:
        """Axis name -> its levels, for the factors whose values index config values."""
        return {name: axis.levels for name, axis in self.axes.items()
                if axis.levels is not None}

    def write(self, folder: Path) -> None:
        _write_yaml(self, Path(folder) / STUDY_FILE)


class RungRecord(_Record):
    """One rung of a scale ladder: its own study in `folder` (relative to the ladder's)."""

    name: str
    folder: str
    description: str = ""
    status: Literal["pending", "done", "interrupted", "skipped"] = "pending"
    note: str = ""  # why skipped, or what went wrong
    minutes: float | None = None  # wall time of the rung (study and its report)


class LadderRecord(_Record):
    """<ladder folder>/ladder.yaml: the rungs, each a study of the same cells and claims."""

    name: str
    preset: str
    budget: str
    started: str
    argv: list[str]  # the study.run arguments, so `resume` can start rungs not yet begun
    rungs: list[RungRecord]

    def write(self, folder: Path) -> None:
        _write_yaml(self, Path(folder) / LADDER_FILE)


def _write_yaml(model: BaseModel, path: Path) -> None:
    """Atomically: a study killed mid-write keeps its previous record."""
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(model.model_dump(mode="json", exclude_none=True),
                                  sort_keys=False))
    tmp.replace(path)


def read_ladder(folder: str | Path) -> LadderRecord | None:
    """<folder>/ladder.yaml, or None when the folder is not a ladder."""
    path = Path(folder) / LADDER_FILE
    if not path.is_file():
        return None
    try:
        return LadderRecord.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as err:
        line = (validation_line(err, str(path), model=LadderRecord)
                if isinstance(err, ValidationError) else f"{path}: not valid YAML")
        raise UserError(line + "; this file is written by study.run: restore it or rerun "
                               "the ladder") from None


def read_record(folder: str | Path) -> StudyRecord:
    """Read <folder>/study.yaml; a missing or damaged file raises UserError."""
    folder = Path(folder)
    path = folder / STUDY_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not an experiment folder of this tool (no {STUDY_FILE}); "
                        "give the folder that 'python -m study.run' created, e.g. "
                        "results/<study name>")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise UserError(f"{path}: not valid YAML; restore it from the study's preset or "
                        "rerun the study") from None
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected a mapping (name, kind, axes, ...)")
    try:
        return StudyRecord.model_validate(tree)
    except ValidationError as err:
        raise UserError(validation_line(err, str(path), model=StudyRecord)
                        + "; this file is written by study.run: restore it or rerun the "
                          "study") from None
