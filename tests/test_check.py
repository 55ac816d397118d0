"""python -m trainable check: the rules (known answers) and the command on the proxy."""

import numpy as np
import pytest

from trainable.__main__ import main
from trainable.check import judge


def _verdicts(rows):
    return {name: passed for name, passed, _ in rows}


def test_judge_passes_a_healthy_run():
    losses = list(np.linspace(100, 20, 200))
    rows = judge(losses, [12.0] * 200, True, warmup=40, unique_phonemes=27)
    assert all(_verdicts(rows).values())


def test_judge_loss_window_is_a_tenth_and_ratio_is_inclusive():
    # first 20 batches mean 100, last 20 mean 90: ratio 0.9 exactly passes, 0.91 fails
    losses = [100.0] * 20 + [95.0] * 160 + [90.0] * 20
    assert _verdicts(judge(losses, [1.0] * 200, True, 0, 20))["training loss falls"]
    losses[-20:] = [91.0] * 20
    rows = judge(losses, [1.0] * 200, True, 0, 20)
    assert not _verdicts(rows)["training loss falls"]
    assert "ratio 0.91" in rows[0][2]


def test_judge_gradient_norm_uses_95th_percentile_after_warmup():
    norms = [500.0] * 40 + [10.0] * 154 + [100.0] * 6    # 6 spikes in 160: p95 = 10
    v = _verdicts(judge([10.0] * 200, norms, True, warmup=40, unique_phonemes=20))
    assert v["gradient norm after warm-up"]
    norms = [500.0] * 40 + [10.0] * 140 + [100.0] * 20    # 20 spikes in 160: p95 = 100
    v = _verdicts(judge([10.0] * 200, norms, True, warmup=40, unique_phonemes=20))
    assert not v["gradient norm after warm-up"]
    # the warm-up is excluded: huge norms only inside it pass
    norms = [1e6] * 40 + [10.0] * 160
    assert _verdicts(judge([1.0] * 200, norms, True, 40, 20))["gradient norm after warm-up"]
    # a warm-up longer than half the batches: the second half is judged
    rows = judge([1.0] * 100, [10.0] * 100, True, warmup=1000, unique_phonemes=20)
    assert "batches 51..100" in rows[2][2]


def test_judge_fails_nonfinite_and_collapse():
    rows = _verdicts(judge([50.0] * 30, [5.0] * 30, False, 0, None))
    assert not rows["no NaN/Inf loss or gradient"] and not rows["no blank collapse"]
    rows = _verdicts(judge([50.0] * 200, [5.0] * 200, True, 0, 10))
    assert not rows["no blank collapse"]  # 10 is not more than 10
    assert _verdicts(judge([50.0] * 200, [5.0] * 200, True, 0, 11))["no blank collapse"]


def test_check_passes_on_the_proxy(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 and "FAIL" not in out
    assert "health check: all passed" in out and "steps/s" in out


def test_check_fails_on_a_broken_setting_and_names_the_criterion(capsys):
    code = main(["check", "--batches", "60", "--set", "optim.lr_max=0.5",
                 "--set", "optim.eps=1e-8"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  gradient norm after warm-up" in out
    assert "health check: FAILED:" in out


@pytest.mark.parametrize("argv, message", [
    (["check", "--batches", "5"], "--batches=5"),
    (["check", "--set", "optim.eps=-1"], "optim.eps"),
    (["check", "--max-grad-norm", "0"], "--max-grad-norm"),
])
def test_check_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def _tiny_set(**extra):
    from support.studies import TINY_OVERRIDES

    items = {**TINY_OVERRIDES, **extra}
    return [a for k, v in items.items() for a in ("--set", f"{k}={v}")]


def test_trainer_cli_json_save_and_resume_continue_bit_for_bit(tiny_data, tmp_path, capsys):
    import json

    base = ["--data", str(tiny_data), "--json"]
    assert main([*base, *_tiny_set()]) == 0
    whole = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    assert [r["step"] for r in whole] == [1, 5, 9, 12]
    ckpt = tmp_path / "state.pt"
    assert main([*base, *_tiny_set(**{"train.num_steps": 6}), "--save", str(ckpt)]) == 0
    capsys.readouterr()
    assert ckpt.exists()
    assert main([*base, *_tiny_set(), "--resume", str(ckpt)]) == 0
    resumed = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if line.startswith("{")]
    assert [r["step"] for r in resumed] == [9, 12]
    for key in ("train_loss", "val_loss", "val_per", "grad_norm_max", "outcome"):
        assert resumed[-1][key] == whole[-1][key], key
