import math
import warnings

import numpy as np
import pytest
import torch

from support.training import interrupted

from trainable import contract
from trainable.augment import constant_offset, gauss_smooth, random_cut, smoothing_kernel, transform
from trainable.config import AugmentConfig, ModelConfig, MonitorConfig, OptimConfig
from trainable.data import load_dataset
from trainable.decode import ctc_loss_per_utterance, greedy_decode, phoneme_error_rate
from trainable.loop import TrainingRun
from trainable.model import GRUDecoder
from trainable.monitor import is_collapsed, outcome
from trainable.optim import build_optimizer, lr_factor, param_groups


def test_smoothing_kernel_matches_official_taps():
    k = smoothing_kernel(2.0, 100)
    expected = [0.0276, 0.0663, 0.1238, 0.1802, 0.2042, 0.1802, 0.1238, 0.0663, 0.0276]
    assert np.allclose(k, expected, atol=1e-4)
    assert math.isclose(k.sum(), 1.0, rel_tol=1e-6)


def test_smoothing_is_same_length_zero_padded():
    x = torch.ones(1, 20, 3)
    y = gauss_smooth(x, torch.from_numpy(smoothing_kernel(2.0, 100)))
    assert y.shape == x.shape
    assert torch.allclose(y[0, 10], torch.ones(3))
    assert y[0, 0, 0] < 0.7  # zero padding pulls the edges down


def test_constant_offset_is_constant_over_time_per_trial_and_channel():
    gen = torch.Generator().manual_seed(0)
    y = constant_offset(torch.zeros(3, 7, 5), 0.2, gen)
    assert torch.allclose(y, y[:, :1, :].expand_as(y))
    assert not torch.allclose(y[0], y[1])


def test_random_cut_draws_0_to_2_for_official_setting():
    gen = torch.Generator().manual_seed(0)
    cuts = set()
    for _ in range(60):
        x, n = random_cut(torch.zeros(2, 30, 1), torch.tensor([30, 25]), 3, gen)
        cut = 30 - x.shape[1]
        cuts.add(cut)
        assert n.tolist() == [30 - cut, 25 - cut]
    assert cuts == {0, 1, 2}


def test_validation_transform_is_smoothing_only():
    cfg = AugmentConfig()
    x = torch.randn(2, 30, 4)
    kernel = torch.from_numpy(smoothing_kernel(2.0, 100))
    y, n = transform(x, torch.tensor([30, 30]), cfg, kernel, None, train=False)
    assert torch.allclose(y, gauss_smooth(x, kernel)) and n.tolist() == [30, 30]


def test_augmentation_is_reproducible_from_generator():
    cfg = AugmentConfig()
    x = torch.randn(2, 30, 4)
    a = transform(x, torch.tensor([30, 30]), cfg, None, torch.Generator().manual_seed(5), True)
    b = transform(x, torch.tensor([30, 30]), cfg, None, torch.Generator().manual_seed(5), True)
    assert torch.equal(a[0], b[0])


@pytest.mark.parametrize("step, expected", [
    (0, 0.0), (500, 0.5), (1000, 1.0), (60500, 0.02 + 0.98 * 0.5), (120000, 0.02),
    (130000, 0.02)])
def test_official_schedule(step, expected):
    assert lr_factor(step, 0.005, 0.0001, 1000, 120000) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("step, expected", [
    (0, 1.0), (1, 1 - 0.98 / 100), (50, 0.51), (100, 0.02), (150, 0.02)])
def test_linear_schedule_is_official_linearlr_without_warmup(step, expected):
    assert lr_factor(step, 0.005, 0.0001, 1000, 100, "linear") == pytest.approx(expected)


