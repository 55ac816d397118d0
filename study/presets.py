"""Study presets: YAML data naming axes, values or distributions, seeds, budget, scheduler.

Adding an axis is an edit to a preset; nothing here knows the four product axes except as
the default axis -> config-key table (trainable.contract.AXES).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.claims import Primary
from analysis.record import AxisFields, BoundarySpec, ControlFields
from analysis.runs import SAME_VALUE_RTOL
from study.diff import diff_blocks
from trainable.config import CONFIG_DIR, Config, read_yaml
from trainable.contract import AXES, METRICS
from trainable.errors import ConfigError, validation_line
from trainable.tree import get_dotted, has_dotted

PRESET_DIR = CONFIG_DIR / "studies"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AxisSpec(AxisFields):
    """An axis of a preset (`key` defaults to trainable.contract.AXES[name])."""


class Budget(_Strict):
    steps: int = Field(gt=0)
    eval_every: int = Field(gt=0)
    seeds: int | None = Field(None, gt=0)  # overrides the preset's seeds (e.g. smoke)
    samples: int | None = Field(None, gt=0)
    minutes: float | None = Field(None, gt=0)  # overrides adaptive.minutes
    max_trials: int | None = Field(None, gt=0)  # overrides adaptive.max_trials


class AdaptiveSpec(_Strict):
    """Waves after the first: claim-directed replication (study/planner.py) adds seeds to
    the cells of undecided claims until every claim is decided, or, in a preset with a
    `boundary`, refinement (study/refine.py) adds values near the boundary until every
    column's is bracketed within the tolerance; either until a budget is spent."""

    minutes: float | None = Field(None, gt=0)  # training wall time over all waves
    max_trials: int | None = Field(None, gt=0)  # trials over all waves
    wave_trials: int = Field(12, gt=0)  # most trials one wave adds


class AshaSpec(_Strict):
    # No trial is stopped before this share of its step budget: the all-blank CTC plateau
    # and the warm-up must not decide a trial (the default matches the collapse grace).
    grace_fraction: float = Field(0.25, gt=0.0, le=1.0)
    reduction_factor: float = Field(2.0, gt=1.0)




class Control(ControlFields):
    """One cell of a preset's controls study."""


def control_axis(key: str) -> str:
    """The axis name of a config key a control sets: the product axis name where there is
    one (optim.lr_max -> lr_max), else the key's last part (optim.grad_clip -> grad_clip)."""
    named = {v: k for k, v in AXES.items()}
    return named.get(key, key.rsplit(".", 1)[-1])


class DiffSpec(_Strict):
    """A diff study (study/diff.py): the two training configs (relative to configs/, or
    paths), the keys to study (None: every key that differs and sets the training) and the
    claimed sizes. The design's blocks are built from the two configs' differences."""

    from_config: str = Field(alias="from")
    to_config: str = Field(alias="to")
    keys: list[str] | None = None
    margin_rate: float = Field(0.25, gt=0.0, le=1.0)
    margin_per: float = Field(0.05, gt=0.0, le=1.0)


class Rung(_Strict):
    """One rung of a scale ladder: a model / data / budget size at which the claims' cells
    are run as a study of their own (study/ladder.py)."""

    name: str
    description: str = ""
    train_config: str | None = None  # default: the preset's
    set: dict[str, Any] = Field(default_factory=dict)  # training config overrides
    synthetic: dict[str, Any] = Field(default_factory=dict)  # synthetic-data knob overrides
    budgets: dict[str, Budget]  # the ladder's budget names -> this rung's steps and seeds
    gpu: bool = False  # runs only with --gpus-per-trial > 0
    # This rung's built-in data spec and schedule (None: the ladder preset's), so a rung
    # can move to the calibrated data and the official schedule in real step units.
    synthetic_spec: str | None = None
    schedule: Literal["stretched", "real"] | None = None


