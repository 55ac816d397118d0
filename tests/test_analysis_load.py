"""Reading an experiment folder: statuses, denominators, restored trials, bad folders."""

from __future__ import annotations

import json
import shutil

import pytest
from support.experiments import GRID, Planted, write_fake_experiment

from analysis import stats
from analysis.load import load_experiment
from trainable.errors import UserError

N_SEEDS = 3
N_GRID = 16 * N_SEEDS


def tiny_eps_diverges(cell, rng):
    """Deterministic: every eps=1e-8 run diverges, every other run is stable."""
    if cell["eps"] < 1e-4:
        return Planted("diverged", 0.2)
    return Planted("stable", 0.2)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    path = write_fake_experiment(tmp_path_factory.mktemp("load"), model=tiny_eps_diverges,
                                 n_seeds=N_SEEDS, n_errored=2, n_stopped_early=1)
    return load_experiment(path)


def test_statuses_are_derived_from_reports(experiment):
    counts = experiment.trials["status"].value_counts()
    assert counts["diverged"] == N_GRID // 2
    assert counts["finished"] == N_GRID // 2
    assert counts["errored"] == 2
    assert counts["stopped_early"] == 1
    assert len(experiment.trials) == N_GRID + 3
    errored = experiment.trials[experiment.trials["status"] == "errored"]
    assert (errored["error"].str.contains("CUDA out of memory")).all()
    assert sorted(errored["n_reports"]) == [0, 4]  # one crashed before its first report


def test_steps_reached_versus_budget(experiment):
    trials = experiment.trials.set_index("status")
    assert (trials.loc["finished", "steps_reached"] == 1000).all()
    assert (trials.loc["diverged", "steps_reached"] < 1000).all()
    assert trials.loc["stopped_early", "steps_reached"] == 301  # last eval before 40%


def test_denominators_per_cell(experiment):
    frame, factors = stats.factorize(experiment.trials, experiment.axes)
    cells = stats.cell_summary(frame, [f.column for f in factors])
    official = cells[(cells["eps__level"] == "0.1") & (cells["lr_max__level"] == "0.005")
                     & (cells["white_noise_std__level"] == "1")
                     & (cells["constant_offset_std__level"] == "0.2")].iloc[0]
    assert official["n_total"] == N_SEEDS + 3
    assert (official["n_finished"], official["n_errored"], official["n_stopped_early"]) == (
        N_SEEDS, 2, 1)
    assert official["n"] == N_SEEDS  # full-budget runs only
    tiny = cells[cells["eps__level"] == "1e-08"]
    assert (tiny["n_diverged"] == N_SEEDS).all() and (tiny["rate_diverged"] == 1.0).all()
    assert cells["n_total"].sum() == len(experiment.trials)


def test_restored_trial_keeps_last_row_per_step(experiment):
    first = experiment.trials.iloc[0]
    curve = experiment.curves[experiment.curves["trial_id"] == first["trial_id"]]
    assert curve["step"].is_unique and curve["step"].is_monotonic_increasing
    folder = next(experiment.path.glob(f"*{first['trial_id']}*"))
    raw = (folder / "result.json").read_text().splitlines()
    # The fixture's restored trial repeats two reports in result.json; the loader keeps one
    # row per step. Unless it diverged early, that is every evaluation of the 1000-step
    # budget at eval_every 100: steps 1, 101, ..., 901, 1000.
    if first["status"] == "finished":
        assert list(curve["step"]) == [1, *range(101, 1000, 100), 1000]
    assert first["n_reports"] == len(curve) and len(raw) == len(curve) + 2


def test_axes_come_from_params(experiment):
    trials = experiment.trials
    for axis, values in GRID.items():
        assert sorted(trials[axis].unique()) == sorted(values)
    assert experiment.axis_names == list(GRID)
    # Step-1 reports are ignored for the regime: Adam's second moment is still empty.
    assert trials["median_eps_dominance"].max() < 1.0


def test_truncated_result_line_is_skipped_and_noted(tmp_path):
    path = write_fake_experiment(tmp_path, n_seeds=1, n_errored=0, n_stopped_early=0)
    trial = next(d for d in sorted(path.iterdir()) if (d / "result.json").is_file())
    with open(trial / "result.json", "a") as fh:
        fh.write(json.dumps({"step": 5})[:6])
    experiment = load_experiment(path)
    assert any("unreadable line" in c for c in experiment.caveats)


def test_not_an_experiment_folder(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_experiment(tmp_path / "missing")
    with pytest.raises(UserError, match=r"no study\.yaml"):
        load_experiment(tmp_path)
    (tmp_path / "study.yaml").write_text("name: x\naxes: {eps: {key: optim.eps, "
                                         "values: [0.1]}}\n")
    # A damaged record names the missing key in one line.
    with pytest.raises(UserError, match=r"study\.yaml: preset: Field required") as err:
        load_experiment(tmp_path)
    assert "\n" not in str(err.value)
    path = write_fake_experiment(tmp_path, name="empty")
    for trial in path.glob("tune_trainable_*"):
        shutil.rmtree(trial)
    with pytest.raises(UserError, match="no trial folders"):
        load_experiment(path)


def test_each_days_per_at_the_last_evaluation_reaches_the_trials_table(tmp_path):
    """The per-day PER a run reports (trainable.tune_adapter.flat_report) becomes one
    final_val_per_day/<session> column per day, as the official trainer logs each day."""
    from analysis.load import _read_trial
    from trainable.tune_adapter import flat_report

    reports = [{"step": s, "val_per": per, "outcome": "stable", "completed": int(s == 20),
                "budget_steps": 20, "val_per_by_day": {"t15.a": per + 0.1, "t15.b": per - 0.1}}
               for s, per in ((1, 0.9), (20, 0.3))]
    folder = tmp_path / "trial_0"
    folder.mkdir()
    (folder / "params.json").write_text(json.dumps({"seed": 0}))
    (folder / "result.json").write_text("".join(
        json.dumps({**flat_report(r), "trial_id": "t0", "training_iteration": i}) + "\n"
        for i, r in enumerate(reports, start=1)))
    row, curves = _read_trial(folder, [], 20, [])
    assert row["final_val_per_day/t15.a"] == pytest.approx(0.4)
    assert row["final_val_per_day/t15.b"] == pytest.approx(0.2)
    assert list(curves["val_per_day/t15.a"]) == pytest.approx([1.0, 0.4])
