"""Study presets: YAML data naming axes, values or distributions, seeds, budget, scheduler.

Adding an axis is an edit to a preset; nothing here knows the four product axes except as
the default axis -> config-key table (trainable.contract.AXES).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainable.config import CONFIG_DIR, Config, read_yaml
from trainable.contract import AXES, METRICS
from trainable.errors import ConfigError

PRESET_DIR = CONFIG_DIR / "studies"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AxisSpec(_Strict):
    """An axis: explicit `values` (grids), or a distribution (random / Optuna search)."""

    key: str | None = None  # config key; default from trainable.contract.AXES
    values: list[float] | None = None
    distribution: Literal["loguniform", "uniform"] | None = None
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AxisSpec:
        if (self.values is None) == (self.distribution is None):
            raise ValueError("give either values or distribution (+ low, high)")
        if self.distribution is not None:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError("a distribution needs low < high")
            if self.distribution == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
        elif not self.values:
            raise ValueError("values must not be empty")
        return self


class Budget(_Strict):
    steps: int = Field(gt=0)
    eval_every: int = Field(gt=0)
    seeds: int | None = Field(None, gt=0)  # overrides the preset's seeds (e.g. smoke)
    samples: int | None = Field(None, gt=0)


class AshaSpec(_Strict):
    # No trial is stopped before this share of its step budget: the all-blank CTC plateau
    # and the warm-up must not decide a trial (the default matches the collapse grace).
    grace_fraction: float = Field(0.25, gt=0.0, le=1.0)
    reduction_factor: float = Field(2.0, gt=1.0)


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
    primary_hypothesis: str = ""
    claims: str | None = "claims.yaml"

    @model_validator(mode="after")
    def _shape(self) -> Preset:
        if self.search == "grid":
            if not self.blocks:
                raise ValueError("a grid preset needs blocks (lists of axis values)")
            for block in self.blocks:
                for name, axis in block.items():
                    if axis.values is None:
                        raise ValueError(f"grid axis {name!r} needs values")
        elif not self.axes:
            raise ValueError(f"a {self.search} preset needs axes with distributions")
        if self.metric not in METRICS:
            raise ValueError(f"metric {self.metric!r} is not a reported metric")
        if self.default_budget not in self.budgets:
            raise ValueError(f"default_budget {self.default_budget!r} is not in budgets")
        return self

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
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {key or 'preset'}: {first['msg']}") from None


def check_axes_exist(preset: Preset, cfg: Config) -> None:
    """Every axis must name a real config key (checked before Ray starts)."""
    tree = cfg.model_dump()
    for name, key in preset.axis_keys().items():
        node: Any = tree
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"preset {preset.name!r}: axis {name!r} sets {key!r}, which "
                                  "is not a training config key")
            node = node[part]


def config_value(cfg: Config, key: str) -> Any:
    node: Any = cfg.model_dump()
    for part in key.split("."):
        node = node[part]
    return node


def grid_points(preset: Preset, cfg: Config) -> list[dict[str, float]]:
    """The grid's cells: every axis of the preset gets a value in every cell (the training
    config's value where a block does not vary it), duplicates removed, order kept."""
    keys = preset.axis_keys()
    points: list[dict[str, float]] = []
    for block in preset.blocks or []:
        names = list(block)
        for combo in itertools.product(*(block[n].values for n in names)):
            point = {n: config_value(cfg, k) for n, k in keys.items()}
            point.update(dict(zip(names, combo, strict=True)))
            if point not in points:
                points.append(point)
    return points