class Preset(_Strict):
    name: str
    description: str = ""
    search: Literal["grid", "random", "optuna"] = "grid"
    scheduler: Literal["fifo", "asha"] = "fifo"
    metric: str = "val_per"
    mode: Literal["min", "max"] = "min"
    train_config: str = "train/proxy.yaml"
    # A grid is the union of its blocks; each block is the product of its axes' values.
    # Axes a block does not list take the training config's value.
    blocks: list[dict[str, AxisSpec]] | None = None
    axes: dict[str, AxisSpec] | None = None  # random / optuna search space
    seeds: int = Field(3, gt=0)
    samples: int = Field(1, gt=0)
    budgets: dict[str, Budget]
    default_budget: str = "default"
    asha: AshaSpec = AshaSpec()
    adaptive: AdaptiveSpec | None = None  # None: the fixed design only
    # A stability boundary to locate in one block (the map): its definition of failure,
    # the refinement's tolerance, and the regimes its columns belong to by design.
    boundary: BoundarySpec | None = None
    primary_hypothesis: Primary | None = None
    claims: str | None = "claims.yaml"
    # The day layers' peak lr when lr_max is an axis. "fixed": they keep the training
    # config's day lr (lr_max_day, or lr_max when unset) whatever lr_max the trial gets, as
    # the official rnn_args.yaml does (lr_max_day: 0.005 is its own key) when a user edits
    # only lr_max; "follow": they take each trial's lr_max (every parameter's Adam step
    # scales together, the cleaner probe of the lr/eps regime).
    day_lr: Literal["follow", "fixed"] = "fixed"
    # The lr schedule against the budget: "stretched" (warm-up and decay scaled to the
    # budget, the proxy's default) or "real" (the training config's schedule in its own
    # step units, truncated at the budget; study.run.budget_overrides).
    schedule: Literal["stretched", "real"] = "stretched"
    # The built-in data's spec, relative to configs/ (None: data/synthetic.yaml, generator
    # 1); ignored with --data.
    synthetic_spec: str | None = None
    # A controls study (configs/studies/controls.yaml): its cells are the controls, one
    # block each (the blocks are built from them).
    controls: list[Control] | None = None
    # A scale ladder (configs/studies/ladder.yaml): the blocks run once per rung.
    rungs: list[Rung] | None = None
    # A diff study (configs/studies/diff.yaml): its blocks are the design points of the
    # two configs' differences (study/diff.py), one block each.
    diff: DiffSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _control_blocks(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("controls"):
            if data.get("blocks"):
                raise ValueError("a controls preset builds its cells from `controls`; drop "
                                 "`blocks`")
            blocks = []
            for control in data["controls"]:
                values = control.get("set", {}) if isinstance(control, dict) else {}
                blocks.append({control_axis(k): {"key": k, "values": [v]}
                               for k, v in (values or {}).items()})
            data = {**data, "blocks": blocks}
        return data

    @model_validator(mode="before")
    @classmethod
    def _diff_blocks(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("diff"), dict):
            if data.get("blocks") or data.get("controls"):
                raise ValueError("a diff preset builds its cells from `diff`; drop `blocks`")
            spec = DiffSpec.model_validate(data["diff"])
            data = {**data, "blocks": diff_blocks(spec.from_config, spec.to_config,
                                                  spec.keys),
                    "train_config": spec.from_config}
        return data

    @model_validator(mode="after")
    def _shape(self) -> Preset:
        if self.controls is not None:
            names = [c.name for c in self.controls]
            settings = [sorted(c.set.items()) for c in self.controls]
            if len(set(names)) != len(names) or any(settings.count(s) > 1 for s in settings):
                raise ValueError("controls need distinct names and distinct settings")
            if self.adaptive is not None or self.rungs is not None:
                raise ValueError("a controls preset runs a fixed design: no adaptive, no "
                                 "rungs")
        if self.rungs is not None:
            if not self.rungs or len({r.name for r in self.rungs}) != len(self.rungs):
                raise ValueError("rungs need at least one entry and distinct names")
            if self.adaptive is not None:
                raise ValueError("a ladder runs a fixed design per rung: no adaptive")
            for rung in self.rungs:
                if set(rung.budgets) != set(self.budgets):
                    raise ValueError(f"rung {rung.name!r} must give the preset's budgets "
                                     f"({', '.join(self.budgets)})")
        if self.search == "grid":
            if not self.blocks:
                raise ValueError("a grid preset needs blocks (lists of axis values)")
            for block in self.blocks:
                for name, axis in block.items():
                    if axis.values is None:
                        raise ValueError(f"grid axis {name!r} needs values")
                    leader = block.get(axis.linked_to) if axis.linked_to else None
                    if axis.linked_to and (leader is None or leader.linked_to is not None
                                           or len(leader.values or []) != len(axis.values)):
                        raise ValueError(
                            f"axis {name!r}: linked_to {axis.linked_to!r} must name an "
                            "unlinked axis of the same block with as many values")
        elif not self.axes:
            raise ValueError(f"a {self.search} preset needs axes with distributions")
        if self.boundary is not None:
            self._check_boundary()
        if self.adaptive is not None and (self.search != "grid" or self.scheduler != "fifo"):
            raise ValueError("adaptive replication needs a grid search with the fifo "
                             "scheduler (full-budget runs)")
        if self.metric not in METRICS:
            raise ValueError(f"metric {self.metric!r} is not a reported metric")
        if self.default_budget not in self.budgets:
            raise ValueError(f"default_budget {self.default_budget!r} is not in budgets")
        return self

    def _check_boundary(self) -> None:
        spec = self.boundary
        block = next((b for b in self.blocks or [] if spec.along in b and spec.across in b),
                     None)
        if self.search != "grid" or block is None:
            raise ValueError(f"boundary: needs a grid block that varies both {spec.along} "
                             f"and {spec.across}")
        if block[spec.along].linked_to or block[spec.across].linked_to:
            raise ValueError(f"boundary: {spec.along} and {spec.across} must be crossed, "
                             "not linked")
        columns = block[spec.across].values
        outside = [v for values in spec.regimes.values() for v in values
                   if not any(math.isclose(v, c, rel_tol=SAME_VALUE_RTOL) for c in columns)]
        if outside:
            raise ValueError(f"boundary.regimes: {', '.join(f'{v:g}' for v in outside)} "
                             f"not among the block's {spec.across} values")

    @property
    def kind(self) -> str:
        """Confirmatory: a full-budget factorial. Anything that stops trials early or
        adapts its sampling to results is exploratory (analysis.md)."""
        return "confirmatory" if self.search == "grid" and self.scheduler == "fifo" \
            else "exploratory"

    def axis_specs(self) -> dict[str, AxisSpec]:
        if self.search != "grid":
            return dict(self.axes or {})
        merged: dict[str, AxisSpec] = {}
        for block in self.blocks or []:
            merged.update(block)
        return merged

    def axis_keys(self) -> dict[str, str]:
        keys = {}
        for name, spec in self.axis_specs().items():
            key = spec.key or AXES.get(name)
            if key is None:
                raise ConfigError(f"preset {self.name!r}: axis {name!r} has no config key; "
                                  f"add key: <section.name> or use one of {', '.join(AXES)}")
            keys[name] = key
        return keys


def stored_preset(preset: Preset) -> dict:
    """The preset as a study record keeps it, valid input for Preset again: a controls
    preset without the blocks its controls build (rebuilt the same way), a diff preset as
    the grid it built, its blocks without `diff` (the two config files may change or be
    gone when the study is resumed; the record keeps the factors' keys and levels)."""
    exclude = {"blocks"} if preset.controls is not None else {"diff"} \
        if preset.diff is not None else None
    return preset.model_dump(mode="json", exclude=exclude)


def with_diff(preset: Preset, from_config: str, to_config: str, keys: list[str] | None,
              margin_rate: float, margin_per: float, claims: str | None) -> Preset:
    """`preset` (a diff preset) for another pair of configs, keys, margins and claims."""
    tree = preset.model_dump(mode="json", exclude={"blocks", "diff"})
    tree["diff"] = {"from": from_config, "to": to_config, "keys": keys,
                    "margin_rate": margin_rate, "margin_per": margin_per}
    tree["claims"] = claims
    try:
        return Preset.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(validation_line(err, f"preset {preset.name!r}", model=Preset)
                          ) from None


def axis_levels(preset: Preset) -> dict[str, list[Any]]:
    """Axis name -> its levels, for the axes whose values index levels."""
    return {n: a.levels for n, a in preset.axis_specs().items() if a.levels is not None}


def preset_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"--preset {name_or_path}: file not found")
        return path
    candidate = PRESET_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise ConfigError(f"--preset {name_or_path}: unknown preset; choose one of {known} "
                          "or give a YAML file")
    return candidate