def test_linear_schedule_drives_every_group_with_the_main_factor():
    """torch LinearLR(start 1, end lr_min/lr_max, total_iters=lr_decay_steps) on the
    official optimizer: the day group starts at lr_max_day and follows the same factor."""
    model = GRUDecoder(8, 3, ModelConfig(n_units=16, n_layers=1))
    cfg = OptimConfig(lr_max=0.004, lr_min=0.0004, lr_decay_steps=10, lr_warmup_steps=5,
                      lr_max_day=0.002, lr_min_day=0.001, schedule="linear")
    optimizer, scheduler = build_optimizer(model, cfg, torch.device("cpu"))
    ref_opt = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))]}
                                 for _ in range(3)])
    for group, lr in zip(ref_opt.param_groups, (0.004, 0.002, 0.004)):
        group["lr"] = group["initial_lr"] = lr
    ref = torch.optim.lr_scheduler.LinearLR(ref_opt, 1.0, 0.1, total_iters=10)
    for _ in range(14):
        ours = [g["lr"] for g in optimizer.param_groups]
        assert ours == pytest.approx([g["lr"] for g in ref_opt.param_groups], rel=1e-6)
        optimizer.step()
        scheduler.step()
        ref_opt.step()
        ref.step()


def test_param_groups_follow_official_rules():
    model = GRUDecoder(8, 3, ModelConfig(n_units=16, n_layers=2))
    groups = {g["group"]: g for g in param_groups(model, OptimConfig(lr_max_day=0.01))}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in groups["no_decay"]["params"]} == {
        "gru.bias_ih_l0", "gru.bias_hh_l0", "gru.bias_ih_l1", "gru.bias_hh_l1", "out.bias"}
    assert all(names[id(p)].startswith("day_") for p in groups["day"]["params"])
    assert groups["day"]["lr"] == 0.01 and groups["day"]["weight_decay"] == 0.0
    assert groups["rest"]["weight_decay"] == 0.001
    assert "h0" in {names[id(p)] for p in groups["rest"]["params"]}


def test_ctc_loss_is_summed_per_utterance_not_divided_by_length():
    torch.manual_seed(0)
    logits = torch.randn(2, 20, 41)
    labels = torch.tensor([[3, 5, 0, 0], [7, 8, 9, 10]])
    lens = torch.tensor([2, 4])
    per_utt = ctc_loss_per_utterance(logits, torch.tensor([20, 20]), labels, lens)
    mean_red = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), labels,
                                            torch.tensor([20, 20]), lens, reduction="mean")
    expected = [float(torch.nn.functional.ctc_loss(
        logits[i : i + 1].log_softmax(-1).transpose(0, 1), labels[i : i + 1, : lens[i]],
        torch.tensor([20]), lens[i : i + 1], reduction="sum")) for i in range(2)]
    assert per_utt.tolist() == pytest.approx(expected, rel=1e-5)
    assert float(mean_red) == pytest.approx(float((per_utt / lens).mean()), rel=1e-5)
    assert float(per_utt.mean()) != pytest.approx(float(mean_red), rel=1e-2)


def test_greedy_decode_collapses_repeats_then_drops_blanks():
    frames = [5, 5, 0, 5, 7, 7, 0, 0, 9]
    logits = torch.full((1, 9, 41), -10.0)
    logits[0, torch.arange(9), torch.tensor(frames)] = 10.0
    (decoded,) = greedy_decode(logits, torch.tensor([8]))  # last frame is padding
    assert decoded.tolist() == [5, 5, 7]  # A-blank-A stays A A, as the official trainer


def test_per_is_micro_averaged():
    assert phoneme_error_rate([1, 3], [10, 2]) == pytest.approx(4 / 12)


