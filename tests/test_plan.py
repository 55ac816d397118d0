"""Planning a study before Ray starts (study/plan.py): the device and GPU-sharing rules."""

import pytest

from study.plan import check_device, plan_study
from study.presets import load_preset
from study.request import StudyRequest
from trainable.config import load_config
from trainable.errors import UserError


def test_auto_device_on_a_gpu_machine_without_a_gpu_request_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    auto = load_config(overrides={"train.device": "auto"})
    with pytest.raises(UserError, match="give --gpus-per-trial"):
        check_device(auto, 0.0)
    check_device(auto, 0.5)  # a GPU is requested: Ray places the trial
    check_device(load_config(overrides={"train.device": "cpu"}), 0.0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_device(auto, 0.0)  # no GPU: auto means the CPU


@pytest.mark.parametrize("gpus, device, fraction", [(0.0, "cpu", None), (0.5, "cuda", 0.5),
                                                    (1.0, "cuda", None)])
def test_trials_sharing_a_gpu_keep_to_their_share_of_its_memory(gpus, device, fraction):
    plan = plan_study(StudyRequest(command="grid", gpus_per_trial=gpus), load_preset("grid"))
    assert plan.cfg.train.device == device
    assert plan.cfg.train.gpu_memory_fraction == fraction


def test_an_official_size_budget_inside_its_warm_up_is_refused_unless_allowed():
    official = "configs/train/official.yaml"
    request = StudyRequest(command="grid", train_config=official, budget="400",
                           overrides=("train.device=cpu",))
    with pytest.raises(UserError, match="shorter than the official model's own warm-up"):
        plan_study(request, load_preset("grid"))
    allowed = request.model_copy(update={"allow_short_budget": True})
    assert plan_study(allowed, load_preset("grid")).cfg.train.num_steps == 400
    real = request.model_copy(update={"budget": "4000"})
    assert plan_study(real, load_preset("grid")).cfg.train.num_steps == 4000


def test_numeric_budgets_scale_the_adaptive_minutes_and_official_studies_are_projected():
    from study.plan import projection, resolve_budget

    grid = load_preset("grid")  # 34 adaptive minutes at its default 400 steps
    assert resolve_budget(grid, "4000")["minutes"] == pytest.approx(340.0)
    assert resolve_budget(grid, "default")["minutes"] is None  # the preset's own
    cfg = load_config("configs/train/official.yaml", overrides={"train.num_steps": 4000})
    line = projection(cfg, 16, 200, 16)
    assert "16 trial(s) in the first wave, at most 200" in line
    assert "1.9 GPU-hours for the first wave" in line  # 16 x 4,000 x 0.105 s
    assert "about 12.5 seeds per cell" in line
    # With the step time the packing check measured on the cluster's GPU: 0.2 s a step.
    measured = projection(cfg, 16, 200, 16, 0.2)
    assert "at ~0.200 s/step (measured here" in measured
    assert "3.6 GPU-hours for the first wave, 44.4 at most" in measured  # 16 x 4,000 x 0.2 s


def test_a_logger_whose_package_is_missing_is_refused_before_anything_starts(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("wandb", "mlflow") else real(name, *a))
    for flag in ("wandb", "mlflow"):
        request = StudyRequest(command="grid", **{flag: "somewhere"})
        with pytest.raises(UserError, match=f"--{flag}: the {flag} package is not installed"):
            plan_study(request, load_preset("grid"))


def test_loggers_the_study_was_started_with_are_tunes_own_callbacks(monkeypatch):
    from types import SimpleNamespace

    import ray.air.integrations.mlflow as mlflow_integration
    import ray.air.integrations.wandb as wandb_integration

    from study.runner import logger_callbacks

    # The real classes need their packages; record what they are built with instead.
    monkeypatch.setattr(wandb_integration, "WandbLoggerCallback",
                        lambda **kw: ("wandb", kw))
    monkeypatch.setattr(mlflow_integration, "MLflowLoggerCallback",
                        lambda **kw: ("mlflow", kw))
    record = SimpleNamespace(name="s", loggers={"wandb": "proj", "mlflow": "file:/tmp/m"})
    assert logger_callbacks(record) == [
        ("wandb", {"project": "proj", "group": "s"}),
        ("mlflow", {"tracking_uri": "file:/tmp/m", "experiment_name": "s"})]
    assert logger_callbacks(SimpleNamespace(name="s", loggers={})) == []


def test_the_confirmation_preset_keeps_the_official_schedule_in_real_steps_on_calibrated_data():
    """configs/studies/confirm.yaml: the official trainer at the official size, warm-up
    1,000 and decay 120,000 left as they are, truncated at the 2,000-step budget, on the
    calibrated (generator 2) data; the ladder's calibrated rung is the same world."""
    from study.ladder import rung_preset
    from study.plan import data_source
    from trainable.synthetic import SyntheticSpec

    request = StudyRequest(command="grid", overrides=("train.device=cpu",))
    plan = plan_study(request, load_preset("confirm"))
    optim = plan.cfg.optim
    assert (plan.cfg.train.num_steps, optim.lr_warmup_steps, optim.lr_decay_steps) == (
        2000, 1000, 120000)
    assert (plan.cfg.model.n_layers, plan.cfg.model.n_units, plan.cfg.data.batch_size) == (
        5, 768, 64)
    _, spec = data_source(request, plan)
    assert SyntheticSpec.load(spec).generator == 2
    ladder = load_preset("ladder")
    rung = rung_preset(ladder, next(r for r in ladder.rungs if r.name == "calibrated"))
    assert (rung.schedule, rung.synthetic_spec, rung.train_config) == (
        "real", "data/calibrated.yaml", "train/calibrated.yaml")
    assert plan_study(request, rung).cfg.optim.lr_warmup_steps == 1000
    # The proxy keeps its stretched schedule: warm-up 40 of 400.
    proxy = plan_study(request, load_preset("grid")).cfg.optim
    assert (proxy.lr_warmup_steps, proxy.lr_decay_steps) == (40, 400)


def test_the_packing_check_takes_the_longest_trials_and_stops_a_batch_that_does_not_fit(
        tiny_data, tiny_config):
    """study/packing.py: the worst batch is the batch_size longest trials; a step on it
    that runs out of the trial's share of GPU memory stops the study in one line naming
    the flag; one that fits prints its peak against the share."""
    import numpy as np

    from study.packing import verdict_line, worst_batch_indices, worst_batch_peak
    from trainable.data import load_dataset

    lengths = np.array([300, 900, 120, 900, 2475, 40])
    assert worst_batch_indices(lengths, 3).tolist() == [1, 3, 4]
    assert worst_batch_indices(lengths, 10).tolist() == [0, 1, 2, 3, 4, 5]
    gib = 2**30
    oom = {"device": "cuda", "oom": True, "share": 20 * gib, "total": 80 * gib,
           "length": 2475, "trials": 64}
    with pytest.raises(UserError, match=r"--gpus-per-trial 0.25: the largest training batch "
                                        r"\(64 trials padded to 2,475 bins\) does not fit"):
        verdict_line(oom, 0.25)
    fits = {**oom, "oom": False, "peak": 5 * gib}
    assert "peaks at 5.00 GiB of a trial's 20.0 GiB of the GPU's 80.0 GiB" in \
        verdict_line(fits, 0.25)
    # Without a GPU the task says so and the study goes on (the trials refuse themselves).
    cfg = tiny_config()
    assert worst_batch_peak(cfg.model_dump(mode="json"),
                            load_dataset(tiny_data, cfg)) == {"device": "cpu"}
    assert "skipped" in verdict_line({"device": "cpu"}, 0.5)
