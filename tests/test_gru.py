"""The fast CPU training path (trainable.gru) against nn.GRU / nn.Dropout."""

import pytest
import torch
from torch import nn

from trainable.config import ModelConfig
from trainable.gru import bptt_gru, dropout, packed_gru, packing
from trainable.model import GRUDecoder
from trainable.loop import TrainingRun


def _grads(module: nn.Module, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    out = [p.grad.clone() for p in module.parameters()] + [t.grad.clone() for t in inputs]
    for t in [*module.parameters(), *inputs]:
        t.grad = None
    return out


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_bptt_gru_equals_nn_gru_outputs_and_every_gradient(batch_first, n_layers):
    torch.manual_seed(0)
    gru = nn.GRU(12, 10, num_layers=n_layers, batch_first=batch_first)
    with torch.no_grad():  # biases away from zero so that a dropped bias term shows
        for name, p in gru.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    shape = (5, 9, 12) if batch_first else (9, 5, 12)
    x = torch.randn(*shape, requires_grad=True)
    h0 = torch.randn(n_layers, 5, 10, requires_grad=True)
    weight = torch.randn(*shape[:2], 10)  # a loss that weighs every output differently

    ref, _ = gru(x, h0)
    (ref * weight).sum().backward()
    ref_grads = _grads(gru, [x, h0])
    out = bptt_gru(gru, x, h0)
    (out * weight).sum().backward()
    grads = _grads(gru, [x, h0])

    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    names = [n for n, _ in gru.named_parameters()] + ["input", "h0"]
    for name, a, b in zip(names, grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"gradient of {name}")


def test_bptt_gru_ignores_trailing_padding():
    """Outputs and gradients of the valid frames do not depend on zero padding after them
    (what lets batches of different lengths share the recurrence)."""
    torch.manual_seed(1)
    gru = nn.GRU(4, 6, batch_first=True)
    x = torch.randn(2, 7, 4)
    padded = torch.cat([x, torch.zeros(2, 5, 4)], 1)
    h0 = torch.zeros(1, 2, 6)
    torch.testing.assert_close(bptt_gru(gru, padded, h0)[:, :7], bptt_gru(gru, x, h0))


def test_bptt_gru_applies_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    gru = nn.GRU(6, 8, num_layers=2, dropout=0.5, batch_first=True)
    x, h0 = torch.randn(3, 5, 6), torch.zeros(2, 3, 8)
    gru.eval()
    torch.testing.assert_close(bptt_gru(gru, x, h0), gru(x, h0)[0], rtol=1e-5, atol=1e-6)
    gru.train()
    torch.manual_seed(7)
    a = bptt_gru(gru, x, h0)
    torch.manual_seed(7)
    b = bptt_gru(gru, x, h0)
    torch.testing.assert_close(a, b)  # same seed, same masks
    assert not torch.allclose(a, gru.eval()(x, h0)[0], atol=1e-3)
    # nothing drops the input of the first layer: one layer trains as it evaluates
    with pytest.warns(UserWarning, match="dropout"):
        single = nn.GRU(6, 8, num_layers=1, dropout=0.5, batch_first=True)
    torch.testing.assert_close(bptt_gru(single.train(), x, h0[:1]),
                               single.eval()(x, h0[:1])[0], rtol=1e-5, atol=1e-6)


def test_packing_orders_each_timestep_longest_first():
    seq, step, sizes = packing(torch.tensor([2, 3, 1, 3]))
    assert sizes == [4, 3, 2]
    assert step.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert seq.tolist() == [1, 3, 0, 2, 1, 3, 0, 1, 3]  # ties keep batch order


@pytest.mark.parametrize("n_layers", [1, 3])
@pytest.mark.parametrize("lengths", [
    [5, 11, 1, 11, 8, 3, 2, 11, 7, 7, 10, 4],  # more sequences than hidden units
    [1, 11, 11],  # one sequence ends after the first timestep, the others run to the end
])
def test_packed_gru_equals_nn_gru_on_every_sequence_s_own_frames(n_layers, lengths):
    """Over a packed batch, outputs of the valid timesteps and every gradient equal
    nn.GRU's on the padded batch (whose padding reaches no valid output)."""
    torch.manual_seed(3)
    gru = nn.GRU(7, 9, num_layers=n_layers, batch_first=True)
    with torch.no_grad():
        for name, p in gru.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    lengths = torch.tensor(lengths)
    batch = len(lengths)
    x = torch.randn(batch, 11, 7, requires_grad=True)
    h0 = torch.randn(n_layers, batch, 9, requires_grad=True)
    valid = torch.arange(11)[None, :] < lengths[:, None]
    weight = torch.randn(batch, 11, 9) * valid[..., None]  # the loss reads valid outputs only

    ref, _ = gru(x, h0)
    (ref * weight).sum().backward()
    ref_grads = _grads(gru, [x, h0])
    seq, step, sizes = packing(lengths)
    order = seq[:sizes[0]]
    out = packed_gru(gru, x[seq, step], h0[:, order], sizes)
    (out * weight[seq, step]).sum().backward()
    grads = _grads(gru, [x, h0])

    assert out.shape == (int(lengths.sum()), 9)
    torch.testing.assert_close(out, ref[seq, step], rtol=1e-5, atol=1e-6)
    names = [n for n, _ in gru.named_parameters()] + ["input", "h0"]
    for name, a, b in zip(names, grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"gradient of {name}")


def test_bptt_gru_input_gradient_without_a_gradient_for_h0():
    torch.manual_seed(4)
    gru = nn.GRU(5, 6, batch_first=True)
    x = torch.randn(3, 8, 5, requires_grad=True)
    h0 = torch.zeros(1, 3, 6)  # a fixed state: only the input asks for a gradient
    gru(x, h0)[0].sum().backward()
    expected, x.grad = x.grad, None
    bptt_gru(gru, x, h0).sum().backward()
    torch.testing.assert_close(x.grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("sizes", [[2, 3], [2, 0], [0], []])
def test_packed_gru_refuses_sizes_that_grow_or_reach_zero(sizes):
    gru = nn.GRU(3, 4)
    with pytest.raises(ValueError, match="positive and non-increasing"):
        packed_gru(gru, torch.zeros(5, 3), torch.zeros(1, 2, 4), sizes)


def test_decoder_fast_path_computes_the_valid_patches_as_the_official_model():
    """The fast CPU path of GRUDecoder, given each trial's frames, returns the official
    model's logits on every valid patch (0 after a trial's output length) and the same
    gradient for every parameter."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_units=16, n_layers=2, rnn_dropout=0.0, input_dropout=0.0,
                      patch_size=14, patch_stride=4)
    model = GRUDecoder(8, 3, cfg).train()
    x, day = torch.randn(4, 60, 8), torch.tensor([0, 2, 1, 0])
    n_frames = torch.tensor([60, 33, 14, 51])
    lengths = model.output_lengths(n_frames)  # 12, 5, 1, 10 of 12 patches
    valid = (torch.arange(12)[None, :] < lengths[:, None])[..., None]
    weight = torch.randn(4, 12, cfg.n_classes)
    results = {}
    for fast in (False, True):
        model.fast_cpu = fast
        model.zero_grad(set_to_none=True)
        logits = model(x, day, n_frames)
        (logits * weight * valid).sum().backward()
        results[fast] = logits.detach(), {n: p.grad for n, p in model.named_parameters()}
    (ref, ref_grads), (fast, fast_grads) = results[False], results[True]
    torch.testing.assert_close(fast * valid, ref * valid, rtol=1e-5, atol=1e-6)
    assert torch.equal(fast * ~valid, torch.zeros_like(fast))
    assert (ref * ~valid).abs().sum() > 0  # the official model runs over the padding too
    assert ref_grads.keys() == fast_grads.keys()
    for name, grad in ref_grads.items():
        if grad is None:  # a day absent from the batch
            assert fast_grads[name] is None, name
        else:
            torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6,
                                       msg=f"gradient of {name}")


def test_decoder_fast_path_without_frame_counts_runs_over_the_padded_batch():
    torch.manual_seed(1)
    cfg = ModelConfig(n_units=16, n_layers=2, rnn_dropout=0.0, input_dropout=0.0,
                      patch_size=14, patch_stride=4)
    model = GRUDecoder(8, 2, cfg).train()
    x, day = torch.randn(3, 40, 8), torch.tensor([1, 0, 1])
    ref = model(x, day)
    model.fast_cpu = True
    torch.testing.assert_close(model(x, day), ref, rtol=1e-5, atol=1e-6)


def test_decoder_fast_path_evaluates_without_dropout_as_the_official_model():
    """In eval mode nothing is dropped on either path, whatever the dropout settings."""
    torch.manual_seed(2)
    cfg = ModelConfig(n_units=16, n_layers=3, rnn_dropout=0.5, input_dropout=0.5,
                      patch_size=14, patch_stride=4)
    model = GRUDecoder(8, 2, cfg).eval()
    x, day, n_frames = torch.randn(3, 50, 8), torch.tensor([1, 0, 1]), torch.tensor([50, 30, 41])
    valid = (torch.arange(10)[None, :] < model.output_lengths(n_frames)[:, None])[..., None]
    with torch.no_grad():
        ref = model(x, day, n_frames)
        model.fast_cpu = True
        fast = model(x, day, n_frames)
    torch.testing.assert_close(fast * valid, ref * valid, rtol=1e-5, atol=1e-6)
    # with gradients on (a check outside the trainer's no_grad evaluation) as well
    torch.testing.assert_close(model(x, day, n_frames).detach(), fast)


@pytest.mark.parametrize("kwargs", [{"bidirectional": True}, {"bias": False}])
def test_bptt_gru_refuses_what_it_does_not_implement(kwargs):
    gru = nn.GRU(3, 4, **kwargs)
    with pytest.raises(ValueError, match="only unidirectional GRUs with biases and no proj"):
        bptt_gru(gru, torch.zeros(2, 1, 3), torch.zeros(2, 1, 4))


def test_dropout_keeps_1_minus_p_scaled_by_its_inverse():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = dropout(x, 0.2)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.8) < 4 * (0.8 * 0.2 / x.numel()) ** 0.5  # binomial, 4 sd
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.8))
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    grad = torch.ones(10, requires_grad=True)
    dropout(grad, 0.5).sum().backward()
    assert set(grad.grad.tolist()) <= {0.0, 2.0}


def test_fast_and_reference_paths_train_alike_step_by_step(tiny_data, tiny_config):
    """Without dropout (the only draw the paths make differently) the fast path's losses,
    gradient norms and evaluations follow the reference path's to float32 rounding."""
    reports = {}
    for path in ("fast", "reference"):
        cfg = tiny_config(train__cpu_path=path, model__input_dropout=0.0,
                          model__rnn_dropout=0.0)
        run = TrainingRun(cfg, load_dataset_cached(tiny_data, cfg))
        reports[path] = list(run)
        assert run.model.fast_cpu is (path == "fast")
        assert run.optimizer.defaults["fused"] is (path == "fast")  # official fused=True
    fast, ref = reports["fast"], reports["reference"]
    assert [r["step"] for r in fast] == [r["step"] for r in ref]
    for a, b in zip(fast, ref, strict=True):
        for key in ("train_loss", "val_loss", "grad_norm_mean", "eps_dominance"):
            assert a[key] == pytest.approx(b[key], rel=1e-3), key
        assert a["val_per"] == pytest.approx(b["val_per"], abs=0.02)


def test_fast_path_same_seed_same_numbers(tiny_data, tiny_config):
    cfg = tiny_config(train__cpu_path="fast")
    dataset = load_dataset_cached(tiny_data, cfg)
    a, b = list(TrainingRun(cfg, dataset)), list(TrainingRun(cfg, dataset))
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["val_per"] for r in a] == [r["val_per"] for r in b]


_CACHE: dict = {}


def load_dataset_cached(root, cfg):
    from trainable.data import load_dataset

    key = (str(root), cfg.data.n_features)
    if key not in _CACHE:
        _CACHE[key] = load_dataset(root, cfg)
    return _CACHE[key]


def test_compiled_decoder_keeps_one_graph_whatever_days_a_batch_holds():
    """torch.compile sees everything after the day layer only, so batches of other days
    (same shapes) reuse the first graph instead of recompiling per set of days."""
    compiled = []

    def counting_backend(graph, example_inputs):
        compiled.append(graph)
        return graph.forward

    torch.manual_seed(0)
    model = GRUDecoder(8, 12, ModelConfig(n_units=16, n_layers=2, patch_size=4,
                                          patch_stride=2)).eval()
    model.compile_decoder(backend=counting_backend)
    x = torch.randn(4, 20, 8)
    outputs = []
    for days in ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [3, 3, 7, 11], [0, 5, 10, 2]):
        outputs.append(model(x, torch.tensor(days)))
    assert len(compiled) == 1
    eager = GRUDecoder(8, 12, ModelConfig(n_units=16, n_layers=2, patch_size=4,
                                          patch_stride=2)).eval()
    eager.load_state_dict(model.state_dict())
    torch.testing.assert_close(outputs[-1], eager(x, torch.tensor([0, 5, 10, 2])))
