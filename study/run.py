"""python -m study.run grid|map|asha|optuna|resume: Ray Tune studies of training stability.

One place configures Tune (Tuner, TuneConfig, RunConfig); the trainable itself lives in
trainable.tune_adapter and knows nothing of studies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import yaml

from study.presets import Preset, check_axes_exist, grid_points, load_preset
from trainable.config import CONFIG_DIR, Config, build_config, load_config, read_yaml
from trainable.errors import ConfigError, OneLineArgumentParser, UserError, run_cli

COMMANDS = ("grid", "map", "asha", "optuna")
STUDY_FILE = "study.yaml"
CHECKPOINT_EVERY = 2  # evaluations between checkpoints (the last report always has one)
OBJECT_STORE_LIMIT = 2 * 2**30  # bytes of features shared through the object store
PACKAGES = ("b2t-stability", "ray", "torch", "optuna", "numpy", "pandas", "h5py", "scipy",
            "statsmodels", "scikit-learn")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m study.run",
        description="Run a Ray Tune study of GRU/CTC training stability over Adam eps, "
                    "lr_max, white_noise_std and constant_offset_std, then write its report.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "grid": "confirmatory 2x2x2x2 factorial with seeds, full budget (the main job)",
        "map": "dense 2-D stable-region maps (eps x lr_max; noise x offset) with seeds",
        "asha": "exploratory random search over the continuous box with ASHA",
        "optuna": "exploratory TPE search (OptunaSearch) with ASHA",
    }
    for name in COMMANDS:
        p = sub.add_parser(name, help=helps[name], description=helps[name])
        p.add_argument("--preset", default=None,
                       help=f"preset name in configs/studies/ or a YAML file (default: {name})")
        p.add_argument("--data", default=None,
                       help="Brain-to-Text '25 folder (<root>/<session>/data_*.hdf5); default: "
                            "built-in synthetic data, generated once and cached under "
                            "./data/synthetic (B2T_DATA_CACHE overrides)")
        p.add_argument("--train-config", default=None,
                       help="training config YAML (default: the preset's, configs/train/"
                            "proxy.yaml)")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="override a training config value for every trial")
        p.add_argument("--synthetic-set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a synthetic-data knob (without --data)")
        p.add_argument("--seeds", type=_positive_int, default=None,
                       help="seeds per cell (grid/map); in random search each seed gets "
                            "its own draws (the samples are not replicated)")
        p.add_argument("--samples", type=_positive_int, default=None,
                       help="number of sampled configurations (asha/optuna)")
        p.add_argument("--budget", default=None,
                       help="smoke, default or full (the preset's budgets), or a number of "
                            "training steps")
        p.add_argument("--storage", default="results",
                       help="folder holding experiment folders (default: ./results)")
        p.add_argument("--name", default=None,
                       help="experiment folder name (default: <preset>-<date>-<time>)")
        _add_cluster_flags(p)
        p.add_argument("--no-report", action="store_true",
                       help="skip the analysis report at the end")
    p = sub.add_parser("resume", help="continue an interrupted study",
                       description="Continue an interrupted study: unfinished trials resume "
                                   "from their last checkpoint, errored ones are retried, "
                                   "finished ones are not re-run.")
    p.add_argument("experiment", help="the experiment folder (<storage>/<name>)")
    _add_ray_flags(p)  # trials keep the resources and concurrency the study started with
    p.add_argument("--no-report", action="store_true", help="skip the analysis report")
    return parser


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None,
                   help="attach to an existing Ray cluster (HOST:PORT); RAY_ADDRESS is "
                        "honoured; default: start a local instance")
    p.add_argument("--dashboard", action="store_true",
                   help="start the Ray dashboard on 127.0.0.1:8265 and print its URL")


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    _add_ray_flags(p)
    p.add_argument("--cpus-per-trial", type=_positive_float, default=1.0,
                   help="CPUs per trial; torch uses as many threads (default 1)")
    p.add_argument("--gpus-per-trial", type=_nonneg_float, default=0.0,
                   help="GPUs per trial, fractions allowed (default 0: CPU)")
    p.add_argument("--max-concurrent", type=_positive_int, default=None,
                   help="trials at once (default: as many as the CPUs allow)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float_at_least(text: str, low: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise argparse.ArgumentTypeError(
            f"expected a number {'>' if strict else '>='} {low:g}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _float_at_least(text, 0.0, strict=True)


def _nonneg_float(text: str) -> float:
    return _float_at_least(text, 0.0, strict=False)


# ----------------------------------------------------------------- study plan
def resolve_budget(preset: Preset, budget: str | None) -> dict:
    name = budget or preset.default_budget
    if name in preset.budgets:
        b = preset.budgets[name]
        return {"name": name, "steps": b.steps, "eval_every": b.eval_every, "seeds": b.seeds,
                "samples": b.samples}
    if name.isdigit() and int(name) > 0:
        steps = int(name)
        base = preset.budgets[preset.default_budget]
        # As many evaluations as the preset's default budget has.
        return {"name": f"{steps} steps", "steps": steps,
                "eval_every": max(1, round(steps * base.eval_every / base.steps)),
                "seeds": None, "samples": None}
    raise UserError(f"--budget {budget}: expected one of {', '.join(preset.budgets)} or a "
                    "positive number of steps")


def budget_overrides(budget: dict, cfg_tree: dict) -> list[str]:
    """The schedule is stretched to the budget as in the official run, where the cosine
    decay ends at the last batch (lr_decay_steps = num_training_batches = 120,000). The
    warm-up keeps its share of the training config's schedule."""
    optim = cfg_tree.get("optim", {})
    decay = optim.get("lr_decay_steps", 120000)
    steps = budget["steps"]
    overrides = [f"train.num_steps={steps}", f"train.eval_every={budget['eval_every']}"]
    for suffix in ("", "_day"):  # the day layers' own schedule, where one is set
        if suffix == "" or optim.get(f"lr_decay_steps{suffix}") is not None:
            warmup = optim.get(f"lr_warmup_steps{suffix}", optim.get("lr_warmup_steps", 1000))
            own_decay = optim.get(f"lr_decay_steps{suffix}", decay)
            overrides += [f"optim.lr_decay_steps{suffix}={steps}",
                          f"optim.lr_warmup_steps{suffix}={round(warmup * steps / own_decay)}"]
    return overrides


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def build_search(preset: Preset, cfg: Config, seeds: int, samples: int, search_seed: int):
    """(param_space, search_alg, num_samples) for Tune."""
    from ray import tune

    keys = preset.axis_keys()
    if preset.search == "grid":
        points = grid_points(preset, cfg)
        space = {"cell": tune.grid_search(list(range(len(points)))),
                 "seed": tune.grid_search(list(range(seeds)))}
        for name in keys:
            space[name] = tune.sample_from(
                lambda config, n=name, pts=points: pts[config["cell"]][n])
        return space, None, 1
    space = {}
    for name, axis in preset.axis_specs().items():
        dist = tune.loguniform if axis.distribution == "loguniform" else tune.uniform
        space[name] = dist(axis.low, axis.high)
    if preset.search == "random":
        from ray.tune.search import BasicVariantGenerator

        space["seed"] = tune.grid_search(list(range(seeds)))
        return space, BasicVariantGenerator(random_state=search_seed), samples
    from ray.tune.search.optuna import OptunaSearch

    space["seed"] = 0
    return space, OptunaSearch(seed=search_seed), samples


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
        resolve_trial_config({**point, "seed": 0}, base, keys)
    return len(points) * seeds


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = sys.version.split()[0]
    return versions


