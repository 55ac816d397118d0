"""Scale ladder: the same cells and claims run at several model / data / budget sizes.

A ladder preset (configs/studies/ladder.yaml) lists `rungs`; each rung is a study of its
own, in `<storage>/<name>/rung-N-<rung>/`, with the preset's blocks, its own training
config overrides (model size, feature count), its own synthetic data (generated once per
feature count and cached) and its own steps and seeds. `<storage>/<name>/ladder.yaml`
records the rungs and their state; `python -m study.run resume <ladder folder>` continues
an interrupted rung and starts the ones not begun; `python -m analysis.report <ladder
folder>` writes the transfer table (analysis/ladder.py). The request the ladder was started
with is kept beside it (request.yaml, study/request.py): each rung runs a copy of it with
its own folder and overrides, and resume reads it back.

A rung marked `gpu: true` (the official size) runs only with --gpus-per-trial > 0 and is
skipped with one line otherwise.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time

import yaml

from analysis.record import LADDER_FILE, STUDY_FILE, LadderRecord, RungRecord, read_ladder
from analysis.storage import resolve_storage
from study import single
from study.place import Place
from study.presets import Preset, Rung
from study.request import REQUEST_FILE, ResumeRequest, StudyRequest
from trainable.errors import UserError

PRESET_FILE = "preset.yaml"  # the ladder preset as launched (resume starts rungs from it)


def rung_preset(preset: Preset, rung: Rung) -> Preset:
    """The preset one rung runs: the ladder's design with the rung's budgets and config."""
    return preset.model_copy(update={
        "rungs": None, "budgets": rung.budgets,
        "train_config": rung.train_config or preset.train_config,
        "synthetic_spec": rung.synthetic_spec or preset.synthetic_spec,
        "schedule": rung.schedule or preset.schedule})


def _settings(values: dict) -> list[str]:
    return [f"{key}={value}" for key, value in values.items()]


def rung_request(request: StudyRequest, ladder_uri: str, rung: Rung, folder: str
                 ) -> StudyRequest:
    """The request of one rung's study: the ladder's, with the rung's folder and overrides
    (the command line's --set / --synthetic-set come last, so they win)."""
    return request.model_copy(update={
        "storage": ladder_uri, "name": folder,
        "overrides": (*_settings(rung.set), *request.overrides),
        "synthetic_set": (*_settings(rung.synthetic), *request.synthetic_set)})


def launch(request: StudyRequest, preset: Preset) -> int:
    budget = request.budget or preset.default_budget
    if budget not in preset.budgets:
        raise UserError(f"--budget {budget}: a ladder's rungs have their own steps; choose "
                        f"one of {', '.join(preset.budgets)}")
    if request.data is not None and any(r.synthetic for r in preset.rungs):
        raise UserError("--data: the ladder's rungs generate synthetic data at their own "
                        "feature counts; give a ladder preset without `synthetic:` rungs "
                        "to run on recorded data")
    storage = resolve_storage(request.storage, request.ray.storage_endpoint)
    storage.check()
    name = request.name or f"{preset.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    place = Place(storage, name)
    if storage.exists(name):
        raise UserError(f"{place.uri}: experiment folder already exists; continue it with "
                        f"'python -m study.run resume {place.uri}' or choose another --name")
    gpu = request.gpus_per_trial > 0
    rungs = []
    for index, rung in enumerate(preset.rungs, start=1):
        skipped = rung.gpu and not gpu
        rungs.append(RungRecord(
            name=rung.name, folder=f"rung-{index}-{rung.name}", description=rung.description,
            status="skipped" if skipped else "pending",
            note="needs a GPU: run the ladder with --gpus-per-trial 1 on a machine with one"
            if skipped else ""))
    # argv stays empty: resume reads the request file (REQUEST_FILE), not a command line.
    record = LadderRecord(name=name, preset=preset.name, budget=budget,
                          started=dt.datetime.now().isoformat(timespec="seconds"),
                          argv=[], rungs=rungs)
    if storage.remote and place.local.exists():
        shutil.rmtree(place.local)  # a stale mirror of a ladder no longer in the store
    place.local.mkdir(parents=True, exist_ok=True)
    (place.local / PRESET_FILE).write_text(_preset_yaml(preset))
    # Resume starts the missing rungs under the same folder, whatever --name said.
    request = request.model_copy(update={"name": name})
    request.write(place.local)
    _save(record, place)
    storage.push(name, PRESET_FILE, REQUEST_FILE)
    return run_rungs(record, place, request, preset)


def _save(record: LadderRecord, place) -> None:
    record.write(place.local)
    place.storage.push(place.name, LADDER_FILE)


def _preset_yaml(preset: Preset) -> str:
    return yaml.safe_dump(preset.model_dump(mode="json", exclude_none=True), sort_keys=False)


def run_rungs(record: LadderRecord, place: Place, request: StudyRequest,
              preset: Preset) -> int:
    """Run every rung not done yet, in order; then the ladder's report. Returns 130 when a
    rung was interrupted (resume continues it), 0 otherwise."""
    by_name = {r.name: r for r in preset.rungs}
    for entry in record.rungs:
        if entry.status == "skipped":
            print(f"rung {entry.name}: skipped ({entry.note})", file=sys.stderr, flush=True)
            continue
        if entry.status == "done":
            continue
        rung = by_name[entry.name]
        print(f"rung {entry.name} ({rung.description or 'no description'}): "
              f"{place.storage.uri(place.name, entry.folder)}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        started = place.storage.exists(f"{place.name}/{entry.folder}") \
            if place.storage.remote else (place.local / entry.folder / STUDY_FILE).is_file()
        if started:
            again = ResumeRequest(experiment=place.storage.uri(place.name, entry.folder),
                                  no_report=request.no_report, ray=request.ray)
            code = single.resume(again, Place.open(again.experiment,
                                                   request.ray.storage_endpoint))
        else:
            code = single.launch(rung_request(request, place.uri, rung, entry.folder),
                                 rung_preset(preset, rung), rung=rung.name)
        entry.minutes = (entry.minutes or 0.0) + (time.perf_counter() - start) / 60
        if code == 130:
            entry.status = "interrupted"
            _save(record, place)
            print(f"the ladder stopped in rung {entry.name}; continue with: python -m "
                  f"study.run resume {place.uri}", file=sys.stderr)
            return 130
        entry.status = "done"
        entry.note = "" if code == 0 else f"its report failed (exit {code}); runs intact"
        _save(record, place)
    if request.no_report:
        return 0
    print(f"writing the transfer report of {place.name}...", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "analysis.report", place.uri,
                           *single.report_flags(place.storage)], check=False)
    if proc.returncode != 0:
        print(f"the transfer report failed (exit {proc.returncode}); the rungs are intact; "
              f"retry with: python -m analysis.report {place.uri}", file=sys.stderr)
        return 1
    return 0


def resume(options: ResumeRequest, place: Place, request: StudyRequest) -> int:
    """Continue a ladder started with `request`: the interrupted rung resumes, rungs not
    begun start. Ray, the store's endpoint and the report follow the resume command."""
    record = read_ladder(place.local)
    ray = options.ray.model_copy(update={
        "storage_endpoint": options.ray.storage_endpoint or place.storage.endpoint})
    request = request.model_copy(update={"storage": place.storage.text, "name": place.name,
                                         "ray": ray, "no_report": options.no_report})
    preset = Preset.model_validate(yaml.safe_load((place.local / PRESET_FILE).read_text()))
    return run_rungs(record, place, request, preset)
