"""Trainer differences as config options (trainable.variants): each defaults to the
official behaviour, and each does what the trainer it comes from does."""

import numpy as np
import pytest
import torch

from support.training import interrupted

from trainable.batches import ShuffleBatchSampler, feature_moments
from trainable.config import CONFIG_DIR, MonitorConfig, load_config
from trainable.data import load_dataset
from trainable.decode import ctc_loss_per_utterance
from trainable.errors import ConfigError
from trainable.loop import TrainingRun
from trainable.monitor import is_exploded
from trainable.official_args import to_official
from trainable.optim import build_optimizer
from trainable.tree import get_dotted
from trainable.variants import VARIANTS, training_differences


def test_every_variant_defaults_to_the_official_value():
    official = load_config(CONFIG_DIR / "train" / "official.yaml")
    for variant in VARIANTS:
        assert get_dotted(official.model_dump(), variant.key) == variant.official, variant.key
        assert variant.alternative != variant.official


def _params(run: TrainingRun) -> list[torch.Tensor]:
    return [p.detach().clone() for p in run.model.parameters()]


def test_official_values_set_explicitly_train_bit_for_bit_as_the_defaults(tiny_data,
                                                                          tiny_config):
    explicit = {v.key.replace(".", "__"): v.official for v in VARIANTS
                if not v.official_key}
    cfg, same = tiny_config(), tiny_config(**explicit)
    ds = load_dataset(tiny_data, cfg)
    # One run after the other: a run draws dropout from the global RNG its init seeded.
    a = TrainingRun(cfg, ds)
    reports_a = list(a)
    b = TrainingRun(same, ds)
    reports_b = list(b)
    keys = ["train_loss", "val_loss", "val_per", "grad_norm_max", "outcome"]
    assert [[r[k] for k in keys] for r in reports_a] == [[r[k] for k in keys]
                                                         for r in reports_b]
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b), strict=True))


def test_label_normalisation_divides_each_utterance_by_its_label_count():
    torch.manual_seed(0)
    logits = torch.randn(3, 20, 41, requires_grad=True)
    out_lens, labels = torch.tensor([20, 18, 20]), torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0],
                                                                  [7, 0, 0, 0]])
    label_lens = torch.tensor([4, 2, 1])
    summed = ctc_loss_per_utterance(logits, out_lens, labels, label_lens)
    per_label = ctc_loss_per_utterance(logits, out_lens, labels, label_lens, "label")
    assert torch.allclose(per_label, summed / label_lens)
    # The batch mean of the per-label loss is CTCLoss(reduction='mean').
    reference = torch.nn.functional.ctc_loss(
        torch.log_softmax(logits, -1).permute(1, 0, 2), labels, out_lens, label_lens,
        reduction="mean")
    assert torch.allclose(per_label.mean(), reference)


def test_zero_infinity_turns_an_impossible_alignment_into_zero():
    logits = torch.randn(1, 3, 41)
    args = (logits, torch.tensor([3]), torch.tensor([[5, 5, 5, 5]]), torch.tensor([4]))
    assert torch.isinf(ctc_loss_per_utterance(*args)).all()
    assert ctc_loss_per_utterance(*args, zero_infinity=True).item() == 0.0


def test_shuffle_sampler_visits_every_trial_once_per_epoch_across_days(tiny_data,
                                                                       tiny_config):
    cfg = tiny_config()
    ds = load_dataset(tiny_data, cfg)
    n = len(ds.train)
    sampler = ShuffleBatchSampler(ds.train, 5, seed=3)
    epoch = []
    while len(epoch) < n:
        epoch.extend(sampler.next_indices().tolist())
    assert sorted(epoch) == list(range(n))  # every trial once, the last batch smaller
    first = ShuffleBatchSampler(ds.train, 5, seed=3).next_indices()
    assert len(np.unique(ds.train.day[first])) > 1 or len(ds.train.days) == 1
    # Deterministic, and a restored state continues the same stream.
    state = sampler.state_dict()
    ahead = [sampler.next_indices().tolist() for _ in range(4)]
    other = ShuffleBatchSampler(ds.train, 5, seed=99)
    other.load_state_dict(state)
    assert [other.next_indices().tolist() for _ in range(4)] == ahead


