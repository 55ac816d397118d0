"""python -m study.run grid|map|asha|optuna|resume: Ray Tune studies of training stability.

One place configures Tune (Tuner, TuneConfig, RunConfig); the trainable itself lives in
trainable.tune_adapter and knows nothing of studies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import yaml

from analysis import claims as claims_mod
from analysis.record import (LADDER_FILE, STUDY_FILE, AdaptiveRecord, ClaimsRecord, StudyRecord,
                             WaveRecord, WaveTrial, read_record)
from analysis.scope import study_scope
from analysis.storage import Storage, resolve_storage, split_study_uri
from study import planner, refine
from study.presets import (Preset, apply_day_lr, check_axes_exist, config_value,
                           control_axis, design_blocks, grid_points, load_preset)
from study.storage import prune_checkpoints, tune_filesystem
from trainable.config import CONFIG_DIR, Config, build_config, load_config, read_config_tree
from trainable.errors import ConfigError, OneLineArgumentParser, UserError, run_cli
from trainable.official_args import official_data_dir
from trainable.synthetic import SPEC_FILE as SPEC_FILE_SYNTHETIC

COMMANDS = ("grid", "map", "asha", "optuna")
# Ray Tune set-up and tear-down around each wave (new Tuner, trial actors), in minutes.
WAVE_OVERHEAD_MINUTES = 0.4
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
                       help="training config YAML, the project's format or an official "
                            "rnn_args.yaml (detected; default: the preset's)")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="override a training config value for every trial")
        p.add_argument("--synthetic-set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a synthetic-data knob (without --data)")
        p.add_argument("--synthetic-spec", default=None, metavar="YAML",
                       help="synthetic-data spec (without --data; default: the preset's, "
                            "else configs/data/synthetic.yaml, generator 1); "
                            "configs/data/calibrated.yaml is generator 2, calibrated to "
                            "the real recordings")
        p.add_argument("--seeds", type=_positive_int, default=None,
                       help="seeds per cell (grid/map); in random search each seed gets "
                            "its own draws (the samples are not replicated)")
        p.add_argument("--samples", type=_positive_int, default=None,
                       help="number of sampled configurations (asha/optuna)")
        p.add_argument("--search-seed", type=_nonneg_int, default=0,
                       help="seed of the random / TPE sampler (asha/optuna; default 0): "
                            "another seed draws other configurations")
        p.add_argument("--budget", default=None,
                       help="smoke, default or full (the preset's budgets), or a number of "
                            "training steps")
        p.add_argument("--storage", default="results",
                       help="where experiment folders live: a local or shared (NFS) folder, "
                            "file://, s3://bucket/prefix or gs://bucket/prefix (default: "
                            "./results)")
        p.add_argument("--name", default=None,
                       help="experiment folder name (default: <preset>-<date>-<time>)")
        p.add_argument("--minutes", type=_positive_float, default=None,
                       help="adaptive studies: training time over all waves (default: the "
                            "preset's)")
        p.add_argument("--max-trials", type=_positive_int, default=None,
                       help="adaptive studies: trials over all waves (default: the preset's)")
        p.add_argument("--no-adaptive", action="store_true",
                       help="run only the preset's fixed design (no claim-directed waves)")
        _add_cluster_flags(p)
        p.add_argument("--no-report", action="store_true",
                       help="skip the analysis report at the end")
    p = sub.add_parser("resume", help="continue an interrupted study",
                       description="Continue an interrupted study: unfinished trials resume "
                                   "from their last checkpoint, errored ones are retried, "
                                   "finished ones are not re-run.")
    p.add_argument("experiment", help="the experiment folder (<storage>/<name>), a folder "
                                      "or a URI such as s3://bucket/prefix/<name>")
    _add_ray_flags(p)  # trials keep the resources and concurrency the study started with
    p.add_argument("--no-report", action="store_true", help="skip the analysis report")
    return parser


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage-endpoint", default=None, metavar="URL",
                   help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// storage; "
                        "default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS")
    p.add_argument("--address", default=None,
                   help="attach to an existing Ray cluster (HOST:PORT); RAY_ADDRESS is "
                        "honoured; default: start a local instance")
    p.add_argument("--dashboard", action="store_true",
                   help="start the Ray dashboard on 127.0.0.1:8265 and print its URL")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print Tune's own trial tables (default: one line per "
                        "finished trial with counts and ETA)")


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    _add_ray_flags(p)
    p.add_argument("--cpus-per-trial", type=_positive_float, default=1.0,
                   help="CPUs per trial; torch uses as many threads (default 1)")
    p.add_argument("--gpus-per-trial", type=_nonneg_float, default=0.0,
                   help="GPUs per trial, fractions allowed (default 0: CPU)")
    p.add_argument("--max-concurrent", type=_positive_int, default=None,
                   help="trials at once (default: as many as the CPUs allow)")
    p.add_argument("--autoscaler-wait", type=_nonneg_float, default=0.0, metavar="MINUTES",
                   help="on a cluster with an autoscaler: when no node can hold a trial, "
                        "ask the autoscaler for one and wait this long (default 0: fail "
                        "at once, naming the largest node)")


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _nonneg_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


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
                "samples": b.samples, "minutes": b.minutes, "max_trials": b.max_trials}
    if name.isdigit() and int(name) > 0:
        steps = int(name)
        base = preset.budgets[preset.default_budget]
        # As many evaluations as the preset's default budget has.
        return {"name": f"{steps} steps", "steps": steps,
                "eval_every": max(1, round(steps * base.eval_every / base.steps)),
                "seeds": None, "samples": None, "minutes": None, "max_trials": None}
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


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def param_space(preset: Preset, cfg: Config, seeds: int) -> dict:
    """Tune's param space of the preset's design (random and TPE draws from the box; the
    searcher itself is set in _tune_config)."""
    from ray import tune

    if preset.search == "grid":
        points = grid_points(preset, cfg)
        return wave_space(points, planner.first_wave(len(points), seeds).trials)
    space = {}
    for name, axis in preset.axis_specs().items():
        dist = tune.loguniform if axis.distribution == "loguniform" else tune.uniform
        space[name] = dist(axis.low, axis.high)
    # Random search crosses each draw with the seeds; TPE takes one seed per sample.
    space["seed"] = tune.grid_search(list(range(seeds))) if preset.search == "random" else 0
    return space


def wave_space(points: list[dict], trials: list[tuple[int, int]]) -> dict:
    """Tune's param space for a list of (cell index, seed): one grid value per trial."""
    from ray import tune

    space = {"job": tune.grid_search(list(range(len(trials)))),
             "cell": tune.sample_from(lambda config, t=trials: t[config["job"]][0]),
             "seed": tune.sample_from(lambda config, t=trials: t[config["job"]][1])}
    for name in points[0]:
        space[name] = tune.sample_from(
            lambda config, n=name, t=trials, p=points: p[t[config["job"]][0]][n])
    return space


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
def _tune_config(record: StudyRecord, max_concurrent: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    preset = Preset.model_validate(record.preset_config)
    if preset.scheduler == "asha":
        grace = max(1, math.ceil(preset.asha.grace_fraction * record.budget_steps))
        scheduler = ASHAScheduler(time_attr="step", max_t=record.budget_steps,
                                  grace_period=grace,
                                  reduction_factor=preset.asha.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    search_alg = None
    num_samples = 1
    if preset.search == "random":
        search_alg = BasicVariantGenerator(random_state=record.search_seed)
        num_samples = record.samples
    elif preset.search == "optuna":
        search_alg, num_samples = OptunaSearch(seed=record.search_seed), record.samples
    return tune.TuneConfig(metric=record.metric, mode=record.mode, search_alg=search_alg,
                           scheduler=scheduler, num_samples=num_samples,
                           max_concurrent_trials=max_concurrent, reuse_actors=True,
                           trial_dirname_creator=trial_dirname)


def _run_config(place: Place, rel: str, record: StudyRecord, n_trials: int, label: str = "",
                verbose: bool = False):
    """Tune's own status tables only with -v (verbose=1); otherwise the console gets one
    line per finished trial from OutcomeLogger. Ray 2.60's output engine prints a
    start-of-experiment box even at verbose=0; its legacy engine (RAY_AIR_NEW_OUTPUT=0, the
    switch Tune's own log names) prints nothing at verbose=0, so quiet runs use it.
    `rel` is the Tune experiment's folder inside the study folder ("" for the study's own)."""
    from ray import tune

    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    from study.progress import OutcomeLogger

    storage_path, name, filesystem = place.tune_location(rel)
    # On cloud storage Tune uploads its experiment state in the background: a driver killed
    # between a checkpoint's deletion and that upload leaves a state naming a deleted
    # checkpoint, and the trial cannot be restored (measured: 1 trial of 8 lost in 3 runs of
    # the SIGKILL test with num_to_keep=2). So every checkpoint is kept while the study
    # runs, and all but each trial's newest are deleted when it has finished (finish()).
    keep = None if place.storage.remote else 2
    return tune.RunConfig(
        name=name, storage_path=storage_path, storage_filesystem=filesystem,
        verbose=1 if verbose else 0,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
        failure_config=tune.FailureConfig(max_failures=2),
        callbacks=[OutcomeLogger(list(record.axes), n_trials, label)])


@dataclass
class Place:
    """A study folder: `name` under a storage root (analysis.storage), with its local
    folder (the folder itself, or the mirror of a remote one)."""

    storage: Storage
    name: str

    @property
    def local(self) -> Path:
        return self.storage.local_root / self.name

    @property
    def uri(self) -> str:
        return self.storage.uri(self.name)

    def save(self, record: StudyRecord) -> None:
        record.write(self.local)
        self.storage.push(self.name, STUDY_FILE)

    def pull(self) -> Path:
        return self.storage.pull(self.name)

    def tune_location(self, rel: str = "") -> tuple[str, str, object | None]:
        """(storage_path, name, filesystem) of the Tune experiment at `rel`."""
        parts = [self.name, *([rel] if rel else [])]
        if not self.storage.remote:
            folder = self.local / rel if rel else self.local
            return str(folder.parent), folder.name, None
        return (self.storage.path(*parts[:-1]), parts[-1],
                tune_filesystem(self.storage))

    def can_restore(self, rel: str = "") -> bool:
        from ray import tune

        storage_path, name, filesystem = self.tune_location(rel)
        return tune.Tuner.can_restore(f"{storage_path}/{name}", storage_filesystem=filesystem)

    def restore(self, rel: str, trainable, space):
        from ray import tune

        storage_path, name, filesystem = self.tune_location(rel)
        # Tune does not pickle the grid's sample_from functions: give the space again.
        return tune.Tuner.restore(f"{storage_path}/{name}", trainable=trainable,
                                  param_space=space, resume_unfinished=True,
                                  resume_errored=True, storage_filesystem=filesystem)


def _shared_dataset(dataset, cache_root: Path, shared: bool):
    """What trials receive: the Dataset itself (one copy in Ray's object store, read
    zero-copy) or, past OBJECT_STORE_LIMIT bytes (the full real data is ~14 GB), the folder
    of a packed .npy cache that every trial memory-maps, sharing the page cache. `shared`:
    every node sees `cache_root` (a shared --storage folder, or B2T_SHARED_CACHE)."""
    size = sum(split.features.nbytes for split in dataset.splits.values())
    if size <= OBJECT_STORE_LIMIT:
        return dataset
    import ray

    nodes = sum(1 for n in ray.nodes() if n.get("Alive")) if ray.is_initialized() else 1
    if nodes > 1 and not shared:
        raise UserError(f"{size / 2**30:.1f} GiB of features are shared by memory-mapping a "
                        f"packed cache under {cache_root}, which the other {nodes - 1} "
                        "node(s) cannot read (cloud storage keeps only a local mirror on "
                        "this machine); set B2T_SHARED_CACHE to a folder mounted at the same "
                        "path on every node (NFS)")
    folder = cache_root / dataset.fingerprint()
    if not (folder / "dataset.json").is_file():
        print(f"packing {size / 2**30:.1f} GiB of features into {folder} for memory-mapped "
              "sharing", file=sys.stderr)
        dataset.save_cache(folder)
    return str(folder)


def _data_cache(storage: Storage) -> tuple[Path, bool]:
    """Where large data is packed for memory-mapping, and whether every node sees it."""
    if os.environ.get("B2T_SHARED_CACHE"):
        return Path(os.environ["B2T_SHARED_CACHE"]).expanduser().resolve(), True
    return storage.local_root / ".datacache", not storage.remote


def _make_trainable(record: StudyRecord, dataset, storage: Storage):
    from ray import tune

    from trainable.tune_adapter import tune_trainable

    fn = tune.with_parameters(tune_trainable, base_config=record.train_config,
                              dataset=_shared_dataset(dataset, *_data_cache(storage)),
                              axes=record.axis_keys, checkpoint_every=CHECKPOINT_EVERY)
    return tune.with_resources(fn, _resources(record.resources["cpus_per_trial"],
                                              record.resources["gpus_per_trial"]))


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


def _load_data(data_arg, synthetic_set, cfg: Config, fingerprint: str | None = None,
               synthetic_spec=None):
    """Read and validate the data; with `fingerprint` (resume), it must be unchanged."""
    from trainable.data import load_dataset
    from trainable.source import resolve_data_root

    root, desc = resolve_data_root(data_arg, synthetic_spec=synthetic_spec,
                                   synthetic_overrides=synthetic_set)
    start = time.perf_counter()
    dataset = load_dataset(root, cfg)
    if fingerprint is not None and dataset.fingerprint() != fingerprint:
        raise UserError(f"{root}: data changed since the study started (fingerprint "
                        f"{dataset.fingerprint()} != {fingerprint}); restore the data or "
                        "start a new study")
    print(f"{desc}: {dataset.report.summary()} (read and validated in "
          f"{time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return root, dataset


def synthetic_generator(root: Path) -> str:
    """'v1', 'v2', ...: the generator that wrote a synthetic dataset (its spec file)."""
    meta = yaml.safe_load((Path(root) / SPEC_FILE_SYNTHETIC).read_text()) or {}
    return f"v{meta.get('generator_version', 1)}"


def _claims_file(record: StudyRecord) -> claims_mod.ClaimsFile | None:
    """The registered claims plus a claim-shaped primary hypothesis: what the planner
    serves. A claims file changed since registration stops the study."""
    claims = None
    if record.claims is not None:
        claims = claims_mod.load_registered(record.claims.path, record.claims.sha256)
        if claims.sha256 != record.claims.sha256:
            raise UserError(f"{record.claims.path}: the claims changed since the study "
                            "registered them (content hash differs); restore the file, or "
                            "start a new study to register the new rules")
    return claims_mod.with_primary(claims, record.primary_hypothesis)


def launch(args, preset: Preset | None = None, rung: str | None = None) -> int:
    """Start a study from the command line's flags (a ladder preset runs one study per
    rung, study/ladder.py); `preset` and `rung` are given by the ladder for each rung."""
    from study.cluster import check_resources, ray_session, resolve_address

    if preset is None:
        preset = load_preset(args.preset or args.command)
        if preset.rungs is not None:
            from study import ladder

            return ladder.launch(args, preset)
    budget = resolve_budget(preset, args.budget)
    seeds = args.seeds or budget["seeds"] or preset.seeds
    samples = args.samples or budget["samples"] or preset.samples
    if preset.search == "grid" and args.search_seed:
        raise UserError(f"--search-seed: preset {preset.name!r} is a grid, it draws no "
                        "configurations; drop the flag (--seeds sets the replicates)")
    if preset.search == "optuna" and seeds != 1:
        raise UserError("optuna studies take one seed per sample (--seeds 1): TPE cannot "
                        "tell seed noise from an axis effect within one trial")
    adaptive = preset.adaptive is not None and not args.no_adaptive
    if not adaptive and (args.minutes or args.max_trials):
        flag = "--minutes" if args.minutes else "--max-trials"
        raise UserError(f"{flag}: only adaptive studies add waves; preset {preset.name!r} "
                        + ("runs its fixed design (--no-adaptive)" if preset.adaptive else
                           "has no 'adaptive' section") + "; drop the flag")
    cfg_path = Path(args.train_config) if args.train_config else CONFIG_DIR / preset.train_config
    tree, official = read_config_tree(cfg_path)
    overrides = budget_overrides(budget, tree, preset.schedule) + list(args.overrides)
    threads = max(1, int(args.cpus_per_trial))
    overrides.append(f"train.num_threads={threads}")
    if args.gpus_per_trial > 0:
        overrides.append("train.device=cuda")
    cfg = apply_day_lr(preset, load_config(cfg_path, overrides))
    check_axes_exist(preset, cfg)
    n_cells = validate_cells(preset, cfg, seeds)
    claims_path = claims_mod.resolve_claims_path(preset.claims)
    claims = claims_mod.load_claims(claims_path) if claims_path is not None else None
    storage = resolve_storage(args.storage, args.storage_endpoint)
    storage.check()  # a store that does not answer fails now, in one line
    name = args.name or f"{preset.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    place = Place(storage, name)
    if storage.exists(name):
        raise UserError(f"{place.uri}: experiment folder already exists; continue it with "
                        f"'python -m study.run resume {place.uri}' or choose another --name")
    exp_dir = place.local
    if storage.remote and exp_dir.exists():
        shutil.rmtree(exp_dir)  # a stale mirror of a study no longer in the store
    address = resolve_address(args.address)  # fails fast, before the data is read
    # An official rnn_args.yaml names its data folder; --data overrides it.
    data = args.data or (official_data_dir(cfg_path) if official is not None else None)
    if data is not None and (args.synthetic_spec or args.synthetic_set):
        flag = "--synthetic-spec" if args.synthetic_spec else "--synthetic-set"
        raise UserError(f"{flag}: synthetic data is generated only without --data (or an "
                        "official config naming its data folder); drop one of them")
    spec = None if data is not None else args.synthetic_spec or (
        CONFIG_DIR / preset.synthetic_spec if preset.synthetic_spec else None)
    root, dataset = _load_data(data, args.synthetic_set, cfg, synthetic_spec=spec)
    points = grid_points(preset, cfg) if preset.search == "grid" else []
    controls = control_cells(preset, cfg, points) if preset.controls is not None else None
    record = StudyRecord(
        name=name, preset=preset.name, kind=preset.kind, search=preset.search,
        scheduler=preset.scheduler, metric=preset.metric, mode=preset.mode,
        axes={n: a.model_dump(mode="json", exclude_none=True)
              | {"key": preset.axis_keys()[n]} for n, a in preset.axis_specs().items()},
        blocks=design_blocks(preset, cfg), points=points, seeds=list(range(seeds)),
        samples=samples if preset.search != "grid" else None,
        search_seed=args.search_seed,
        n_trials=n_cells or samples * (seeds if preset.search == "random" else 1),
        budget=budget["name"], budget_steps=cfg.train.num_steps,
        eval_every=cfg.train.eval_every,
        primary_hypothesis=preset.primary_hypothesis.model_dump(mode="json")
        if preset.primary_hypothesis else None,
        claims=ClaimsRecord(path=str(claims_path), sha256=claims.sha256)
        if claims is not None else None,
        adaptive=AdaptiveRecord(
            minutes=args.minutes or budget["minutes"] or preset.adaptive.minutes,
            max_trials=args.max_trials or budget["max_trials"] or preset.adaptive.max_trials,
            wave_trials=preset.adaptive.wave_trials) if adaptive else None,
        train_config_file=str(cfg_path), train_config=cfg.model_dump(mode="json"),
        day_lr=preset.day_lr if "optim.lr_max" in preset.axis_keys().values() else None,
        controls=controls, boundary=preset.boundary, rung=rung,
        data={"path": str(root), "synthetic": args.data is None,
              "fingerprint": dataset.fingerprint(), "n_sessions": len(dataset.sessions),
              "n_train_trials": len(dataset.train), "n_val_trials": len(dataset.val),
              "dropped": dataset.report.total_dropped(),
              "generator": synthetic_generator(root) if data is None else None},
        resources={"cpus_per_trial": args.cpus_per_trial,
                   "gpus_per_trial": args.gpus_per_trial},
        versions=package_versions(), cli=" ".join(["python -m study.run", *sys.argv[1:]]),
        started=dt.datetime.now().isoformat(timespec="seconds"),
        preset_config=preset.model_dump(mode="json"))
    with ray_session(address, storage.local_root, args.dashboard):
        check_resources(args.cpus_per_trial, args.gpus_per_trial, args.autoscaler_wait)
        trainable = _make_trainable(record, dataset, storage)
        max_conc = args.max_concurrent or _default_concurrency(args.cpus_per_trial,
                                                               args.gpus_per_trial)
        record.resources["max_concurrent"] = max_conc
        exp_dir.mkdir(parents=True, exist_ok=True)
        if adaptive:
            record.adaptive.waves.append(_wave_record(
                1, planner.first_wave(len(points), seeds)))
            place.save(record)
            pending = run_waves(record, place, trainable, max_conc, restoring=False,
                                verbose=args.verbose)
        else:
            from ray import tune

            tuner = tune.Tuner(trainable, param_space=param_space(preset, cfg, seeds),
                               tune_config=_tune_config(record, max_conc),
                               run_config=_run_config(place, "", record, record.n_trials,
                                                      verbose=args.verbose))
            place.save(record)
            print(f"study {name}: {record.n_trials} trials of {cfg.train.num_steps} steps, "
                  f"{max_conc} at a time; folder {place.uri}", file=sys.stderr)
            pending = _pending(tuner.fit(), record)
    return finish(place, pending, args.no_report)


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


def _wave_record(index: int, plan: planner.Plan) -> WaveRecord:
    return WaveRecord(index=index, folder=f"wave-{index:02d}", reason=plan.reason,
                      trials=[WaveTrial(cell=c, seed=s) for c, s in plan.trials])


def _wave_trials(wave: WaveRecord) -> list[tuple[int, int]]:
    return [(t.cell, t.seed) for t in wave.trials]


def run_wave(record: StudyRecord, place: Place, wave: WaveRecord, trainable,
             max_concurrent: int, restoring: bool, verbose: bool = False) -> int:
    """Run (or continue) one wave as its own Tune experiment under the study folder;
    returns how many of its trials did not finish (an interrupt)."""
    from ray import tune

    space = wave_space(record.points, _wave_trials(wave))
    if restoring and place.can_restore(wave.folder):
        tuner = place.restore(wave.folder, trainable, space)
    else:
        tuner = tune.Tuner(trainable, param_space=space,
                           tune_config=_tune_config(record, max_concurrent),
                           run_config=_run_config(place, wave.folder, record,
                                                  len(wave.trials), f"wave {wave.index}: ",
                                                  verbose))
    return _pending(tuner.fit(), record, len(wave.trials))


def run_waves(record: StudyRecord, place: Place, trainable, max_concurrent: int,
              restoring: bool, verbose: bool = False) -> int:
    """Run waves until the planner (claims) or the refinement (a boundary) stops; returns
    the trials left unfinished (an interrupt)."""
    from analysis.boundary import boundary_block
    from analysis.load import load_experiment

    adaptive = record.adaptive
    claims = _claims_file(record)
    while True:
        wave = adaptive.waves[-1]
        if wave.minutes is None:
            spent = adaptive.minutes_spent
            print(f"wave {wave.index}: {len(wave.trials)} trials ({wave.reason}); "
                  f"{spent:.1f}" + (f" of {adaptive.minutes:g}" if adaptive.minutes else "")
                  + " training minutes used so far", file=sys.stderr, flush=True)
            start = time.perf_counter()
            pending = run_wave(record, place, wave, trainable, max_concurrent, restoring,
                               verbose)
            if pending:
                return pending
            wave.minutes = (time.perf_counter() - start) / 60
            place.save(record)
        restoring = False
        if record.boundary is None and claims is None:
            adaptive.stopped = "no claims to decide: the design alone was run"
            place.save(record)
            return 0
        experiment = load_experiment(place.pull())
        capacity = _capacity(record, experiment.trials, max_concurrent)
        if record.boundary is not None:
            # The new points join the design before the wave that runs them is recorded.
            plan, record.points = refine.next_wave(
                record.boundary, experiment.trials,
                boundary_block(experiment.blocks, record.boundary), record.points,
                _done(adaptive), capacity)
        else:
            verdicts, plan = planner.after_wave(
                claims, experiment.trials, experiment.curves, record.points,
                _done(adaptive), capacity)
            wave.verdicts = dict(zip(verdicts["id"], verdicts["verdict"]))
            wave.seeds = {k: int(v) for k, v in zip(verdicts["id"], verdicts["n"])}
            place.save(record)
            _print_verdicts(wave.index, verdicts, study_scope(record).tag)
        if not plan.trials:
            adaptive.stopped = plan.reason
            place.save(record)
            print(f"adaptive waves stopped after wave {wave.index}: {plan.reason}",
                  file=sys.stderr, flush=True)
            return 0
        adaptive.waves.append(_wave_record(wave.index + 1, plan))
        place.save(record)


def _done(adaptive: AdaptiveRecord) -> set[tuple[int, int]]:
    return {t for wave in adaptive.waves for t in _wave_trials(wave)}


def _capacity(record: StudyRecord, trials, max_concurrent: int) -> int:
    adaptive = record.adaptive
    times = trials["time_total_s"].dropna() if "time_total_s" in trials else []
    # The slower tail of trial times, so a wave planned to fit does fit.
    trial_minutes = float(np.quantile(times, 0.9)) / 60 if len(times) else math.inf
    return planner.capacity(
        adaptive.minutes - adaptive.minutes_spent if adaptive.minutes else None,
        adaptive.max_trials - adaptive.n_trials if adaptive.max_trials else None,
        trial_minutes, max_concurrent, WAVE_OVERHEAD_MINUTES, adaptive.wave_trials)


def _print_verdicts(index: int, verdicts, world: str) -> None:
    """The verdicts after a wave, each line with the world it is about."""
    lines = [f"after wave {index}:"]
    for _, row in verdicts.iterrows():
        more = ("" if row["verdict"] != "inconclusive" else
                f", ~{row['to_decide']:.0f} more seed(s) at this trend"
                if np.isfinite(row["to_decide"]) else ", no trend yet")
        lines.append(f"  {row['id']}: {claims_mod.VERDICT_WORDS[row['verdict']]} with "
                     f"{row['n']} seed(s)"
                     f"{(': ' + row['effect']) if row['effect'] else ''}{more} [{world}]")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _pending(results, record: StudyRecord, planned: int | None = None) -> int:
    """Trials of a Tune run that neither completed nor errored (the study was interrupted).

    Read from the public ResultGrid: without early stopping a trial is complete only with
    its final (`completed`) report; with a scheduler, any TERMINATED trial is."""
    planned = record.n_trials if planned is None else planned
    if record.scheduler != "fifo":
        return max(planned - results.num_terminated - results.num_errors, 0)
    completed = sum(1 for r in results if r.error is None
                    and (r.metrics or {}).get("completed"))
    return max(planned - completed - results.num_errors, 0)


def resume(args) -> int:
    from study.cluster import ray_session, resolve_address

    storage, name = split_study_uri(args.experiment, args.storage_endpoint)
    storage.check()
    place = Place(storage, name)
    exp_dir = place.pull()
    if (exp_dir / LADDER_FILE).is_file():
        from study import ladder

        return ladder.resume(args, place)
    record = read_record(exp_dir)
    cfg = build_config(record.train_config, source=str(exp_dir / STUDY_FILE))
    adaptive = record.adaptive is not None
    if not adaptive and not place.can_restore():
        raise UserError(f"{place.uri}: Tune saved no experiment state there (the study "
                        "stopped before it began); delete the folder and start the study "
                        "again")
    address = resolve_address(args.address)
    _, dataset = _load_data(record.data.path, [], cfg, record.data.fingerprint)
    with ray_session(address, storage.local_root, args.dashboard):
        trainable = _make_trainable(record, dataset, storage)
        max_conc = int(record.resources.get("max_concurrent") or _default_concurrency(
            record.resources["cpus_per_trial"], record.resources["gpus_per_trial"]))
        print(f"resuming {place.uri}", file=sys.stderr)
        if adaptive:
            pending = run_waves(record, place, trainable, max_conc, restoring=True,
                                verbose=args.verbose)
        else:
            preset = Preset.model_validate(record.preset_config)
            space = param_space(preset, cfg, len(record.seeds))
            pending = _pending(place.restore("", trainable, space).fit(), record)
    return finish(place, pending, args.no_report)


def finish(place: Place, pending: int, no_report: bool) -> int:
    from study.progress import outcome_table

    exp_dir = place.pull()
    if not pending and place.storage.remote:
        prune_checkpoints(place.storage, place.name)
    print(outcome_table(exp_dir))
    if pending:
        print(f"{pending} trial(s) did not finish; continue with: python -m study.run resume "
              f"{place.uri}", file=sys.stderr)
    if not no_report:
        # The report prints its summary.txt; a failed report loses nothing already run.
        print(f"writing the report of {place.name} (tables, tests, figures)...",
              file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, "-m", "analysis.report", place.uri,
                               *report_flags(place.storage)], check=False)
        if proc.returncode != 0:
            print(f"the report failed (exit {proc.returncode}); the results are intact in "
                  f"{place.uri}; retry with: python -m analysis.report {place.uri}",
                  file=sys.stderr)
            return 130 if pending else 1  # an unfinished study stays resumable
    return 130 if pending else 0


def report_flags(storage: Storage) -> list[str]:
    """The report subprocess must reach the same store (an explicit endpoint)."""
    return ["--storage-endpoint", storage.endpoint] if storage.remote and storage.endpoint \
        else []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # a ladder records them, so resume can start the rungs not yet begun
    return run_cli(lambda: resume(args) if args.command == "resume" else launch(args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    sys.exit(main())
