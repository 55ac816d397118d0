"""The one place that configures Ray Tune (Tuner, TuneConfig, RunConfig): the trainable
with its data and resources, the param spaces of a design and of a wave, the searcher and
scheduler, and the Tuner of each experiment, new or restored. The trainable itself lives
in trainable.tune_adapter and knows nothing of studies.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from analysis.record import StudyRecord
from study import planner
from study.place import Place
from study.presets import Preset, grid_points
from trainable.config import Config

CHECKPOINT_EVERY = 2  # evaluations between checkpoints (the last report always has one)


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
    # runs, and all but each trial's newest are deleted when it has finished
    # (study.storage.prune_checkpoints).
    keep = None if place.storage.remote else 2
    return tune.RunConfig(
        name=name, storage_path=storage_path, storage_filesystem=filesystem,
        verbose=1 if verbose else 0,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
        failure_config=tune.FailureConfig(max_failures=2),
        callbacks=[OutcomeLogger(list(record.axes), n_trials, label),
                   *logger_callbacks(record)])


def logger_callbacks(record: StudyRecord) -> list:
    """Tune's own W&B / MLflow callbacks, as the study was started with (--wandb,
    --mlflow): one run per trial, grouped under the study's name."""
    callbacks = []
    if record.loggers.get("wandb"):
        from ray.air.integrations.wandb import WandbLoggerCallback

        callbacks.append(WandbLoggerCallback(project=record.loggers["wandb"],
                                             group=record.name))
    if record.loggers.get("mlflow"):
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(tracking_uri=record.loggers["mlflow"],
                                              experiment_name=record.name))
    return callbacks


def can_restore(place: Place, rel: str = "") -> bool:
    """Whether Tune saved the state of the experiment at `rel` (it began)."""
    from ray import tune

    storage_path, name, filesystem = place.tune_location(rel)
    return tune.Tuner.can_restore(f"{storage_path}/{name}", storage_filesystem=filesystem)


@dataclass
class Runner:
    """Tune for one study: its trainable (data and resources bound), its folder, and the
    trials run at once. Each Tune experiment of the study (the design, or one wave) is a
    Tuner made by `tuner` and run by `fit`."""

    record: StudyRecord
    place: Place
    trainable: object
    max_concurrent: int
    verbose: bool = False

    def tuner(self, space: dict, rel: str = "", n_trials: int | None = None,
              label: str = "", restore: bool = False):
        """The Tuner of the experiment at `rel`: a new one, or (`restore`) the one Tune
        saved there, continuing its unfinished and errored trials."""
        from ray import tune

        if restore:
            storage_path, name, filesystem = self.place.tune_location(rel)
            # Tune does not pickle the grid's sample_from functions: give the space again.
            return tune.Tuner.restore(f"{storage_path}/{name}", trainable=self.trainable,
                                      param_space=space, resume_unfinished=True,
                                      resume_errored=True, storage_filesystem=filesystem)
        n_trials = self.record.n_trials if n_trials is None else n_trials
        return tune.Tuner(self.trainable, param_space=space,
                          tune_config=_tune_config(self.record, self.max_concurrent),
                          run_config=_run_config(self.place, rel, self.record, n_trials, label,
                                                 self.verbose))

    def fit(self, tuner, planned: int | None = None) -> int:
        """Run the Tuner; returns how many trials neither completed nor errored (the study
        was interrupted).

        Read from the public ResultGrid: without early stopping a trial is complete only
        with its final (`completed`) report; with a scheduler, any TERMINATED trial is."""
        results = tuner.fit()
        planned = self.record.n_trials if planned is None else planned
        if self.record.scheduler != "fifo":
            return max(planned - results.num_terminated - results.num_errors, 0)
        completed = sum(1 for r in results if r.error is None
                        and (r.metrics or {}).get("completed"))
        return max(planned - completed - results.num_errors, 0)


def make_trainable(record: StudyRecord, data):
    """Inside a Ray session: the trainable with the study's config, data (what
    study.datashare.trial_data gives) and resources."""
    from ray import tune

    from trainable.tune_adapter import tune_trainable

    fn = tune.with_parameters(tune_trainable,
                              base_config=record.train_config.model_dump(mode="json"),
                              dataset=data,
                              axes=record.axis_keys, levels=record.axis_levels,
                              checkpoint_every=CHECKPOINT_EVERY)
    return tune.with_resources(fn, _resources(record.resources.cpus_per_trial,
                                              record.resources.gpus_per_trial))


def _resources(cpus: float, gpus: float) -> dict:
    res = {"cpu": cpus}
    if gpus > 0:
        res["gpu"] = gpus
    return res
