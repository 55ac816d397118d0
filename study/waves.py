"""Adaptive studies: waves of trials until the claims are decided or a boundary is found.

Each wave is its own Tune experiment (`wave-NN/` in the study folder). After a wave the
analysis reads the folder; the planner (claims, study/planner.py) or the refinement (a
boundary, study/refine.py) plans the next wave within what is left of the time and trial
budget, or says why no further wave is worth running.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from analysis import claims as claims_mod
from analysis.record import AdaptiveRecord, StudyRecord, WaveRecord
from analysis.scope import study_scope
from study import planner, refine
from study.plan import wave_record, wave_trials
from study.runner import Runner, can_restore, wave_space
from trainable.errors import UserError

# Ray Tune set-up and tear-down around each wave (new Tuner, trial actors), in minutes.
WAVE_OVERHEAD_MINUTES = 0.4


def run_wave(runner: Runner, wave: WaveRecord, restoring: bool) -> int:
    """Run (or continue) one wave as its own Tune experiment under the study folder;
    returns how many of its trials did not finish (an interrupt)."""
    space = wave_space(runner.record.points, wave_trials(wave))
    restore = restoring and can_restore(runner.place, wave.folder)
    tuner = runner.tuner(space, wave.folder, len(wave.trials), f"wave {wave.index}: ",
                         restore=restore)
    return runner.fit(tuner, len(wave.trials))


def run_waves(runner: Runner, restoring: bool) -> int:
    """Run waves until the planner (claims) or the refinement (a boundary) stops; returns
    the trials left unfinished (an interrupt)."""
    from analysis.boundary import boundary_block
    from analysis.load import load_experiment

    record, place = runner.record, runner.place
    adaptive = record.adaptive
    claims = claims_file(record)
    while True:
        wave = adaptive.waves[-1]
        if wave.minutes is None:
            spent = adaptive.minutes_spent
            print(f"wave {wave.index}: {len(wave.trials)} trials ({wave.reason}); "
                  f"{spent:.1f}" + (f" of {adaptive.minutes:g}" if adaptive.minutes else "")
                  + " training minutes used so far", file=sys.stderr, flush=True)
            start = time.perf_counter()
            pending = run_wave(runner, wave, restoring)
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
        capacity = _capacity(record, experiment.trials, runner.max_concurrent)
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
        adaptive.waves.append(wave_record(wave.index + 1, plan))
        place.save(record)


def claims_file(record: StudyRecord) -> claims_mod.ClaimsFile | None:
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


def _done(adaptive: AdaptiveRecord) -> set[tuple[int, int]]:
    return {t for wave in adaptive.waves for t in wave_trials(wave)}


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
