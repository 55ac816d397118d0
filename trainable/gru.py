"""A CPU training path for nn.GRU: the same equations, backpropagated through time by hand.

On CPU, nn.GRU's backward is autograd over the unrolled cell: some fifty small operations
per timestep and layer, each a few microseconds of dispatch on a 16 x 128 tile. The proxy
model spends most of a training step there (benchmarks/bench_trainer.py prints the
breakdown). `bptt_gru` computes the same function with the PyTorch GRU equations

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

and a hand-written backward: the input projections of all timesteps are one GEMM each way,
the recurrence runs five operations per timestep forward and three backward, and the weight
gradients of the recurrence are one GEMM over all timesteps. It runs on a packed batch
(`packed_gru`): only the timesteps inside each sequence's length are computed, where nn.GRU
on the official padded batch also runs over the padding (on the proxy's synthetic data, 44%
of the padded timesteps; the outputs there are not used, and trailing padding never reaches
a valid output or gradient). Outputs and gradients of the valid timesteps agree with nn.GRU
to float32 rounding (tests/test_gru.py), so it is a faster route to the same numbers, not an
approximation. Dropout between layers is nn.GRU's (inverted dropout, p = `dropout`, training
only), its mask drawn from the global torch generator as `dropout` below. CUDA keeps cuDNN.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout in training mode, the distribution of F.dropout: each element kept
    with probability 1 - p and scaled by 1 / (1 - p). The mask comes from torch.rand on the
    global generator, about 4x cheaper on CPU than F.dropout's bernoulli_ (same seed, same
    mask; not the same mask as F.dropout)."""
    if p <= 0:
        return x
    if p >= 1:
        return torch.zeros_like(x)
    return x * torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))