def load_preset(name_or_path: str) -> Preset:
    path = preset_path(name_or_path)
    tree = read_yaml(path)
    try:
        return Preset.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(validation_line(err, str(path), model=Preset)) from None


def apply_day_lr(preset: Preset, cfg: Config) -> Config:
    """The base training config with the preset's day-lr choice made explicit: "fixed" sets
    optim.lr_max_day to the config's day lr, "follow" clears it (the day group then takes
    the trial's lr_max). Only matters when an axis sets optim.lr_max."""
    if "optim.lr_max" not in preset.axis_keys().values():
        return cfg
    day = cfg.optim.day_schedule()[0] if preset.day_lr == "fixed" else None
    return cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"lr_max_day": day})})


def check_axes_exist(preset: Preset, cfg: Config) -> None:
    """Every axis must name a real config key (checked before Ray starts)."""
    tree = cfg.model_dump()
    for name, key in preset.axis_keys().items():
        if not has_dotted(tree, key):
            raise ConfigError(f"preset {preset.name!r}: axis {name!r} sets {key!r}, which "
                              "is not a training config key")


def config_value(cfg: Config, key: str) -> Any:
    """The config's value at a dotted key (the axes are checked to exist first)."""
    return get_dotted(cfg.model_dump(), key)


def axis_value(cfg: Config, key: str, axis: AxisSpec) -> Any:
    """The training config's value of an axis a block does not vary: the config value,
    or for an axis with levels the index of that value among them."""
    value = config_value(cfg, key)
    if axis.levels is None:
        return value
    if value not in axis.levels:
        raise ConfigError(f"axis with key {key!r}: the training config's value {value!r} is "
                          f"none of its levels {axis.levels!r}; add it or vary the axis in "
                          "every block")
    return axis.levels.index(value)


