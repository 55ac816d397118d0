"""Typed training configuration: YAML in, validated objects out.

Every value is checked once, when the YAML or a `--set key=value` override is read; a bad
value raises ConfigError naming the key, the value and what was expected.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainable.errors import ConfigError, validation_line
from trainable.official_args import from_official, is_official

# The config-tree helpers, re-exported: callers import them from here.
from trainable.tree import get_dotted, parse_override, read_yaml, set_dotted

__all__ = ["get_dotted", "parse_override", "read_yaml", "set_dotted"]


def _config_dir() -> Path:
    """configs/ of the checkout (editable installs, the normal set-up), else the copy a
    regular install puts under <prefix>/share/b2t-stability/configs (pyproject data-files)."""
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "b2t-stability" / "configs"


CONFIG_DIR = _config_dir()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataConfig(_Section):
    n_features: int = Field(512, gt=0)
    # Explicit session order: a session's position is its day index (the official
    # rnn_args.yaml lists all 45). None: sorted session folder names.
    sessions: list[str] | None = None
    # What to do with a trial whose features hold NaN/Inf: stop with an error naming it,
    # or drop it and count it in the validation report.
    nonfinite_features: Literal["error", "drop"] = "error"
    batch_size: int = Field(64, gt=0)
    days_per_batch: int = Field(4, gt=0)
    # Seed of the day-batch sampler (the official Dataset seeds numpy with 1).
    seed: int = 1
    # Use only the first N validation trials of each day (None: all). Proxy speed knob.
    max_val_trials_per_day: int | None = Field(None, gt=0)
    # How training batches are drawn: "days", the official sampler (days_per_batch days per
    # batch, trials drawn within them); "shuffle", a plain shuffle over every training trial
    # of every day, epoch after epoch, as a generic DataLoader(shuffle=True) (a trainer
    # difference, trainable.variants).
    sampling: Literal["days", "shuffle"] = "days"
    # "global": z-score every feature again over all training frames (mean and SD of the
    # training split, applied to training and validation), on top of the per-block
    # normalisation the data already has. Official: "none" (trainable.variants).
    extra_normalisation: Literal["none", "global"] = "none"


class ModelConfig(_Section):
    n_units: int = Field(768, gt=0)
    n_layers: int = Field(5, gt=0)
    rnn_dropout: float = Field(0.4, ge=0.0, lt=1.0)
    input_dropout: float = Field(0.2, ge=0.0, lt=1.0)
    patch_size: int = Field(14, gt=0)
    patch_stride: int = Field(4, gt=0)
    n_classes: int = Field(41, gt=1)


class AugmentConfig(_Section):
    white_noise_std: float = Field(1.0, ge=0.0)
    constant_offset_std: float = Field(0.2, ge=0.0)
    random_walk_std: float = Field(0.0, ge=0.0)
    random_walk_axis: int = -1
    static_gain_std: float = Field(0.0, ge=0.0)
    # Official: cut = randint(0, random_cut) frames from the start, i.e. 0..random_cut-1.
    random_cut: int = Field(3, ge=0)
    smooth_data: bool = True
    smooth_kernel_size: int = Field(100, gt=0)
    smooth_kernel_std: float = Field(2.0, gt=0.0)

    @property
    def max_cut(self) -> int:
        return max(self.random_cut - 1, 0)


class OptimConfig(_Section):
    lr_max: float = Field(0.005, gt=0.0)
    lr_min: float = Field(0.0001, gt=0.0)
    lr_warmup_steps: int = Field(1000, ge=0)
    lr_decay_steps: int = Field(120000, gt=0)
    # Day layers follow the main schedule unless these are set.
    lr_max_day: float | None = Field(None, gt=0.0)
    lr_min_day: float | None = Field(None, gt=0.0)
    lr_warmup_steps_day: int | None = Field(None, ge=0)
    lr_decay_steps_day: int | None = Field(None, gt=0)
    schedule: Literal["cosine", "linear"] = "cosine"
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    eps: float = Field(0.1, gt=0.0)
    weight_decay: float = Field(0.001, ge=0.0)
    weight_decay_day: float = Field(0.0, ge=0.0)
    # "decoupled": AdamW, as the official trainer; "l2": torch.optim.Adam with
    # weight_decay, the penalty added to the gradient (and so scaled by Adam's 1/sqrt(v)).
    weight_decay_mode: Literal["decoupled", "l2"] = "decoupled"
    grad_clip: float = Field(10.0, gt=0.0)

    @model_validator(mode="after")
    def _lr_order(self) -> OptimConfig:
        if self.lr_min > self.lr_max:
            raise ValueError(f"lr_min={self.lr_min} is above lr_max={self.lr_max}; "
                             "set lr_min <= lr_max")
        return self

    def day_schedule(self) -> tuple[float, float, int, int]:
        """(lr_max, lr_min, warmup, decay) of the day-layer group."""
        return (
            self.lr_max_day if self.lr_max_day is not None else self.lr_max,
            self.lr_min_day if self.lr_min_day is not None else self.lr_min,
            self.lr_warmup_steps_day if self.lr_warmup_steps_day is not None
            else self.lr_warmup_steps,
            self.lr_decay_steps_day if self.lr_decay_steps_day is not None
            else self.lr_decay_steps,
        )


class TrainConfig(_Section):
    num_steps: int = Field(120000, gt=0)
    eval_every: int = Field(2000, gt=0)
    # Official: numpy, random and torch seeded with 10 before the model is built.
    seed: int = 10
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    # bf16 autocast over augmentation, forward and loss, as the official GPU run.
    amp: bool = False
    compile: bool = False
    # torch intra-op threads; None leaves torch's default. Keep at the trial's CPU count.
    num_threads: int | None = Field(None, gt=0)
    # How a CPU run trains and evaluates the GRU: "fast" runs it over each trial's valid
    # patches only and backpropagates through time by hand (trainable/gru.py: the nn.GRU
    # equations, outputs and gradients equal to float32 rounding), draws dropout masks with
    # torch.rand and steps the fused AdamW; "reference" uses nn.GRU over the padded batch,
    # nn.Dropout and the foreach AdamW. CUDA runs are the same either way.
    cpu_path: Literal["fast", "reference"] = "fast"
    # Training batches built this many batches ahead by a background thread (into pinned
    # memory on CUDA, so the copy overlaps compute; the official loader has 4 workers).
    # 0: built on demand. The batches and their order are the same either way.
    prefetch_batches: int = Field(0, ge=0)
    # CUDA only: the share of the GPU's memory this process may allocate (torch's
    # set_per_process_memory_fraction), so trials sharing a GPU cannot starve each other:
    # a study sets it to --gpus-per-trial when that is a fraction. None: no cap.
    gpu_memory_fraction: float | None = Field(None, gt=0.0, le=1.0)


class LossConfig(_Section):
    # The CTC loss of one utterance: "utterance", its plain sum over the utterance (official:
    # CTCLoss(reduction='none') then the batch mean); "label", divided by the utterance's
    # label count first, as CTCLoss(reduction='mean'), which makes gradients ~29x smaller
    # on the real data (28.8 labels per sentence; trainable.variants).
    normalisation: Literal["utterance", "label"] = "utterance"
    # CTCLoss(zero_infinity=True) replaces an infinite loss (labels that cannot fit) and its
    # gradient by zero instead of stopping the run as diverged. Official: false.
    zero_infinity: bool = False


class MonitorConfig(_Section):
    # CTC nets plateau on all-blank output for the first hundreds of steps and recover;
    # a collapse counts only once blank-only output persists past this share of the budget.
    collapse_grace_fraction: float = Field(0.25, ge=0.0, le=1.0)
    # "Blank-only": the greedy validation output holds fewer non-blank tokens than this
    # share of the reference phonemes (a trained decoder emits about one per label).
    collapse_emit_ratio: float = Field(0.1, ge=0.0, le=1.0)
    # Diverged: a validation loss this many times the step-0 loss (or any NaN/Inf).
    diverge_loss_factor: float = Field(3.0, gt=1.0)
    # Exploding: a pre-clip gradient norm this many times the run's median pre-clip norm.
    explode_factor: float = Field(50.0, gt=1.0)
    # An absolute alarm as some trainers raise it: also exploding when a pre-clip norm
    # passes this value (None: the relative rule above only, this project's default). The
    # normal official run has a median pre-clip norm near 29, so an alarm at 20 fires on
    # healthy training (shared/design/real_data_targets.md).
    explode_norm: float | None = Field(None, gt=0.0)
    # Slow: finishes without failing but with final val PER above this.
    slow_per: float = Field(0.5, gt=0.0)


class Config(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    monitor: MonitorConfig = MonitorConfig()

    @model_validator(mode="after")
    def _cross(self) -> Config:
        if self.data.days_per_batch > self.data.batch_size:
            raise ValueError(f"data.days_per_batch={self.data.days_per_batch} exceeds "
                             f"data.batch_size={self.data.batch_size}")
        return self


def read_config_tree(path: str | Path) -> tuple[dict, list[str] | None]:
    """A config file as this project's tree: the project's own format as is, an official
    rnn_args.yaml mapped key by key (trainable.official_args; the lines say how). Returns
    (tree, mapping lines or None for the project's own format)."""
    tree = read_yaml(path)
    if is_official(tree):
        return from_official(tree, source=str(path))
    return tree, None


def build_config(tree: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(validation_line(err, source, model=Config, noun="config key")) from None


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None
                ) -> Config:
    """Read a YAML config (default: the proxy config; the project's format or an official
    rnn_args.yaml) and apply overrides.

    `overrides` is a list of 'key=value' strings or a {dotted key: value} dict.
    """
    path = Path(path) if path is not None else CONFIG_DIR / "train" / "proxy.yaml"
    tree, _ = read_config_tree(path)
    items = list(overrides.items()) if isinstance(overrides, dict) else [
        parse_override(o) for o in (overrides or [])]
    if not items:
        return build_config(tree, source=str(path))
    build_config(copy.deepcopy(tree), source=str(path))  # a bad file is named as the file
    for key, value in items:
        set_dotted(tree, key, value)
    return build_config(tree, source="--set")