def test_reported_val_per_is_the_micro_average_over_every_sentence_of_every_day(
        tmp_path, tiny_config):
    """The official validation divides the summed edit distances by the summed reference
    lengths over all val trials of all days (rnn_trainer.validation). A decoder that emits
    [1, 2, 3, 4] for every trial, on days of unequal sizes and sentence lengths, makes every
    other average differ: micro 16/26 = 0.62; mean of the per-day PERs (2 + 0.5)/2 = 1.25;
    mean of the per-sentence PERs (2 + 0.5 + 0 + 0.67)/4 = 0.79; mean over the validation
    batches of two, (2 + 4/12 + 8/12)/3 = 1.0."""
    from support.h5 import write_trials

    emitted = [1, 2, 3, 4]
    train = [(80, [7, 8, 9, 10])] * 2
    root = write_trials(tmp_path / "d", {
        "t15.2023.08.11": {"train": train, "val": [(80, [5, 6])]},  # distance 4 of 2
        "t15.2023.08.12": {"train": train, "val": [
            (80, list(range(1, 9))),  # distance 4 of 8
            (80, [1, 2, 3, 4]),  # 0 of 4
            (80, list(range(1, 13))),  # 8 of 12
        ]}})
    cfg = tiny_config(data__batch_size=2, train__num_steps=1)
    run = TrainingRun(cfg, load_dataset(root, cfg))
    model = run.model

    def decodes_to_emitted(x, day, n_frames):
        logits = model(x, day, n_frames)
        fixed = torch.zeros_like(logits)
        fixed[:, len(emitted):, 0] = 1.0  # blanks after the emitted phonemes
        fixed[:, torch.arange(len(emitted)), torch.tensor(emitted)] = 1.0
        return logits * 0 + fixed  # still a function of the weights, so training steps run

    run.forward = decodes_to_emitted
    (report,) = list(run)
    assert report["val_per"] == pytest.approx(16 / 26)
    assert report["val_per_by_day"] == pytest.approx({"t15.2023.08.11": 2.0,
                                                      "t15.2023.08.12": 0.5})


def test_collapse_rule_is_time_aware():
    cfg = MonitorConfig()
    assert not is_collapsed(0.0, step=100, budget=1000, cfg=cfg)  # early plateau is normal
    assert is_collapsed(0.0, step=500, budget=1000, cfg=cfg)
    assert not is_collapsed(0.9, step=500, budget=1000, cfg=cfg)
    assert outcome(False, False, False, 0.9, cfg) == "slow"
    assert outcome(True, True, True, 0.1, cfg) == "diverged"


# A learning rate that drives the tiny run to a non-finite loss within 40 steps.
DIVERGING = {"optim__lr_max": 1e6, "optim__eps": 1e-12, "optim__lr_min": 1.0,
             "optim__grad_clip": 1e12, "train__num_steps": 40, "train__eval_every": 2,
             "optim__lr_warmup_steps": 0}


def _run(cfg, data):
    return list(TrainingRun(cfg, load_dataset(data, cfg)))


def test_reports_carry_the_contract_and_finite_values(tiny_data, tiny_config):
    reports = _run(tiny_config(), tiny_data)
    assert [r["step"] for r in reports] == [1, 5, 9, 12]
    for r in reports:
        for key in contract.METRICS + contract.REPORT_EXTRAS:
            assert key in r
            if key != "outcome":
                assert math.isfinite(r[key])
        assert r["outcome"] in contract.OUTCOMES
    assert reports[-1]["completed"] == 1 and reports[0]["completed"] == 0
    assert 0.0 <= reports[-1]["eps_dominance"] <= 1.0


def test_same_seed_same_numbers(tiny_data, tiny_config):
    a = _run(tiny_config(), tiny_data)
    b = _run(tiny_config(), tiny_data)
    c = _run(tiny_config(train__seed=11, data__seed=11), tiny_data)
    keys = ["train_loss", "val_loss", "val_per", "grad_norm_max"]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    assert [r["val_loss"] for r in a] != [r["val_loss"] for r in c]


def _untimed(reports: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in reports]