def test_shuffled_training_resumes_bit_for_bit(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config(data__sampling="shuffle")
    ds = load_dataset(tiny_data, cfg)
    full = [r["train_loss"] for r in TrainingRun(cfg, ds)]
    resumed = interrupted(cfg, ds, tmp_path / "state.pt", 2)
    assert [r["train_loss"] for r in resumed] == full


def test_global_normalisation_zscores_real_frames_and_keeps_padding_zero(tiny_data,
                                                                         tiny_config):
    cfg = tiny_config(data__extra_normalisation="global")
    ds = load_dataset(tiny_data, cfg)
    mean, sd = feature_moments(ds.train, chunk=7)  # chunked as a memory-mapped split
    frames = ds.train.features.astype(np.float64)
    assert np.allclose(mean, frames.mean(0), atol=1e-5)
    assert np.allclose(sd, frames.std(0), rtol=1e-4)
    run = TrainingRun(cfg, ds)
    batch = run._to_device(ds.train.batch(np.arange(len(ds.train))))
    x, n = batch["features"], batch["n_frames"]
    valid = torch.cat([x[i, : n[i]] for i in range(len(n))])
    assert torch.allclose(valid.mean(0), torch.zeros(x.shape[2]), atol=1e-4)
    assert torch.allclose(valid.std(0, unbiased=False), torch.ones(x.shape[2]), atol=1e-3)
    short = int(torch.argmin(n))
    assert torch.count_nonzero(x[short, n[short]:]) == 0


def test_l2_weight_decay_is_adam_with_the_penalty_in_the_gradient():
    def one_step(mode: str) -> float:
        model = torch.nn.Module()
        model.weight = torch.nn.Parameter(torch.tensor([2.0]))
        groups = [{"params": [model.weight], "weight_decay": 0.1}]
        kind = torch.optim.AdamW if mode == "decoupled" else torch.optim.Adam
        optimizer = kind(groups, lr=0.01, eps=1e-8, weight_decay=0.1)
        model.weight.grad = torch.zeros(1)
        optimizer.step()
        return float(model.weight.detach())

    # A zero loss gradient: AdamW only decays (w * (1 - lr * wd)); Adam's L2 penalty is a
    # gradient of its own, normalised by Adam to a full step of lr.
    assert one_step("decoupled") == pytest.approx(2.0 * (1 - 0.01 * 0.1))
    assert one_step("l2") == pytest.approx(2.0 - 0.01, rel=1e-5)


def test_weight_decay_mode_picks_the_optimizer(tiny_config):
    from trainable.model import GRUDecoder

    for mode, kind in (("decoupled", torch.optim.AdamW), ("l2", torch.optim.Adam)):
        cfg = tiny_config(optim__weight_decay_mode=mode)
        model = GRUDecoder(16, 2, cfg.model)
        optimizer, _ = build_optimizer(model, cfg.optim, torch.device("cpu"))
        assert type(optimizer) is kind


def test_absolute_explosion_alarm_fires_on_a_healthy_norm_only_when_set():
    assert not is_exploded(29.0, 29.0, MonitorConfig())
    assert is_exploded(29.0, 29.0, MonitorConfig(explode_norm=20.0))
    assert not is_exploded(19.0, 29.0, MonitorConfig(explode_norm=20.0))
    assert not is_exploded(20.0, 29.0, MonitorConfig(explode_norm=20.0))  # above, not at


def test_exporting_a_trainer_difference_to_rnn_args_is_refused():
    cfg = load_config(overrides={"loss.normalisation": "label"})
    assert training_differences(cfg) == {"loss.normalisation": "label"}
    with pytest.raises(ConfigError, match=r"loss\.normalisation=.label."):
        to_official(cfg, ["s1"])
    # The monitor's alarm changes labels, not training: exportable.
    assert training_differences(load_config(overrides={"monitor.explode_norm": 20})) == {}


def test_a_bad_variant_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"loss\.normalisation"):
        load_config(overrides={"loss.normalisation": "mean"})
