"""A study's plan, before anything runs: the budget, the training config every trial
starts from, the cells and their check, and the study record (analysis/record.py) that
study.yaml keeps. No Ray here; a bad request fails in this module, before Ray starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis import claims as claims_mod
from analysis.record import (AdaptiveRecord, ClaimsRecord, StudyRecord, WaveRecord,
                             WaveTrial)
from analysis.scope import OFFICIAL
from study import planner
from study.presets import (Preset, apply_day_lr, axis_levels, check_axes_exist, config_value,
                           control_axis, design_blocks, grid_points, stored_preset)
from study.request import StudyRequest
from trainable.config import CONFIG_DIR, Config, load_config, read_config_tree
from trainable.errors import ConfigError, UserError
from trainable.official_args import official_data_dir


def resolve_budget(preset: Preset, budget: str | None) -> dict:
    name = budget or preset.default_budget
    if name in preset.budgets:
        b = preset.budgets[name]
        return {"name": name, "steps": b.steps, "eval_every": b.eval_every, "seeds": b.seeds,
                "samples": b.samples, "minutes": b.minutes, "max_trials": b.max_trials}
    if name.isdigit() and int(name) > 0:
        steps = int(name)
        base = preset.budgets[preset.default_budget]
        # As many evaluations as the preset's default budget has, and adaptive minutes
        # that scale with the steps: a trial of 120,000 steps takes 300x one of 400, so the
        # default budget's minutes would end the study after its first wave.
        minutes = base.minutes or (preset.adaptive.minutes if preset.adaptive else None)
        return {"name": f"{steps} steps", "steps": steps,
                "eval_every": max(1, round(steps * base.eval_every / base.steps)),
                "seeds": None, "samples": None,
                "minutes": minutes * steps / base.steps if minutes else None,
                "max_trials": None}
    raise UserError(f"--budget {budget}: expected one of {', '.join(preset.budgets)} or a "
                    "positive number of steps")


def budget_overrides(budget: dict, cfg_tree: dict, schedule: str = "stretched") -> list[str]:
    """`stretched`: the schedule is stretched to the budget as in the official run, where
    the cosine decay ends at the last batch (lr_decay_steps = num_training_batches =
    120,000), and the warm-up keeps its share of the training config's schedule. `real`:
    the training config's schedule in its own step units, truncated at the budget (the
    first 4,000 steps of the official 120,000: a 1,000-step warm-up, then a cosine that has
    barely begun to fall)."""
    optim = cfg_tree.get("optim", {})
    decay = optim.get("lr_decay_steps", 120000)
    steps = budget["steps"]
    overrides = [f"train.num_steps={steps}", f"train.eval_every={budget['eval_every']}"]
    if schedule == "real":
        return overrides
    for suffix in ("", "_day"):  # the day layers' own schedule, where one is set
        if suffix == "" or optim.get(f"lr_decay_steps{suffix}") is not None:
            warmup = optim.get(f"lr_warmup_steps{suffix}", optim.get("lr_warmup_steps", 1000))
            own_decay = optim.get(f"lr_decay_steps{suffix}", decay)
            overrides += [f"optim.lr_decay_steps{suffix}={steps}",
                          f"optim.lr_warmup_steps{suffix}={round(warmup * steps / own_decay)}"]
    return overrides


def validate_cells(preset: Preset, cfg: Config, seeds: int) -> int:
    """Every grid cell must give a valid training config (checked before Ray starts)."""
    from trainable.tune_adapter import resolve_trial_config

    base = cfg.model_dump(mode="json")
    keys = preset.axis_keys()
    if preset.search != "grid":
        # A sampled value can be any point of the box: check each axis at both ends.
        for name, axis in preset.axis_specs().items():
            for value in (axis.low, axis.high):
                try:
                    resolve_trial_config({name: value, "seed": 0}, base, keys)
                except ConfigError as err:
                    raise ConfigError(f"preset {preset.name!r}: axis {name!r} at {value:g}: "
                                      f"{str(err).split(': ', 1)[-1]}") from None
        return 0
    points = grid_points(preset, cfg)
    for point in points:
        resolve_trial_config({**point, "seed": 0}, base, keys, axis_levels(preset))
    return len(points) * seeds


def control_cells(preset: Preset, cfg: Config, points: list[dict]) -> list[dict]:
    """Each control with the index of its cell; two controls (or a positive control and the
    official setting) that resolve to the same cell would share runs: refused."""
    keys = preset.axis_keys()
    found: dict[int, str] = {}
    controls = []
    for control in preset.controls:
        point = {n: config_value(cfg, k) for n, k in keys.items()}
        point.update({control_axis(k): v for k, v in control.set.items()})
        cell = points.index(point) if point in points else None
        if cell is None or cell in found:
            raise ConfigError(f"preset {preset.name!r}: control {control.name!r} resolves to "
                              + (f"the same setting as {found[cell]!r}" if cell in found
                                 else "no cell of the design")
                              + " with this training config; give it a setting of its own")
        found[cell] = control.name
        controls.append(control.model_dump(mode="json") | {"cell": cell})
    return controls


def wave_record(index: int, plan: planner.Plan) -> WaveRecord:
    return WaveRecord(index=index, folder=f"wave-{index:02d}", reason=plan.reason,
                      trials=[WaveTrial(cell=c, seed=s) for c, s in plan.trials])


def wave_trials(wave: WaveRecord) -> list[tuple[int, int]]:
    return [(t.cell, t.seed) for t in wave.trials]


@dataclass(frozen=True)
class StudyPlan:
    """A request resolved against its preset: what every trial of the study runs."""

    preset: Preset
    budget: dict
    seeds: int
    samples: int
    adaptive: bool
    cfg_path: Path
    cfg: Config
    official: bool  # the training config is an official rnn_args.yaml
    n_cells: int  # grid trials (cells x seeds); 0 for a sampled design
    claims_path: Path | None
    claims: claims_mod.ClaimsFile | None


# The official run: 120,000 batches in about 3.5 h on one RTX 4090 (official README).
OFFICIAL_SECONDS_PER_STEP = 3.5 * 3600 / 120_000


def is_official_size(cfg: Config) -> bool:
    return (cfg.data.n_features, cfg.model.n_units, cfg.model.n_layers) == (
        OFFICIAL["n_features"], OFFICIAL["n_units"], OFFICIAL["n_layers"])


def check_official_budget(cfg: Config, own_warmup: int, allow_short: bool) -> None:
    """A budget shorter than the official model's own warm-up cannot say anything about
    it (the stretched schedule would squeeze the 1,000-step warm-up into a few steps)."""
    if is_official_size(cfg) and cfg.train.num_steps < own_warmup and not allow_short:
        raise UserError(f"--budget: {cfg.train.num_steps:,} steps is shorter than the "
                        f"official model's own warm-up ({own_warmup:,} steps; the real run "
                        "trains 120,000): such a run says nothing about it; give a budget "
                        "in real steps (e.g. --budget 4000) or --allow-short-budget")


def projection(cfg: Config, first_wave: int, max_trials: int | None, cells: int,
               measured_s_per_step: float | None = None) -> str:
    """One line before an official-size study starts: what it will cost in GPU-hours at
    the official run's step time (or at a step time measured on this cluster's GPU), and
    the seeds per cell that buys."""
    per_step = measured_s_per_step or OFFICIAL_SECONDS_PER_STEP
    source = ("measured here on a trial's share of the GPU" if measured_s_per_step
              else "the official run on one RTX 4090")
    hours = cfg.train.num_steps * per_step / 3600
    most = max_trials or first_wave
    return (f"projected: {first_wave} trial(s) in the first wave, at most {most}, of "
            f"{cfg.train.num_steps:,} steps at ~{per_step:.3f} s/step ({source}): "
            f"{first_wave * hours:,.1f} GPU-hours for the "
            f"first wave, {most * hours:,.1f} at most; about {most / max(cells, 1):.1f} "
            "seeds per cell at that cost")


def check_loggers(request: StudyRequest) -> None:
    """--wandb / --mlflow need their packages on the driver (Tune's own callbacks log from
    there); say so before anything starts."""
    import importlib.util

    for flag, package in (("wandb", "wandb"), ("mlflow", "mlflow")):
        if getattr(request, flag) and importlib.util.find_spec(package) is None:
            raise UserError(f"--{flag}: the {package} package is not installed; pip install "
                            f"{package}, or drop --{flag}")


def check_device(cfg: Config, gpus_per_trial: float) -> None:
    """`train.device: auto` on a machine with a GPU while no GPU is requested would send
    every trial to cuda:0 outside Ray's GPU accounting (the official config says auto)."""
    if cfg.train.device != "auto" or gpus_per_trial > 0:
        return
    import torch

    if torch.cuda.is_available():
        raise UserError("train.device is auto and this machine has a GPU, but no GPU is "
                        "requested: every trial would use cuda:0 unaccounted; give "
                        "--gpus-per-trial (a fraction to share a GPU) or --set "
                        "train.device=cpu")


