"""The study console: one line per finished trial with running counts and an ETA."""

from types import SimpleNamespace

import pytest

from study.progress import OutcomeLogger
from analysis.storage import resolve_storage
from study.cli import build_parser
from study.place import Place
from study.runner import _run_config


def _trial(outcome, seed, completed=1, status="RUNNING"):
    return SimpleNamespace(
        config={"eps": 1e-8, "lr_max": 0.005, "seed": seed}, trial_id=f"t{seed}", status=status,
        path="/x", last_result={"outcome": outcome, "completed": completed, "step": 400,
                                "budget_steps": 400, "best_val_per": 0.25})


def test_one_line_per_trial_with_running_counts_and_eta(capsys, monkeypatch):
    clock = iter([0.0, 60.0, 120.0, 180.0])
    monkeypatch.setattr("study.progress.time.monotonic", lambda: next(clock))
    log = OutcomeLogger(["eps", "lr_max"], n_trials=4, label="wave 2: ")
    log.on_trial_start(0, [], _trial("stable", 1))
    log.on_trial_complete(0, [], _trial("stable", 1))
    log.on_trial_complete(0, [], _trial("blank_collapse", 2, completed=0))
    log.on_trial_error(0, [], _trial("stable", 3))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0] == ("wave 2: [1/4] eps=1e-08 lr_max=0.005 seed=1: stable, best PER 0.250, "
                        "400/400 steps | stable 1 | 1.0 min, ETA 3.0 min")
    assert "blank_collapse (stopped early)" in lines[1]
    assert lines[1].endswith("| blank_collapse 1, stable 1 | 2.0 min, ETA 2.0 min")
    assert "ERRORED" in lines[2] and lines[2].endswith(
        "| blank_collapse 1, errored 1, stable 1 | 3.0 min, ETA 1.0 min")


def test_a_resumed_study_counts_what_finished_before_but_times_only_this_run(capsys,
                                                                            monkeypatch):
    clock = iter([0.0, 60.0])
    monkeypatch.setattr("study.progress.time.monotonic", lambda: next(clock))
    log = OutcomeLogger(["eps", "lr_max"], n_trials=5)
    restored = [_trial("stable", 1, status="TERMINATED"),
                _trial("blank_collapse", 2, status="TERMINATED"),
                _trial("stable", 3, status="ERROR"), _trial("stable", 4), _trial("stable", 5)]
    log.on_trial_start(0, restored, restored[3])
    log.on_trial_complete(0, restored, _trial("stable", 4))
    line = capsys.readouterr().err.strip()
    # 3 of 5 were over before the resume; this run took 1 min for 1 trial: 1 left, 1 min
    assert line.startswith("[4/5] eps=1e-08 lr_max=0.005 seed=4: stable")
    assert line.endswith("| blank_collapse 1, errored 1, stable 2 | 1.0 min, ETA 1.0 min")


@pytest.mark.parametrize("argv, verbose", [([], 0), (["-v"], 1), (["--verbose"], 1)])
def test_tune_tables_only_with_verbose(argv, verbose, tmp_path):
    args = build_parser().parse_args(["grid", *argv])
    record = SimpleNamespace(axes={"eps": "optim.eps"}, name="s", loggers={})
    place = Place(resolve_storage(str(tmp_path)), "s")
    config = _run_config(place, "", record, 4, verbose=args.verbose)
    assert config.verbose == verbose
    assert (config.storage_path, config.name) == (str(tmp_path), "s")
    assert config.checkpoint_config.num_to_keep == 2  # local storage: Tune rotates them


def test_long_trials_print_a_line_per_evaluation_with_an_eta(capsys):
    from types import SimpleNamespace

    from study.progress import OutcomeLogger

    logger = OutcomeLogger(["eps"], n_trials=1)
    trial = SimpleNamespace(config={"eps": 0.1, "seed": 0})
    logger.on_trial_result(0, [trial], trial, {"budget_steps": 120_000, "step": 2_001,
                                               "val_per": 0.25, "time_total_s": 200.0})
    line = capsys.readouterr().err
    assert "eps=0.1 seed=0: step 2,001/120,000, val PER 0.250" in line
    assert "ETA 196.6 min" in line  # 0.1 s/step x 117,999 steps left
    logger.on_trial_result(0, [trial], trial, {"budget_steps": 400, "step": 201,
                                               "val_per": 0.3, "time_total_s": 20.0})
    assert capsys.readouterr().err == ""  # a proxy trial: one line when it ends, as before
