"""One study from start to end: `launch` checks the request, reads the data, writes the
study record and runs the design (or its adaptive waves); `resume` continues an
interrupted one; `finish` prints the outcomes and writes the report. A ladder
(study/ladder.py) runs one such study per rung.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import yaml

from analysis.record import read_record
from analysis.storage import Storage, resolve_storage
from study import plan as plan_mod
from study import waves
from study.cluster import check_resources, default_concurrency, ray_session, resolve_address
from study.datashare import DataCache, data_cache, load_data, trial_data
from study.packing import check_packing
from study.place import Place
from study.presets import Preset
from study.request import ResumeRequest, StudyRequest
from study.runner import Runner, can_restore, make_trainable, param_space
from study.storage import prune_checkpoints
from trainable.config import Config
from trainable.errors import UserError
from trainable.synthetic import SPEC_FILE as SPEC_FILE_SYNTHETIC

PACKAGES = ("b2t-stability", "ray", "torch", "optuna", "numpy", "pandas", "h5py", "scipy",
            "statsmodels", "scikit-learn")


def launch(request: StudyRequest, preset: Preset, rung: str | None = None) -> int:
    """Start the study `request` asks for, with `preset` (a ladder gives each rung's own
    preset and name)."""
    plan = plan_mod.plan_study(request, preset)
    most = request.max_trials or plan.budget["max_trials"] or (
        preset.adaptive.max_trials if plan.adaptive else None)
    if plan_mod.is_official_size(plan.cfg) and plan.n_cells:
        print(plan_mod.projection(plan.cfg, plan.n_cells, most, plan.n_cells // plan.seeds),
              file=sys.stderr)
    storage = resolve_storage(request.storage, request.ray.storage_endpoint)
    storage.check()  # a store that does not answer fails now, in one line
    name = request.name or f"{preset.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    place = Place(storage, name)
    if storage.exists(name):
        raise UserError(f"{place.uri}: experiment folder already exists; continue it with "
                        f"'python -m study.run resume {place.uri}' or choose another --name")
    exp_dir = place.local
    if storage.remote and exp_dir.exists():
        shutil.rmtree(exp_dir)  # a stale mirror of a study no longer in the store
    address = resolve_address(request.ray.address)  # fails fast, before the data is read
    data, spec = plan_mod.data_source(request, plan)
    cache = data_cache(storage)
    root, dataset = _load_data(data, list(request.synthetic_set), plan.cfg, cache,
                               synthetic_spec=spec)
    record = plan_mod.study_record(
        plan, request, name, rung,
        data={"path": str(root), "synthetic": request.data is None,
              "fingerprint": dataset.fingerprint(), "n_sessions": len(dataset.sessions),
              "n_train_trials": len(dataset.train), "n_val_trials": len(dataset.val),
              "dropped": dataset.report.total_dropped(),
              "generator": synthetic_generator(root) if data is None else None},
        versions=package_versions(), cli=" ".join(["python -m study.run", *sys.argv[1:]]),
        started=dt.datetime.now().isoformat(timespec="seconds"))
    with ray_session(address, storage.local_root, request.ray.dashboard):
        check_resources(request.cpus_per_trial, request.gpus_per_trial,
                        request.autoscaler_wait)
        data = trial_data(dataset, cache, storage)
        measured = check_packing(plan.cfg, data, request.cpus_per_trial,
                                 request.gpus_per_trial)
        if measured and plan_mod.is_official_size(plan.cfg) and plan.n_cells:
            print(plan_mod.projection(plan.cfg, plan.n_cells, most, plan.n_cells // plan.seeds,
                                      measured), file=sys.stderr)
        trainable = make_trainable(record, data)
        max_conc = request.max_concurrent or default_concurrency(request.cpus_per_trial,
                                                                 request.gpus_per_trial)
        record.resources.max_concurrent = max_conc
        exp_dir.mkdir(parents=True, exist_ok=True)
        runner = Runner(record, place, trainable, max_conc, request.ray.verbose)
        if plan.adaptive:
            place.save(record)
            pending = waves.run_waves(runner, restoring=False)
        else:
            tuner = runner.tuner(param_space(preset, plan.cfg, plan.seeds))
            place.save(record)
            print(f"study {name}: {record.n_trials} trials of {plan.cfg.train.num_steps} "
                  f"steps, {max_conc} at a time; folder {place.uri}", file=sys.stderr)
            pending = runner.fit(tuner)
    return finish(place, pending, request.no_report)


def resume(request: ResumeRequest, place: Place) -> int:
    """Continue the study in `place` (pulled): unfinished trials resume from their last
    checkpoint, errored ones are retried, finished ones are not re-run."""
    exp_dir = place.local
    record = read_record(exp_dir)
    cfg = record.train_config
    adaptive = record.adaptive is not None
    if not adaptive and not can_restore(place):
        raise UserError(f"{place.uri}: Tune saved no experiment state there (the study "
                        "stopped before it began); delete the folder and start the study "
                        "again")
    address = resolve_address(request.ray.address)
    cache = data_cache(place.storage)
    _, dataset = _load_data(record.data.path, [], cfg, cache, record.data.fingerprint)
    with ray_session(address, place.storage.local_root, request.ray.dashboard):
        data = trial_data(dataset, cache, place.storage)
        check_packing(cfg, data, record.resources.cpus_per_trial,
                      record.resources.gpus_per_trial)
        trainable = make_trainable(record, data)
        max_conc = record.resources.max_concurrent or default_concurrency(
            record.resources.cpus_per_trial, record.resources.gpus_per_trial)
        runner = Runner(record, place, trainable, max_conc, request.ray.verbose)
        print(f"resuming {place.uri}", file=sys.stderr)
        if adaptive:
            pending = waves.run_waves(runner, restoring=True)
        else:
            preset = Preset.model_validate(record.preset_config)
            space = param_space(preset, cfg, len(record.seeds))
            pending = runner.fit(runner.tuner(space, restore=True))
    return finish(place, pending, request.no_report)


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


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = sys.version.split()[0]
    return versions


def _load_data(data_arg, synthetic_set, cfg: Config, cache: DataCache,
               fingerprint: str | None = None, synthetic_spec=None):
    """Read and validate the data (or memory-map its packed cache, study.datashare); with
    `fingerprint` (resume), it must be unchanged."""
    from trainable.source import resolve_data_root

    root, desc = resolve_data_root(data_arg, synthetic_spec=synthetic_spec,
                                   synthetic_overrides=synthetic_set)
    start = time.perf_counter()
    dataset, how = load_data(root, cfg, cache)
    if fingerprint is not None and dataset.fingerprint() != fingerprint:
        raise UserError(f"{root}: data changed since the study started (fingerprint "
                        f"{dataset.fingerprint()} != {fingerprint}); restore the data or "
                        "start a new study")
    print(f"{desc}: {dataset.report.summary()} ({how} in "
          f"{time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return root, dataset


def synthetic_generator(root: Path) -> str:
    """'v1', 'v2', ...: the generator that wrote a synthetic dataset (its spec file)."""
    meta = yaml.safe_load((Path(root) / SPEC_FILE_SYNTHETIC).read_text()) or {}
    return f"v{meta.get('generator_version', 1)}"