def plan_study(request: StudyRequest, preset: Preset) -> StudyPlan:
    """Check the request against the preset and build the training config and cells."""
    budget = resolve_budget(preset, request.budget)
    seeds = request.seeds or budget["seeds"] or preset.seeds
    samples = request.samples or budget["samples"] or preset.samples
    if preset.search == "grid" and request.search_seed:
        raise UserError(f"--search-seed: preset {preset.name!r} is a grid, it draws no "
                        "configurations; drop the flag (--seeds sets the replicates)")
    if preset.search == "optuna" and seeds != 1:
        raise UserError("optuna studies take one seed per sample (--seeds 1): TPE cannot "
                        "tell seed noise from an axis effect within one trial")
    adaptive = preset.adaptive is not None and not request.no_adaptive
    if not adaptive and (request.minutes or request.max_trials):
        flag = "--minutes" if request.minutes else "--max-trials"
        raise UserError(f"{flag}: only adaptive studies add waves; preset {preset.name!r} "
                        + ("runs its fixed design (--no-adaptive)" if preset.adaptive else
                           "has no 'adaptive' section") + "; drop the flag")
    cfg_path = Path(request.train_config) if request.train_config \
        else CONFIG_DIR / preset.train_config
    tree, official = read_config_tree(cfg_path)
    overrides = budget_overrides(budget, tree, preset.schedule) + list(request.overrides)
    threads = max(1, int(request.cpus_per_trial))
    overrides.append(f"train.num_threads={threads}")
    if request.gpus_per_trial > 0:
        overrides.append("train.device=cuda")
        if request.gpus_per_trial < 1:  # trials share a GPU: each keeps to its share
            overrides.append(f"train.gpu_memory_fraction={request.gpus_per_trial}")
    cfg = apply_day_lr(preset, load_config(cfg_path, overrides))
    check_device(cfg, request.gpus_per_trial)
    check_loggers(request)
    check_official_budget(cfg, int(tree.get("optim", {}).get("lr_warmup_steps", 1000)),
                          request.allow_short_budget)
    check_axes_exist(preset, cfg)
    n_cells = validate_cells(preset, cfg, seeds)
    claims_path = claims_mod.resolve_claims_path(preset.claims)
    claims = claims_mod.load_claims(claims_path) if claims_path is not None else None
    return StudyPlan(preset=preset, budget=budget, seeds=seeds, samples=samples,
                     adaptive=adaptive, cfg_path=cfg_path, cfg=cfg,
                     official=official is not None, n_cells=n_cells,
                     claims_path=claims_path, claims=claims)