# ------------------------------------------------------------------- running
def _tune_objects(preset: Preset, exp_dir: Path, budget_steps: int, n_trials: int | None):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from study.progress import OutcomeLogger

    if preset.scheduler == "asha":
        grace = max(1, math.ceil(preset.asha.grace_fraction * budget_steps))
        scheduler = ASHAScheduler(time_attr="step", max_t=budget_steps, grace_period=grace,
                                  reduction_factor=preset.asha.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    run_config = tune.RunConfig(
        name=exp_dir.name, storage_path=str(exp_dir.parent), verbose=1,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=2),
        callbacks=[OutcomeLogger(list(preset.axis_keys()), n_trials)])
    return scheduler, run_config


def _shared_dataset(dataset, cache_root: Path):
    """What trials receive: the Dataset itself (one copy in Ray's object store, read
    zero-copy) or, past OBJECT_STORE_LIMIT bytes (the full real data is ~14 GB), the folder
    of a packed .npy cache that every trial memory-maps, sharing the page cache."""
    size = sum(split.features.nbytes for split in dataset.splits.values())
    if size <= OBJECT_STORE_LIMIT:
        return dataset
    folder = cache_root / dataset.fingerprint()
    if not (folder / "dataset.json").is_file():
        print(f"packing {size / 2**30:.1f} GiB of features into {folder} for memory-mapped "
              "sharing", file=sys.stderr)
        dataset.save_cache(folder)
    return str(folder)


