"""Positive controls for the failure detectors, and the scale ladder (issue: do the
verdicts transfer?): presets, the controls report with known answers, the citation in the
main report, the ladder's orchestration and resume, and the transfer table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import controls as controls_mod
from analysis import ladder as ladder_report
from analysis.load import load_experiment
from analysis.record import LadderRecord, RungRecord, read_ladder
from analysis.report import build_report
from support.experiments import BASE, Planted, null_model, write_fake_experiment
from study import ladder
from study.presets import Preset, grid_points, load_preset
from study.request import ResumeRequest, StudyRequest
from trainable.config import load_config
from trainable.errors import ConfigError, UserError

OFFICIAL = dict(BASE)


# --------------------------------------------------------------------------- presets
def test_controls_preset_has_a_control_per_detector_and_the_official_negative():
    preset = load_preset("controls")
    detectors = [c.detector for c in preset.controls]
    assert set(detectors) == {"blank_collapse", "diverged", "exploding", "slow", None}
    points = grid_points(preset, load_config("configs/train/proxy.yaml"))
    assert len(points) == len(preset.controls)  # one cell per control, none merged
    negative = next(c for c in preset.controls if c.detector is None)
    assert negative.set == {}  # the official setting: the training config untouched
    assert all(c.why.strip() for c in preset.controls)


def _preset_tree(**extra) -> dict:
    tree = {"name": "c", "budgets": {"default": {"steps": 8, "eval_every": 2}},
            "claims": None, "controls": [
                {"name": "hot", "detector": "diverged", "set": {"optim.lr_max": 1.0},
                 "why": "lr far too high"},
                {"name": "official", "detector": None, "why": "negative control"}]}
    tree.update(extra)
    return tree


def test_control_blocks_are_built_from_the_controls():
    preset = Preset.model_validate(_preset_tree())
    cfg = load_config("configs/train/proxy.yaml")
    points = grid_points(preset, cfg)
    assert points == [{"lr_max": 1.0}, {"lr_max": cfg.optim.lr_max}]
    assert preset.axis_keys() == {"lr_max": "optim.lr_max"}


@pytest.mark.parametrize("controls, message", [
    ([{"name": "a", "detector": "slow", "set": {"lr_max": 1e-6}, "why": "x"}],
     "dotted config keys"),
    ([{"name": "a", "detector": "slow", "set": {"optim.lr_max": 1e-6}, "why": "x"},
      {"name": "b", "detector": "slow", "set": {"optim.lr_max": 1e-6}, "why": "y"}],
     "distinct"),
    ([{"name": "a", "detector": "loud", "set": {}, "why": "x"}], "detector"),
])
def test_bad_controls_are_refused_naming_the_problem(tmp_path, controls, message):
    from study.presets import load_preset as load

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_preset_tree(controls=controls)))
    with pytest.raises(ConfigError, match=message) as err:
        load(str(path))
    assert "\n" not in str(err.value)


def test_ladder_preset_runs_the_claims_cells_at_growing_sizes():
    preset = load_preset("ladder")
    cells = grid_points(preset, load_config("configs/train/proxy.yaml"))
    # the six cells the claims compare, nothing else
    assert len(cells) == 6
    from analysis.claims import cells_of, load_claims

    needed = [c for claim in load_claims("configs/claims.yaml").claims
              for c in cells_of(claim.rule)]
    for cell in needed:
        assert any(all(np.isclose(p[k], v) for k, v in cell.items()) for p in cells), cell
    names = [r.name for r in preset.rungs]
    assert names[0] == "proxy" and "official" in names
    official = next(r for r in preset.rungs if r.name == "official")
    assert official.gpu and official.set["model.n_units"] == 768
    assert official.synthetic["n_features"] == official.set["data.n_features"] == 512


def test_a_rung_must_give_every_budget_of_the_ladder():
    tree = {"name": "l", "blocks": [{"eps": {"values": [0.1]}}], "claims": None,
            "budgets": {"smoke": {"steps": 4, "eval_every": 2},
                        "default": {"steps": 8, "eval_every": 2}},
            "rungs": [{"name": "a", "budgets": {"default": {"steps": 8, "eval_every": 2}}}]}
    with pytest.raises(ValueError, match="must give the preset's budgets"):
        Preset.model_validate(tree)


def test_a_negative_control_survives_the_round_trip_through_study_yaml():
    from analysis.record import ControlRecord

    record = ControlRecord(name="official", detector=None, why="negative", cell=4)
    dumped = record.model_dump(mode="json", exclude_none=True)  # as StudyRecord.write
    assert ControlRecord.model_validate(dumped) == record


def test_a_control_that_lands_on_another_controls_cell_is_refused():
    from study.plan import control_cells

    tree = _preset_tree(controls=[
        {"name": "same_as_official", "detector": "slow", "set": {"optim.lr_max": 0.005},
         "why": "the proxy's own lr"},
        {"name": "official", "detector": None, "why": "negative control"}])
    preset = Preset.model_validate(tree)
    cfg = load_config("configs/train/proxy.yaml")
    with pytest.raises(ConfigError, match="'official' resolves to the same setting as "
                                          "'same_as_official'"):
        control_cells(preset, cfg, grid_points(preset, cfg))
    with pytest.raises(ValueError, match="drop `blocks`"):
        Preset.model_validate(_preset_tree(blocks=[{"eps": {"values": [0.1]}}]))


# ----------------------------------------------------------------- controls report
CONTROL_CELLS = {  # control -> (detector, cell, outcomes of seeds 0..4)
    "collapse": ("blank_collapse", {**OFFICIAL, "lr_max": 1e-4},
                 ["blank_collapse"] * 4 + ["stable"]),
    "hot": ("diverged", {**OFFICIAL, "lr_max": 0.03}, ["diverged"] * 5),
    "spike": ("exploding", {**OFFICIAL, "eps": 1e-8},
              ["exploding", "exploding", "exploding", "stable", "stable"]),
    "cold": ("slow", {**OFFICIAL, "lr_max": 0.002}, ["slow"] * 5),
    "official": (None, OFFICIAL, ["stable"] * 4 + ["exploding"]),
}


def write_fake_controls(root: Path, name: str = "ctrl", started: str = "2026-11-25T18:00:00",
                        budget: int = 1000) -> Path:
    """A controls study with known flags: see CONTROL_CELLS."""
    counters: dict[tuple, int] = {}

    def model(cell: dict, rng: np.random.Generator) -> Planted:
        key = tuple(sorted(cell.items()))
        k = counters.get(key, 0)
        counters[key] = k + 1
        outcome = next(o for _, c, o in CONTROL_CELLS.values()
                       if all(np.isclose(c[a], cell[a]) for a in c))[k]
        return Planted(outcome, 0.7 if outcome == "slow" else 0.25)

    blocks = [{a: [v] for a, v in cell.items() if v != OFFICIAL[a]}
              for _, cell, _ in CONTROL_CELLS.values()]
    path = write_fake_experiment(root, model=model, n_seeds=5, blocks=blocks, name=name,
                                 n_errored=0, n_stopped_early=0, claims=None, budget=budget)
    study = yaml.safe_load((path / "study.yaml").read_text())
    study["points"] = [cell for _, cell, _ in CONTROL_CELLS.values()]
    study["controls"] = [{"name": n, "detector": d, "why": "planted",
                          "set": {f"x.{a}": v for a, v in c.items() if v != OFFICIAL[a]},
                          "cell": i} for i, (n, (d, c, _)) in enumerate(CONTROL_CELLS.items())]
    study["preset"], study["started"] = "controls", started
    (path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def test_sensitivity_and_specificity_have_known_values_and_exact_intervals(tmp_path):
    result = controls_mod.analyse(load_experiment(write_fake_controls(tmp_path)))
    sens = result.sensitivity.set_index("detector")
    assert sens.loc["blank_collapse", ["flagged", "runs"]].tolist() == [4, 5]
    assert sens.loc["diverged", "sensitivity"] == 1.0
    assert sens.loc["exploding", "flagged"] == 3 and sens.loc["slow", "flagged"] == 5
    # Clopper-Pearson 95% for 4/5: [0.2836, 0.9949]
    assert sens.loc["blank_collapse", "ci_low"] == pytest.approx(0.28358, abs=1e-4)
    assert sens.loc["blank_collapse", "ci_high"] == pytest.approx(0.99495, abs=1e-4)
    # 5/5: lower bound 0.025 ** (1/5)
    assert sens.loc["diverged", "ci_low"] == pytest.approx(0.025 ** 0.2, abs=1e-6)
    spec = result.specificity.set_index("detector")
    assert spec.loc["exploding", ["flagged", "runs"]].tolist() == [1, 5]
    assert spec.loc["exploding", "specificity"] == pytest.approx(0.8)
    assert spec.loc["blank_collapse", "specificity"] == 1.0
    assert spec.loc["slow", "flagged"] == 0


def test_flags_follow_each_detector_rule_not_the_outcome_label():
    trials = pd.DataFrame({
        "status": ["diverged", "finished", "finished", "finished", "stopped_early"],
        "outcome": ["diverged", "blank_collapse", "exploding", "stable", None],
        "final_collapsed": [0, 1, 0, 0, 1], "final_exploded": [1, 0, 1, 0, 1],
        "final_diverged": [1, 0, 0, 0, 0], "final_val_per": [10.0, 1.0, 0.3, 0.51, 0.9]})
    fired = controls_mod.flags(trials, slow_per=0.5)
    assert len(fired) == 4  # the run stopped early is not a complete observation
    assert fired["diverged"].tolist() == [True, False, False, False]
    # neither a diverged run's sentinel PER nor a collapsed run's PER 1.0 is "slow"
    assert fired["slow"].tolist() == [False, False, False, True]
    assert fired["exploding"].tolist() == [True, False, True, False]
    assert fired["blank_collapse"].tolist() == [False, True, False, False]


def test_controls_report_leads_with_each_detector_and_draws_the_signals(tmp_path):
    out = build_report(write_fake_controls(tmp_path))
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[1].startswith("  blank_collapse on 'collapse'")
    assert "flagged 4/5 runs, sensitivity 0.80 [0.28, 0.99]; final label blank_collapse " \
        "in 4/5" in summary[1]
    assert any("exploding flagged 1/5, specificity 0.80" in line for line in summary)
    assert (out / "figures" / "signals.png").is_file()
    assert (out / "figures" / "rates.png").is_file()
    table = pd.read_csv(out / "controls.csv")
    assert list(table["detector"]) == ["blank_collapse", "diverged", "exploding", "slow"]
    assert "Detector controls" in (out / "report.html").read_text()


def test_main_report_cites_the_latest_controls_next_to_no_failure_verdicts(tmp_path):
    write_fake_controls(tmp_path, name="ctrl-old", started="2026-11-20T10:00:00")
    write_fake_controls(tmp_path, name="ctrl-new", started="2026-11-25T10:00:00")
    study = write_fake_experiment(tmp_path, model=null_model, n_seeds=4, name="grid1")
    summary = (build_report(study, draw=False) / "summary.txt").read_text()
    check = [line for line in summary.splitlines() if "no failure seen" in line]
    # all five claims count failures, and none was seen under the null model
    assert len(check) == 5
    assert all("controls study ctrl-new" in line for line in check)
    tiny_eps = summary.split("tiny_eps_explodes")[1].split("\n")[1]
    assert "diverged flagged 5/5 control runs" in tiny_eps
    assert "exploding flagged 3/5 control runs (sensitivity 0.60" in tiny_eps
    assert "labelled exploding in 3/5" in tiny_eps
    # the weakest detector the claim counts sets the adjustment: exploding, 3/5, whose
    # Clopper-Pearson lower end is 0.147
    assert "adjusted for the detectors' sensitivity (lower end 0.15)" in tiny_eps
    html = (study / "report" / "report.html").read_text()
    assert "no failure seen: detector check" in html


def test_without_a_controls_study_the_report_says_detection_is_unmeasured(tmp_path):
    study = write_fake_experiment(tmp_path, model=null_model, n_seeds=3)
    summary = (build_report(study, draw=False) / "summary.txt").read_text()
    assert "no controls study beside this one" in summary


def test_a_verdict_that_saw_failures_gets_no_detector_check(tmp_path):
    def failing(cell, rng):
        return Planted("blank_collapse" if cell["white_noise_std"] < 0.5 else "stable", 0.3)

    study = write_fake_experiment(tmp_path, model=failing, n_seeds=3)
    summary = (build_report(study, draw=False) / "summary.txt").read_text()
    weak = summary.split("weak_augmentation_collapses")[1].split("\n")[1]
    assert "no failure seen" not in weak
    tiny = summary.split("tiny_eps_explodes")[1].split("\n")[1]
    assert "no failure seen" in tiny


def test_controls_at_another_size_are_cited_with_a_warning(tmp_path):
    write_fake_controls(tmp_path, name="ctrl-500", budget=500)
    study = write_fake_experiment(tmp_path, model=null_model, n_seeds=3, name="g")
    summary = (build_report(study, draw=False) / "summary.txt").read_text()
    assert "controls study ctrl-500" in summary and "differ from this one's" in summary

    # an older controls study at this study's size is preferred to a newer one at another
    write_fake_controls(tmp_path, name="ctrl-same", started="2026-11-20T10:00:00")
    summary = (build_report(study, draw=False) / "summary.txt").read_text()
    assert "controls study ctrl-same" in summary and "ctrl-500" not in summary
    assert "differ from this one's" not in summary


# ----------------------------------------------------------------- ladder plumbing
def _ladder_preset(gpu_rung: bool = True) -> Preset:
    rungs = [{"name": "small", "set": {"model.n_units": 16}, "synthetic": {"n_features": 16},
              "budgets": {"default": {"steps": 8, "eval_every": 2, "seeds": 2}}},
             {"name": "big", "set": {"model.n_units": 32}, "synthetic": {"n_features": 32},
              "budgets": {"default": {"steps": 16, "eval_every": 4, "seeds": 1}}}]
    if gpu_rung:
        rungs.append({"name": "gpu", "gpu": True,
                      "budgets": {"default": {"steps": 8, "eval_every": 2}}})
    return Preset.model_validate({
        "name": "lad", "blocks": [{"eps": {"values": [1e-8, 0.1]}}], "claims": None,
        "budgets": {"default": {"steps": 4, "eval_every": 2}}, "rungs": rungs})


def _request(tmp_path, **extra) -> StudyRequest:
    values = dict(command="grid", preset="x.yaml", storage=str(tmp_path), name="L",
                  overrides=["model.n_units=8"], no_report=True)
    values.update(extra)
    return StudyRequest.model_validate(values)


def test_rung_flags_put_the_rung_overrides_first_so_the_command_line_wins(tmp_path):
    preset = _ladder_preset()
    request = ladder.rung_request(_request(tmp_path, synthetic_set=["seed=3"]),
                                  str(tmp_path / "L"), preset.rungs[1], "rung-2-big")
    assert request.overrides == ("model.n_units=32", "model.n_units=8")
    assert request.synthetic_set == ("n_features=32", "seed=3")
    assert (request.storage, request.name) == (str(tmp_path / "L"), "rung-2-big")
    rung = ladder.rung_preset(preset, preset.rungs[1])
    assert rung.rungs is None and rung.budgets["default"].steps == 16


def test_ladder_runs_each_rung_skips_the_gpu_rung_and_resumes_after_an_interrupt(
        tmp_path, monkeypatch, capsys):
    from study import cli, single

    calls = []
    interrupt = {"big": True}

    def fake_launch(args, preset, rung=None):
        calls.append(("launch", rung, args.name, preset.budgets["default"].steps))
        folder = Path(args.storage) / args.name
        folder.mkdir(parents=True)
        (folder / "study.yaml").write_text("name: x\n")
        return 130 if interrupt.pop(rung, False) else 0

    def fake_resume(request, place):
        calls.append(("resume", Path(request.experiment).name))
        return 0

    monkeypatch.setattr(single, "launch", fake_launch)
    monkeypatch.setattr(single, "resume", fake_resume)
    preset = _ladder_preset()
    assert ladder.launch(_request(tmp_path), preset) == 130
    record = read_ladder(tmp_path / "L")
    assert [(r.name, r.status) for r in record.rungs] == [
        ("small", "done"), ("big", "interrupted"), ("gpu", "skipped")]
    assert "--gpus-per-trial" in record.rungs[2].note
    assert calls == [("launch", "small", "rung-1-small", 8), ("launch", "big", "rung-2-big", 16)]
    assert StudyRequest.read(tmp_path / "L").name == "L"
    assert "resume" in capsys.readouterr().err

    # resume: the interrupted rung resumes, the finished one is left alone
    calls.clear()
    assert cli.resume(ResumeRequest(experiment=str(tmp_path / "L"), no_report=True)) == 0
    assert calls == [("resume", "rung-2-big")]
    assert [r.status for r in read_ladder(tmp_path / "L").rungs] == ["done", "done",
                                                                     "skipped"]


def test_a_ladder_started_before_its_request_was_stored_resumes_from_its_command_line(
        tmp_path):
    from analysis.storage import resolve_storage
    from study.cli import _ladder_request
    from study.place import Place

    folder = tmp_path / "L"
    folder.mkdir()
    LadderRecord(name="L", preset="lad", budget="default", started="2026-11-25T18:00",
                 argv=["grid", "--preset", "x.yaml", "--set", "model.n_units=8", "--name", "L"],
                 rungs=[]).write(folder)
    request = _ladder_request(Place(resolve_storage(str(tmp_path)), "L"))
    assert (request.command, request.preset, request.name) == ("grid", "x.yaml", "L")
    assert request.overrides == ("model.n_units=8",)


def test_a_ladder_refuses_a_numeric_budget_and_recorded_data_with_synthetic_rungs(tmp_path):
    with pytest.raises(UserError, match="rungs have their own steps"):
        ladder.launch(_request(tmp_path, budget="100"), _ladder_preset())
    with pytest.raises(UserError, match="generate synthetic data"):
        ladder.launch(_request(tmp_path, data="/some/folder"), _ladder_preset())
    assert not (tmp_path / "L").exists()


def test_synthetic_data_is_generated_once_per_feature_count(tmp_path, monkeypatch):
    from trainable import synthetic
    from trainable.source import resolve_data_root

    monkeypatch.setenv("B2T_DATA_CACHE", str(tmp_path))
    knobs = ["n_sessions=2", "train_trials=4", "val_trials=2", "test_trials=2",
             "trials_per_block=2"]
    small, _ = resolve_data_root(None, synthetic_overrides=[*knobs, "n_features=8"],
                                 progress=False)
    large, _ = resolve_data_root(None, synthetic_overrides=[*knobs, "n_features=12"],
                                 progress=False)
    assert small != large and small.parent == large.parent == tmp_path
    import h5py

    for root, features in ((small, 8), (large, 12)):
        session = sorted(p for p in root.iterdir() if p.is_dir())[0]
        with h5py.File(session / "data_train.hdf5") as f:
            assert f["trial_0000"]["input_features"].shape[1] == features

    def must_not_run(*args, **kwargs):
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(synthetic, "generate", must_not_run)
    assert resolve_data_root(None, synthetic_overrides=[*knobs, "n_features=12"],
                             progress=False)[0] == large


# ----------------------------------------------------------------- transfer table
def write_fake_ladder(root: Path) -> Path:
    """Three rungs: the diagnosis at the proxy (failures where the claims say), no failure
    anywhere at the larger rung, and a GPU rung skipped."""
    from support.experiments import diagnosis_model

    folder = root / "lad"
    folder.mkdir()
    # the ladder preset's six cells (as two blocks; each block crosses its values)
    blocks = [{"eps": [1e-8, 0.1], "white_noise_std": [0.25, 1.0],
               "constant_offset_std": [0.05, 0.2]},
              {"lr_max": [0.002], "white_noise_std": [0.25, 1.0],
               "constant_offset_std": [0.05, 0.2]}]
    write_fake_experiment(folder, model=diagnosis_model, n_seeds=20, name="rung-1-proxy",
                          n_errored=0, n_stopped_early=0, blocks=blocks)
    write_fake_experiment(folder, model=null_model, n_seeds=18, name="rung-2-large",
                          n_errored=0, n_stopped_early=0, seed=1, blocks=blocks)
    LadderRecord(name="lad", preset="ladder", budget="default", started="2026-11-25T18:00",
                 argv=[], rungs=[
                     RungRecord(name="proxy", folder="rung-1-proxy", status="done"),
                     RungRecord(name="large", folder="rung-2-large", status="done"),
                     RungRecord(name="official", folder="rung-3-official", status="skipped",
                                note="needs a GPU")]).write(folder)
    return folder


def test_transfer_table_judges_each_rung_and_says_which_verdicts_change(tmp_path):
    folder = write_fake_ladder(tmp_path)
    transfer, notes = ladder_report.transfer_table(read_ladder(folder), folder)
    assert set(transfer["rung"]) == {"proxy", "large"}
    assert notes == ["rung official: skipped (needs a GPU)"]
    verdict = transfer.set_index(["claim", "rung"])["verdict"]
    assert verdict[("tiny_eps_explodes", "proxy")] == "supported"
    assert verdict[("tiny_eps_explodes", "large")] == "refuted"
    agree = ladder_report.agreement(transfer).set_index("claim")
    assert agree.loc["tiny_eps_explodes", "decision"] == "flips"
    assert agree.loc["tiny_eps_explodes", "change"] == "proxy SUPPORTED -> large REFUTED"
    assert agree.loc["tiny_eps_explodes", "direction"] == "vanishes"
    # neither 20 nor 18 seeds bound the official failure rate below 0.1 (47 would)
    assert agree.loc["official_setting_stable", "decision"] == "agrees"
    assert set(verdict.xs("official_setting_stable")) == {"inconclusive"}
    assert agree.loc["official_setting_stable", "direction"] == "same"
    assert agree.loc["augmentation_interacts_with_optimizer", "decision"] == "agrees"


def test_a_rung_without_a_complete_run_is_noted_not_judged(tmp_path):
    folder = write_fake_ladder(tmp_path)
    running = write_fake_experiment(folder, model=null_model, n_seeds=1, name="rung-4-big",
                                    n_errored=0, n_stopped_early=0, scheduler_stop=1.0)
    record = read_ladder(folder)
    record.rungs[2] = RungRecord(name="big", folder=running.name, status="interrupted")
    transfer, notes = ladder_report.transfer_table(record, folder)
    assert set(transfer["rung"]) == {"proxy", "large"}
    assert "rung big: no complete run yet" in notes


def test_direction_agreement_compares_each_estimate_with_no_effect():
    frame = pd.DataFrame({"claim": ["a", "a", "b", "b"], "rung": ["p", "q", "p", "q"],
                          "order": [0, 1, 0, 1], "verdict": ["supported", "inconclusive",
                                                             "refuted", "refuted"],
                          "estimate": [0.4, 0.1, 2.0, 0.5], "null": [0.0, 0.0, 1.0, 1.0]})
    agree = ladder_report.agreement(frame).set_index("claim")
    assert agree.loc["a", "direction"] == "same"
    assert agree.loc["a", "decision"] == "partly decided"
    # a ratio claim: 2.0 and 0.5 sit on either side of no effect (1)
    assert agree.loc["b", "direction"] == "reverses" and agree.loc["b", "decision"] == "agrees"
    assert ladder_report.direction_agreement([1, 0, None]) == "vanishes"
    assert ladder_report.decision_agreement(["supported", "inconclusive", "refuted"]) \
        == "flips"


def test_ladder_report_leads_with_the_changed_verdicts_and_has_the_figure(tmp_path):
    out = build_report(write_fake_ladder(tmp_path))
    lines = (out / "summary.txt").read_text().splitlines()
    assert lines[1] == "2 of 6 claims keep their verdict across the 2 rung(s) that ran."
    assert any(line.startswith("  VERDICT CHANGES WITH SCALE: tiny_eps_explodes")
               for line in lines[2:8])
    assert (out / "figures" / "transfer.png").is_file()
    assert set(pd.read_csv(out / "transfer.csv")["rung"]) == {"proxy", "large"}
    assert "Scale ladder" in (out / "report.html").read_text()


def test_a_bound_resting_on_no_failure_is_adjusted_for_the_detectors_sensitivity():
    # 0.19 on flagged failures, detectors that flag at least 0.80 of real ones: 0.2375
    assert controls_mod.adjusted_bound(0.19, 0.25, 0.8) == (
        "adjusted for the detectors' sensitivity (lower end 0.80): failures that "
        "happened, flagged or not, at most 0.24, still below the claimed 0.25 (at least "
        "95% joint confidence if the controls' sensitivity holds, and holds alike, in these "
        "cells; 0.76 sensitivity would keep it below)")
    assert "no longer below the claimed 0.25" in controls_mod.adjusted_bound(0.19, 0.25, 0.5)
    assert "no bound holds" in controls_mod.adjusted_bound(0.19, 0.25, 0.0)
    assert controls_mod.adjusted_bound(0.19, -0.25, 0.8) == ""  # a decrease claim
    assert controls_mod.detectors_of(["diverged", "exploding", "exploded"]) == [
        "diverged", "exploding"]


def test_a_width_ladder_reports_the_lr_boundary_against_fan_in(tmp_path):
    """A ladder without claims whose rungs sweep lr_max at eps 1e-8 (configs/studies/
    width.yaml): its report leads with each rung's boundary, the slope against fan-in and
    the boundary at the official fan-in, and draws them (analysis.boundary.width)."""
    from support.experiments import boundary_model

    folder = tmp_path / "width"
    folder.mkdir()
    lrs = [float(v) for v in np.geomspace(1e-3, 0.3, 14)]
    rungs = []
    for k, features in enumerate((64, 128, 256, 512)):
        name = f"rung-{k + 1}-f{features}"
        # planted: the boundary halves as the fan-in doubles (slope -1)
        model = boundary_model(lambda eps, f=features: 0.02 * 64 / f, side="upper")
        path = write_fake_experiment(folder, model=model, n_seeds=3, name=name, n_errored=0,
                                     n_stopped_early=0, claims=None,
                                     blocks=[{"eps": [1e-8], "lr_max": lrs}], seed=k)
        study = yaml.safe_load((path / "study.yaml").read_text())
        study["train_config"].setdefault("data", {})["n_features"] = features
        study["train_config"].setdefault("model", {})["patch_size"] = 14
        (path / "study.yaml").write_text(yaml.safe_dump(study))
        rungs.append(RungRecord(name=f"f{features}", folder=name, status="done"))
    LadderRecord(name="width", preset="width", budget="default", started="2026-12-03T16:00",
                 argv=[], rungs=rungs).write(folder)
    out = ladder_report.build(folder)
    summary = (out / "summary.txt").read_text()
    assert "Tiny-eps (1e-8) learning-rate boundary against layer-0 fan-in" in summary
    assert "registered no claims" not in summary
    table = pd.read_csv(out / "width.csv").iloc[0]
    assert table["slope_low"] <= -1.0 <= table["slope_high"] and table["slope_high"] < 0
    assert table["official_high"] < 0.005  # planted: 0.0025 at 512 features
    assert "below the official lr_max 0.005" in summary
    assert (out / "figures" / "width.png").is_file()
    assert "width.png" in (out / "report.html").read_text() or \
        "data:image/png" in (out / "report.html").read_text()
    # a rung whose study.yaml cannot be read stops the width analysis with its name
    # (it is not left out quietly, which would move the fitted slope)
    (folder / "rung-4-f512" / "study.yaml").write_text("name: [unclosed\n")
    from analysis.boundary import width as width_mod

    with pytest.raises(UserError, match="rung f512: "):
        width_mod.ladder_runs(folder)
