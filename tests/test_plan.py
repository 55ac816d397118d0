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