def data_source(request: StudyRequest, plan: StudyPlan) -> tuple[str | None, Path | str | None]:
    """(recorded data folder, synthetic spec): exactly one is set, or neither (the default
    synthetic data)."""
    # An official rnn_args.yaml names its data folder; --data overrides it.
    data = request.data or (official_data_dir(plan.cfg_path) if plan.official else None)
    if data is not None and (request.synthetic_spec or request.synthetic_set):
        flag = "--synthetic-spec" if request.synthetic_spec else "--synthetic-set"
        raise UserError(f"{flag}: synthetic data is generated only without --data (or an "
                        "official config naming its data folder); drop one of them")
    preset = plan.preset
    spec = None if data is not None else request.synthetic_spec or (
        CONFIG_DIR / preset.synthetic_spec if preset.synthetic_spec else None)
    return data, spec


def study_record(plan: StudyPlan, request: StudyRequest, name: str, rung: str | None,
                 data: dict, versions: dict, cli: str, started: str) -> StudyRecord:
    """What study.yaml holds when the study starts (`data`: the DataRecord's fields)."""
    preset, cfg, seeds, samples = plan.preset, plan.cfg, plan.seeds, plan.samples
    points = grid_points(preset, cfg) if preset.search == "grid" else []
    controls = control_cells(preset, cfg, points) if preset.controls is not None else None
    adaptive = AdaptiveRecord(
        minutes=request.minutes or plan.budget["minutes"] or preset.adaptive.minutes,
        max_trials=request.max_trials or plan.budget["max_trials"]
        or preset.adaptive.max_trials,
        wave_trials=preset.adaptive.wave_trials,
        waves=[wave_record(1, planner.first_wave(len(points), seeds))]
    ) if plan.adaptive else None
    return StudyRecord(
        name=name, preset=preset.name, kind=preset.kind, search=preset.search,
        scheduler=preset.scheduler, metric=preset.metric, mode=preset.mode,
        axes={n: a.model_dump(mode="json", exclude_none=True)
              | {"key": preset.axis_keys()[n]} for n, a in preset.axis_specs().items()},
        blocks=design_blocks(preset, cfg), points=points, seeds=list(range(seeds)),
        samples=samples if preset.search != "grid" else None,
        search_seed=request.search_seed,
        n_trials=plan.n_cells or samples * (seeds if preset.search == "random" else 1),
        budget=plan.budget["name"], budget_steps=cfg.train.num_steps,
        eval_every=cfg.train.eval_every,
        primary_hypothesis=preset.primary_hypothesis,
        claims=ClaimsRecord(path=str(plan.claims_path), sha256=plan.claims.sha256)
        if plan.claims is not None else None,
        adaptive=adaptive,
        train_config_file=str(plan.cfg_path), train_config=cfg,
        day_lr=preset.day_lr if "optim.lr_max" in preset.axis_keys().values() else None,
        controls=controls, boundary=preset.boundary, rung=rung, data=data,
        resources={"cpus_per_trial": request.cpus_per_trial,
                   "gpus_per_trial": request.gpus_per_trial},
        loggers={name: value for name, value in (("wandb", request.wandb),
                                                  ("mlflow", request.mlflow)) if value},
        versions=versions, cli=cli, started=started,
        preset_config=stored_preset(preset))