def grid_points(preset: Preset, cfg: Config) -> list[dict[str, float]]:
    """The grid's cells: every axis of the preset gets a value in every cell (the training
    config's value where a block does not vary it), duplicates removed, order kept."""
    keys = preset.axis_keys()
    specs = preset.axis_specs()
    points: list[dict[str, float]] = []
    for block in preset.blocks or []:
        crossed = [n for n, a in block.items() if a.linked_to is None]
        for combo in itertools.product(*(range(len(block[n].values)) for n in crossed)):
            point = {n: axis_value(cfg, k, specs[n]) for n, k in keys.items()}
            chosen = dict(zip(crossed, combo, strict=True))
            for name, axis in block.items():
                point[name] = axis.values[chosen[axis.linked_to or name]]
            if point not in points:
                points.append(point)
    return points


def design_blocks(preset: Preset, cfg: Config) -> list[dict]:
    """The record of each block (analysis.record.BlockRecord): its varied axes, the
    training-config values every other axis is held at, and its linked axes."""
    keys = preset.axis_keys()
    specs = preset.axis_specs()
    blocks = []
    for block in preset.blocks or [preset.axes or {}]:
        blocks.append({
            "axes": list(block),
            "fixed": {n: float(axis_value(cfg, k, specs[n])) for n, k in keys.items()
                      if n not in block} if len(preset.blocks or []) > 1 else {},
            "linked": {n: a.linked_to for n, a in block.items() if a.linked_to}})
    return blocks