def _make_trainable(study: dict, dataset, resources: dict, cache_root: Path):
    from ray import tune

    from trainable.tune_adapter import tune_trainable

    fn = tune.with_parameters(tune_trainable, base_config=study["train_config"],
                              dataset=_shared_dataset(dataset, cache_root),
                              axes=study["axis_keys"], checkpoint_every=CHECKPOINT_EVERY)
    return tune.with_resources(fn, resources)


def _resources(cpus: float, gpus: float) -> dict:
    res = {"cpu": cpus}
    if gpus > 0:
        res["gpu"] = gpus
    return res


def _default_concurrency(cpus_per_trial: float, gpus_per_trial: float) -> int:
    import ray

    total = ray.cluster_resources()
    n = int(total.get("CPU", 1) // cpus_per_trial)
    if gpus_per_trial > 0:
        n = min(n, int(total.get("GPU", 0) // gpus_per_trial))
    return max(n, 1)


def _load_data(data_arg, synthetic_set, cfg: Config, fingerprint: str | None = None):
    """Read and validate the data; with `fingerprint` (resume), it must be unchanged."""
    from trainable.data import load_dataset
    from trainable.source import resolve_data_root

    root, desc = resolve_data_root(data_arg, synthetic_overrides=synthetic_set)
    start = time.perf_counter()
    dataset = load_dataset(root, cfg)
    if fingerprint is not None and dataset.fingerprint() != fingerprint:
        raise UserError(f"{root}: data changed since the study started (fingerprint "
                        f"{dataset.fingerprint()} != {fingerprint}); restore the data or "
                        "start a new study")
    print(f"{desc}: {dataset.report.summary()} (read and validated in "
          f"{time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return root, dataset


def launch(args) -> int:
    from study.cluster import resolve_address, start_ray, stop_ray

    preset = load_preset(args.preset or args.command)
    budget = resolve_budget(preset, args.budget)
    seeds = args.seeds or budget["seeds"] or preset.seeds
    samples = args.samples or budget["samples"] or preset.samples
    if preset.search == "optuna" and seeds != 1:
        raise UserError("optuna studies take one seed per sample (--seeds 1): TPE cannot "
                        "tell seed noise from an axis effect within one trial")
    cfg_path = Path(args.train_config) if args.train_config else CONFIG_DIR / preset.train_config
    tree = read_yaml(cfg_path)
    overrides = budget_overrides(budget, tree) + list(args.overrides)
    threads = max(1, int(args.cpus_per_trial))
    overrides.append(f"train.num_threads={threads}")
    if args.gpus_per_trial > 0:
        overrides.append("train.device=cuda")
    cfg = load_config(cfg_path, overrides)
    check_axes_exist(preset, cfg)
    n_cells = validate_cells(preset, cfg, seeds)
    storage = Path(args.storage).expanduser().resolve()
    name = args.name or f"{preset.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    exp_dir = storage / name
    if exp_dir.exists() and any(exp_dir.iterdir()):
        raise UserError(f"{exp_dir}: experiment folder already exists; continue it with "
                        f"'python -m study.run resume {exp_dir}' or choose another --name")
    address = resolve_address(args.address)  # fails fast, before the data is read
    root, dataset = _load_data(args.data, args.synthetic_set, cfg)
    study = {
        "name": name,
        "preset": preset.name,
        "preset_config": preset.model_dump(mode="json"),
        "kind": preset.kind,
        "search": preset.search,
        "scheduler": preset.scheduler,
        "axes": {n: a.model_dump(mode="json", exclude_none=True)
                 | {"key": preset.axis_keys()[n]} for n, a in preset.axis_specs().items()},
        "axis_keys": preset.axis_keys(),
        "seeds": list(range(seeds)),
        "samples": samples if preset.search != "grid" else None,
        "n_trials": n_cells or samples * (seeds if preset.search == "random" else 1),
        "budget": budget["name"],
        "budget_steps": cfg.train.num_steps,
        "eval_every": cfg.train.eval_every,
        "metric": preset.metric,
        "mode": preset.mode,
        "primary_hypothesis": preset.primary_hypothesis,
        "claims": preset.claims,
        "train_config_file": str(cfg_path),
        "train_config": cfg.model_dump(mode="json"),
        "data": {"path": str(root), "synthetic": args.data is None,
                 "fingerprint": dataset.fingerprint(), "n_sessions": len(dataset.sessions),
                 "n_train_trials": len(dataset.train), "n_val_trials": len(dataset.val),
                 "dropped": dataset.report.total_dropped()},
        "resources": {"cpus_per_trial": args.cpus_per_trial,
                      "gpus_per_trial": args.gpus_per_trial},
        "versions": package_versions(),
        "cli": " ".join(["python -m study.run", *sys.argv[1:]]),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
    }
    cluster = start_ray(address, storage, args.dashboard, None)
    try:
        from ray import tune

        resources = _resources(args.cpus_per_trial, args.gpus_per_trial)
        max_conc = args.max_concurrent or _default_concurrency(args.cpus_per_trial,
                                                               args.gpus_per_trial)
        space, search_alg, num_samples = build_search(preset, cfg, seeds, samples,
                                                      search_seed=0)
        scheduler, run_config = _tune_objects(preset, exp_dir, cfg.train.num_steps,
                                              study["n_trials"])
        tuner = tune.Tuner(
            _make_trainable(study, dataset, resources, storage / ".datacache"),
            param_space=space,
            tune_config=tune.TuneConfig(metric=preset.metric, mode=preset.mode,
                                        search_alg=search_alg, scheduler=scheduler,
                                        num_samples=num_samples,
                                        max_concurrent_trials=max_conc, reuse_actors=True,
                                        trial_dirname_creator=trial_dirname),
            run_config=run_config)
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / STUDY_FILE).write_text(yaml.safe_dump(study, sort_keys=False))
        print(f"study {name}: {study['n_trials']} trials of {cfg.train.num_steps} steps, "
              f"{max_conc} at a time; folder {exp_dir}", file=sys.stderr)
        results = tuner.fit()
    finally:
        if cluster["owned"]:
            stop_ray()
    return finish(exp_dir, results, study, args.no_report)


def resume(args) -> int:
    from study.cluster import resolve_address, start_ray, stop_ray

    exp_dir = Path(args.experiment).expanduser().resolve()
    study_file = exp_dir / STUDY_FILE
    if not study_file.is_file():
        raise UserError(f"{exp_dir}: not an experiment folder of this tool (no {STUDY_FILE}); "
                        "give the folder that 'python -m study.run grid' created")
    study = read_yaml(study_file)
    cfg = build_config(study["train_config"], source=str(study_file))
    if not (exp_dir / "tuner.pkl").is_file():  # what tune.Tuner.can_restore looks for
        raise UserError(f"{exp_dir}: Tune saved no experiment state there (the study stopped "
                        "before it began); delete the folder and start the study again")
    address = resolve_address(args.address)
    _, dataset = _load_data(study["data"]["path"], [], cfg, study["data"]["fingerprint"])
    cluster = start_ray(address, exp_dir.parent, args.dashboard, None)
    try:
        from ray import tune

        res = study["resources"]
        resources = _resources(res["cpus_per_trial"], res["gpus_per_trial"])
        # Tune does not pickle the grid's sample_from functions: without the space given
        # again, trials not started before the interrupt get placeholders as their axes.
        preset = Preset.model_validate(study["preset_config"])
        space, _, _ = build_search(preset, cfg, len(study["seeds"]), study["samples"] or 1,
                                   search_seed=0)
        trainable = _make_trainable(study, dataset, resources, exp_dir.parent / ".datacache")
        tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable,
                                   param_space=space,
                                   resume_unfinished=True, resume_errored=True)
        print(f"resuming {exp_dir}", file=sys.stderr)
        results = tuner.fit()
    finally:
        if cluster["owned"]:
            stop_ray()
    return finish(exp_dir, results, study, args.no_report)


def finish(exp_dir: Path, results, study: dict, no_report: bool) -> int:
    from study.progress import outcome_table, unfinished_trials

    print(outcome_table(results))
    pending = unfinished_trials(results, study["n_trials"], study["scheduler"] != "fifo")
    if pending:
        print(f"{pending} trial(s) did not finish; continue with: python -m study.run resume "
              f"{exp_dir}", file=sys.stderr)
    if not no_report:
        # The report prints its summary.txt; a failed report loses nothing already run.
        proc = subprocess.run([sys.executable, "-m", "analysis.report", str(exp_dir)],
                              check=False)
        if proc.returncode != 0:
            print(f"the report failed (exit {proc.returncode}); the results are intact in "
                  f"{exp_dir}; retry with: python -m analysis.report {exp_dir}",
                  file=sys.stderr)
            return 1
    return 130 if pending else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: resume(args) if args.command == "resume" else launch(args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    sys.exit(main())