def test_resume_from_checkpoint_matches_uninterrupted_run(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config()
    ds = load_dataset(tiny_data, cfg)
    full = list(TrainingRun(cfg, ds))
    assert _untimed(interrupted(cfg, ds, tmp_path / "state.pt", 2)) == _untimed(full)


def test_resume_keeps_the_gradient_norms_the_explosion_rule_is_judged_against(
        tiny_data, tiny_config, tmp_path):
    """The explosion rule compares a window's largest pre-clip norm with the median of every
    norm since step 1. This tiny run's norms grow (about 9 to 13), so a median of the norms
    since the checkpoint alone would sit higher and miss the explosion the whole run sees."""
    factor = 1.1
    cfg = tiny_config(monitor__explode_factor=factor)
    ds = load_dataset(tiny_data, cfg)
    run = TrainingRun(cfg, ds)
    full = list(run)
    checkpoint_step = full[1]["step"]
    first = next(r for r in full if r["exploded"])
    assert first["step"] > checkpoint_step  # nothing latched in the checkpoint
    since_checkpoint = run.grad_norms[checkpoint_step : first["step"]]
    assert first["grad_norm_max"] <= factor * np.median(since_checkpoint)
    assert _untimed(interrupted(cfg, ds, tmp_path / "state.pt", 2)) == _untimed(full)


def test_resume_keeps_a_latched_explosion(tiny_data, tiny_config, tmp_path):
    """`exploded` stays set once a window exploded; after this checkpoint no window exceeds
    the threshold again, so only the restored flag keeps the outcome `exploding`."""
    factor = 1.18
    cfg = tiny_config(monitor__explode_factor=factor, train__num_steps=24)
    ds = load_dataset(tiny_data, cfg)
    run = TrainingRun(cfg, ds)
    full = list(run)
    assert full[3]["exploded"] == 1 and full[-1]["outcome"] == "exploding"
    for r in full[4:]:  # the later windows alone
        assert r["grad_norm_max"] <= factor * np.median(run.grad_norms[: r["step"]])
    assert _untimed(interrupted(cfg, ds, tmp_path / "state.pt", 4)) == _untimed(full)


def test_resume_reads_the_checkpoint_to_the_cpu_whatever_the_training_device(
        tiny_data, tiny_config, tmp_path, monkeypatch):
    """A CUDA run read its checkpoint with map_location=<its device>: the saved RNG states
    (CPU ByteTensors) landed on the GPU and restoring them raised "RNG state must be a
    torch.ByteTensor", so no CUDA trial could resume. Here 'meta' stands for the GPU while
    the checkpoint is read (set_state rejects its tensors with the same TypeError), and
    torch.load puts the RNG states where map_location says; the weights and optimiser state
    come to the CPU either way, as load_state_dict would copy them from a GPU."""
    cfg = tiny_config()
    ds = load_dataset(tiny_data, cfg)
    full = list(TrainingRun(cfg, ds))
    real_load = torch.load

    def load_rng_states_where_mapped(path, map_location=None, **kwargs):
        state = real_load(path, map_location="cpu", **kwargs)
        for key in ("aug_gen", "torch_rng"):
            state[key] = state[key].to(map_location or "cpu")
        return state

    def load_as_on_a_gpu(run, path):
        run.device = torch.device("meta")
        run.load(path)
        run.device = torch.device("cpu")

    monkeypatch.setattr(torch, "load", load_rng_states_where_mapped)
    resumed = interrupted(cfg, ds, tmp_path / "state.pt", 2, resume=load_as_on_a_gpu)
    assert _untimed(resumed) == _untimed(full)


def test_resumed_diverged_run_stays_finished(tiny_data, tiny_config, tmp_path):
    """A trial restored from its last checkpoint after diverging (Tune does this when a
    study resumes) must not train on from the broken weights."""
    cfg = tiny_config(**DIVERGING)
    ds = load_dataset(tiny_data, cfg)
    run = TrainingRun(cfg, ds)
    assert list(run)[-1]["diverged"] == 1 and run.step < 40
    run.save(tmp_path / "state.pt")
    resumed = TrainingRun(cfg, ds)
    resumed.load(tmp_path / "state.pt")
    assert resumed.finished and list(resumed) == []


def test_nonfinite_loss_stops_cleanly_as_diverged(tiny_data, tiny_config):
    cfg = tiny_config(**DIVERGING)
    reports = _run(cfg, tiny_data)
    last = reports[-1]
    assert last["diverged"] == 1 and last["outcome"] == "diverged" and last["completed"] == 1
    assert last["step"] < 40
    for key in contract.METRICS:
        assert math.isfinite(last[key])


def test_nan_in_data_with_drop_policy_trains(tmp_path, tiny_config):
    from support.h5 import write_dataset

    root = write_dataset(tmp_path / "d", n_features=16, defect="nan")
    reports = _run(tiny_config(data__nonfinite_features="drop"), root)
    assert all(math.isfinite(r["val_loss"]) for r in reports)


def test_optimizer_is_adamw_with_configured_eps():
    model = GRUDecoder(8, 2, ModelConfig(n_units=8, n_layers=1))
    opt, _ = build_optimizer(model, OptimConfig(eps=1e-8), torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW)
    assert all(g["eps"] == 1e-8 for g in opt.param_groups)
    assert opt.param_groups[0]["lr"] == 0.0  # warm-up starts at lr 0, as the official run


def test_patches_are_time_major_inside_a_patch():
    from trainable.model import patches

    b, t, f = 1, 20, 3
    x = torch.arange(b * t * f, dtype=torch.float32).view(b, t, f)  # value = 3*frame + chan
    p = patches(x, size=14, stride=4)
    assert p.shape == (1, (20 - 14) // 4 + 1, 14 * 3)
    for n in range(p.shape[1]):
        for k in range(14):
            for d in range(f):
                assert p[0, n, k * f + d] == x[0, 4 * n + k, d]


def test_official_initialisation():
    model = GRUDecoder(6, 2, ModelConfig(n_units=8, n_layers=2))
    assert torch.equal(model.day_weights[1].data, torch.eye(6))
    assert torch.equal(model.day_biases[0].data, torch.zeros(1, 6))
    w_hh = model.gru.weight_hh_l1.data
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(8), atol=1e-5)  # orthogonal (2304x768 shape)
    bound = math.sqrt(6 / (8 + 8))  # xavier_uniform on h0 of shape (1, 1, 8)
    assert model.h0.abs().max() <= bound and model.h0.shape == (1, 1, 8)
    # xavier_uniform on the input weights (nn.GRU's own init would reach 1/sqrt(8) = 0.35)
    w_ih = model.gru.weight_ih_l0.data  # [24, 84]
    bound = math.sqrt(6 / (24 + 84))
    assert w_ih.abs().max() <= bound and w_ih.abs().max() > 0.9 * bound
    assert model.fast_cpu is False  # the official modules unless the trainer asks
    # dropout between GRU layers only where there are two or more
    assert model.gru.dropout == 0.4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nn.GRU warns of dropout on a single layer
        assert GRUDecoder(6, 2, ModelConfig(n_units=8, n_layers=1)).gru.dropout == 0.0


def test_day_layer_adds_its_bias_before_the_softsign():
    torch.manual_seed(0)
    model = GRUDecoder(6, 2, ModelConfig(n_units=8, n_layers=2)).eval()
    x, day = torch.randn(2, 30, 6), torch.tensor([1, 1])
    shift = torch.randn(1, 6)
    with torch.no_grad():
        plain = model(x + shift, day)
        model.day_biases[1].copy_(shift)
        torch.testing.assert_close(model(x, day), plain, rtol=1e-5, atol=1e-6)


def test_training_augmentations_run_in_the_official_order():
    cfg = AugmentConfig(white_noise_std=1.0, constant_offset_std=0.2, random_cut=3)
    x = torch.randn(2, 30, 4)
    n = torch.tensor([30, 28])
    kernel = torch.from_numpy(smoothing_kernel(2.0, 100))
    got, got_n = transform(x, n, cfg, kernel, torch.Generator().manual_seed(3), train=True)
    gen = torch.Generator().manual_seed(3)
    y = x + torch.randn(x.shape, generator=gen) * 1.0  # white noise first
    y = y + torch.randn((2, 1, 4), generator=gen) * 0.2  # then one offset per trial x channel
    cut = int(torch.randint(0, 3, (1,), generator=gen))  # then the random cut
    expected = gauss_smooth(y[:, cut:], kernel)  # smoothing last, after the noise
    assert torch.allclose(got, expected) and got_n.tolist() == [30 - cut, 28 - cut]


def test_every_augmentation_in_order_with_known_draws():
    """All five training augmentations on, none at std 1 (a '/ std' bug shows), against
    the same draws made by hand from the same generator, in the official order."""
    from trainable.augment import random_walk, static_gain, white_noise

    cfg = AugmentConfig(static_gain_std=0.05, white_noise_std=0.5, constant_offset_std=0.3,
                        random_walk_std=0.1, random_walk_axis=1, random_cut=3)
    x = torch.randn(2, 12, 3)
    n = torch.tensor([12, 10])
    got, got_n = transform(x, n, cfg, None, torch.Generator().manual_seed(4), train=True)
    gen = torch.Generator().manual_seed(4)
    gain = torch.eye(3) + torch.randn((2, 3, 3), generator=gen) * 0.05
    y = torch.bmm(x, gain)
    y = y + torch.randn(y.shape, generator=gen) * 0.5
    y = y + torch.randn((2, 1, 3), generator=gen) * 0.3
    y = y + torch.cumsum(torch.randn(y.shape, generator=gen) * 0.1, dim=1)
    cut = int(torch.randint(0, 3, (1,), generator=gen))
    torch.testing.assert_close(got, y[:, cut:])
    assert got_n.tolist() == [12 - cut, 10 - cut]
    # each function alone, with its own known draws
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(random_walk(x, 0.2, -1, g1),
                               x + torch.cumsum(torch.randn(x.shape, generator=g2) * 0.2, -1))
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    torch.testing.assert_close(static_gain(x, 0.1, g1), torch.bmm(
        x, torch.eye(3) + torch.randn((2, 3, 3), generator=g2) * 0.1))
    # every augmentation keeps the input's dtype (bf16 under autocast on CUDA)
    xb, g = x.bfloat16(), torch.Generator()
    assert white_noise(xb, 0.5, g).dtype == torch.bfloat16
    assert constant_offset(xb, 0.5, g).dtype == torch.bfloat16
    assert static_gain(xb, 0.1, g).dtype == torch.bfloat16
    assert random_walk(xb, 0.1, 1, g).dtype == torch.bfloat16
    kernel = torch.from_numpy(smoothing_kernel(2.0, 100))
    assert gauss_smooth(xb, kernel).dtype == torch.bfloat16


@pytest.mark.parametrize("on", ["constant_offset_std", "random_walk_std"])
def test_switched_off_augmentations_draw_nothing(on):
    """An augmentation at 0 draws no random numbers: the next one's draws are unchanged."""
    values = {"white_noise_std": 0.0, "constant_offset_std": 0.0, "random_walk_std": 0.0,
              "random_cut": 0, "static_gain_std": 0.0, on: 0.3}
    cfg = AugmentConfig(random_walk_axis=1, **values)
    x = torch.zeros(2, 5, 3)
    got, n = transform(x, torch.tensor([5, 5]), cfg, None, torch.Generator().manual_seed(9),
                       train=True)
    gen = torch.Generator().manual_seed(9)
    if on == "constant_offset_std":
        expected = (torch.randn((2, 1, 3), generator=gen) * 0.3).expand(2, 5, 3)
    else:
        expected = torch.cumsum(torch.randn((2, 5, 3), generator=gen) * 0.3, dim=1)
    torch.testing.assert_close(got, expected)
    assert n.tolist() == [5, 5]


def test_smoothing_kernel_is_float32():
    assert smoothing_kernel(2.0, 100).dtype == np.float32


def test_ctc_loss_is_infinite_when_the_labels_cannot_fit():
    """zero_infinity=False as the official loss: an impossible alignment is inf, which the
    trainer turns into a diverged run rather than a silent zero."""
    logits = torch.randn(1, 3, 41)
    loss = ctc_loss_per_utterance(logits, torch.tensor([3]), torch.tensor([[5, 5, 5, 5]]),
                                  torch.tensor([4]))
    assert torch.isinf(loss).all()


def test_per_of_nothing_is_zero():
    assert phoneme_error_rate(np.array([]), np.array([])) == 0.0
    assert phoneme_error_rate(np.array([1, 2]), np.array([4, 4])) == pytest.approx(3 / 8)


def test_batches_built_ahead_train_as_batches_built_on_demand(tiny_data, tiny_config):
    serial = _run(tiny_config(), tiny_data)
    ahead = _run(tiny_config(train__prefetch_batches=3), tiny_data)
    assert _untimed(ahead) == _untimed(serial)


def test_a_run_building_batches_ahead_resumes_where_training_was(tiny_data, tiny_config,
                                                                tmp_path):
    """The checkpoint holds the sampler state after the last batch trained on, not after
    the batches the background thread had already built."""
    cfg = tiny_config(train__prefetch_batches=3)
    ds = load_dataset(tiny_data, cfg)
    full = list(TrainingRun(cfg, ds))
    assert _untimed(interrupted(cfg, ds, tmp_path / "state.pt", 2)) == _untimed(full)