class _GRULayer(torch.autograd.Function):
    """One unidirectional layer over a packed batch. x [N, I] holds the valid timesteps of
    every sequence, time-major: timestep t is sizes[t] consecutive rows, one per sequence
    still running, longest sequences first, so the sequences of timestep t + 1 are a prefix
    of those of t (the layout of nn.utils.rnn.PackedSequence). h0 [sizes[0], H] -> outputs
    [N, H] in the same layout. Padding never enters: a sequence's outputs and gradients are
    those of nn.GRU run over its own frames."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, sizes):
        hid = w_hh.shape[1]
        gi = torch.addmm(b_ih, x, w_ih.t())
        # gh starts as [W_ir x + b_ir + b_hr, W_iz x + b_iz + b_hz, b_hn]; one in-place addmm
        # per timestep then leaves [r and z pre-activations, W_hn h + b_hn] in it.
        gh = torch.empty_like(gi)
        torch.add(gi[:, :2 * hid], b_hh[:2 * hid], out=gh[:, :2 * hid])
        gh[:, 2 * hid:] = b_hh[2 * hid:]
        rz = x.new_empty(x.shape[0], 2 * hid)
        n = x.new_empty(x.shape[0], hid)
        y = x.new_empty(x.shape[0], hid)
        w_hh_t = w_hh.t()
        # Views of every timestep made once (indexing inside the loop costs more than the
        # arithmetic at these sizes).
        gi_n, gh_t = gi[:, 2 * hid:].split(sizes), gh.split(sizes)
        gh_rz, gh_n = gh[:, :2 * hid].split(sizes), gh[:, 2 * hid:].split(sizes)
        rz_t, r_t, z_t = rz.split(sizes), rz[:, :hid].split(sizes), rz[:, hid:].split(sizes)
        n_t, y_t = n.split(sizes), y.split(sizes)
        h = h0
        for t, size in enumerate(sizes):
            if size < h.shape[0]:
                h = h[:size]  # the sequences still running
            gh_t[t].addmm_(h, w_hh_t)
            torch.sigmoid(gh_rz[t], out=rz_t[t])
            torch.addcmul(gi_n[t], r_t[t], gh_n[t], out=n_t[t]).tanh_()
            torch.lerp(n_t[t], h, z_t[t], out=y_t[t])  # (1 - z) n + z h
            h = y_t[t]
        ctx.save_for_backward(x, h0, w_ih, w_hh, y, gh, rz, n)
        ctx.sizes = sizes
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, h0, w_ih, w_hh, y, gh, rz, n = ctx.saved_tensors
        sizes = ctx.sizes
        rows, hid = n.shape
        r, z = rz[:, :hid], rz[:, hid:]
        y_t = y.split(sizes)
        # The state each row started from: h0 for timestep 0, else the previous output of
        # the same sequence (a prefix of the previous timestep's rows).
        h_prev = torch.cat([h0] + [y_t[t - 1][:sizes[t]] for t in range(1, len(sizes))])
        # Everything that does not depend on the incoming gradient, for all rows at once:
        # with d = dL/dh_t (total), the gate pre-activation gradients are d * coef.
        dn = (1 - z) * (1 - n * n)                       # d n_pre / d h_t
        coef = x.new_empty(rows, 3, hid)
        torch.mul(dn * gh[:, 2 * hid:], r * (1 - r), out=coef[:, 0])   # r_pre
        torch.mul(h_prev - n, z * (1 - z), out=coef[:, 1])             # z_pre
        torch.mul(dn, r, out=coef[:, 2])                                # W_hn h + b_hn
        d_all = grad_y.clone()                            # dL/d(output), all paths
        dgh = x.new_empty(rows, 3, hid)                   # dL/d(W_hh h + b_hh)
        d_t, coef_t, dgh_t, z_t = (d_all.split(sizes), coef.split(sizes), dgh.split(sizes),
                                   z.split(sizes))
        for t in range(len(sizes) - 1, 0, -1):
            size = sizes[t]
            torch.mul(coef_t[t], d_t[t].unsqueeze(1), out=dgh_t[t])
            prev = d_t[t - 1] if size == sizes[t - 1] else d_t[t - 1][:size]
            prev.addcmul_(d_t[t], z_t[t]).addmm_(dgh_t[t].view(size, -1), w_hh)
        torch.mul(coef_t[0], d_t[0].unsqueeze(1), out=dgh_t[0])
        grad_h0 = torch.addmm(d_t[0] * z_t[0], dgh_t[0].view(sizes[0], -1), w_hh)
        dgh = dgh.view(rows, 3 * hid)
        dgi = dgh.clone()                                 # r and z parts are the same
        torch.mul(d_all, dn, out=dgi[:, 2 * hid:])
        grad_w_hh = torch.mm(dgh.t(), h_prev)
        grad_x = torch.mm(dgi, w_ih) if ctx.needs_input_grad[0] else None
        grad_w_ih = torch.mm(dgi.t(), x)
        return grad_x, grad_h0, grad_w_ih, grad_w_hh, dgi.sum(0), dgh.sum(0), None


def _check(gru: nn.GRU) -> None:
    if gru.bidirectional or not gru.bias or gru.proj_size:
        raise ValueError("trainable.gru: only unidirectional GRUs with biases and no projection")


def packed_gru(gru: nn.GRU, x: torch.Tensor, h0: torch.Tensor, sizes: list[int]
               ) -> torch.Tensor:
    """The last layer's outputs of `gru` over a packed batch (the layout of _GRULayer:
    x [N, I], `sizes` the number of sequences running at each timestep, non-increasing),
    h0 [layers, sizes[0], H]. Dropout between layers as nn.GRU's in training mode.
    Parameters are `gru`'s own, so gradients land where the optimizer expects them."""
    _check(gru)
    if not sizes or sizes[-1] < 1 or any(a < b for a, b in pairwise(sizes)):
        raise ValueError("packed_gru: sizes must be positive and non-increasing")
    sizes = tuple(sizes)
    y = x
    for layer in range(gru.num_layers):
        if layer > 0 and gru.dropout > 0 and gru.training:
            y = dropout(y, gru.dropout)
        y = _GRULayer.apply(y, h0[layer], getattr(gru, f"weight_ih_l{layer}"),
                            getattr(gru, f"weight_hh_l{layer}"),
                            getattr(gru, f"bias_ih_l{layer}"), getattr(gru, f"bias_hh_l{layer}"),
                            sizes)
    return y


def packing(lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The packed layout of sequences of `lengths` (each >= 1): for every packed row its
    sequence and timestep, and the number of sequences running at each timestep. Longer
    sequences come first within a timestep (ties in batch order)."""
    order = torch.argsort(lengths, descending=True, stable=True)
    running = torch.arange(int(lengths.max()))[:, None] < lengths[order][None, :]
    steps, rank = running.nonzero(as_tuple=True)  # row-major: timestep by timestep
    return order[rank], steps, running.sum(1).tolist()


def bptt_gru(gru: nn.GRU, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """nn.GRU(x, h0)[0] for a unidirectional, biased `gru` on a padded batch (every sequence
    runs over all timesteps); x is [B, T, I] when gru.batch_first, else [T, B, I]; h0 is
    [layers, B, H]. Returns the last layer's output in the layout of x."""
    _check(gru)
    time_major = x.transpose(0, 1) if gru.batch_first else x
    t_len, batch = time_major.shape[:2]
    y = packed_gru(gru, time_major.reshape(t_len * batch, -1), h0, [batch] * t_len)
    y = y.view(t_len, batch, -1)
    return y.transpose(0, 1) if gru.batch_first else y
