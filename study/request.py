"""What a person asked for on the command line, as typed values: built once from the flags
(study/cli.py) and passed on from there. A ladder stores its request in its folder
(REQUEST_FILE) and each rung runs a copy with its own folder and overrides, so resuming
never reads a command line again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import (BaseModel, ConfigDict, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                      PositiveInt, ValidationError)

from trainable.errors import UserError, validation_line

REQUEST_FILE = "request.yaml"  # a ladder's request, beside its ladder.yaml


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RayOptions(_Request):
    """How to reach Ray and the store; a resume may give other ones than the start."""

    storage_endpoint: str | None = None
    address: str | None = None
    dashboard: bool = False
    verbose: bool = False


class StudyRequest(_Request):
    """`python -m study.run grid|map|asha|optuna ...`: one study, or a ladder of them."""

    command: Literal["grid", "map", "asha", "optuna", "diff"]
    preset: str | None = None
    data: str | None = None
    train_config: str | None = None
    overrides: tuple[str, ...] = ()  # --set, applied after the preset's and a rung's
    synthetic_set: tuple[str, ...] = ()
    synthetic_spec: str | None = None
    seeds: PositiveInt | None = None
    samples: PositiveInt | None = None
    search_seed: NonNegativeInt = 0
    budget: str | None = None
    storage: str = "results"
    name: str | None = None
    minutes: PositiveFloat | None = None
    max_trials: PositiveInt | None = None
    no_adaptive: bool = False
    cpus_per_trial: PositiveFloat = 1.0
    gpus_per_trial: NonNegativeFloat = 0.0
    max_concurrent: PositiveInt | None = None
    autoscaler_wait: NonNegativeFloat = 0.0
    no_report: bool = False
    allow_short_budget: bool = False
    wandb: str | None = None  # W&B project: Tune's WandbLoggerCallback
    mlflow: str | None = None  # MLflow tracking URI: Tune's MLflowLoggerCallback
    ray: RayOptions = RayOptions()
    # diff: the two training configs and what to study (None: the preset's)
    diff_from: str | None = None
    diff_to: str | None = None
    keys: tuple[str, ...] | None = None
    margin_rate: float | None = None
    margin_per: float | None = None

    def write(self, folder: Path) -> None:
        (folder / REQUEST_FILE).write_text(
            yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))

    @classmethod
    def read(cls, folder: Path) -> StudyRequest | None:
        """<folder>/request.yaml, or None where there is none."""
        path = folder / REQUEST_FILE
        if not path.is_file():
            return None
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (yaml.YAMLError, ValidationError) as err:
            line = (validation_line(err, str(path), model=cls)
                    if isinstance(err, ValidationError) else f"{path}: not valid YAML")
            raise UserError(line + "; this file is written when a ladder starts: restore it "
                                   "or start the ladder again") from None


class ResumeRequest(_Request):
    """`python -m study.run resume <experiment>`: trials keep the resources and concurrency
    the study started with."""

    experiment: str
    no_report: bool = False
    ray: RayOptions = RayOptions()
