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
gradients of the recurrence are one GEMM over all timesteps. Outputs and gradients agree with
nn.GRU to float32 rounding (tests/test_gru.py), so it is a faster route to the same numbers,
not an approximation. Dropout between layers is nn.GRU's (inverted dropout, p = `dropout`,
training only), its mask drawn from the global torch generator as `dropout` below. CUDA
keeps cuDNN.
"""

from __future__ import annotations

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
    """One unidirectional layer: x [T, B, I] ([B, T, I] if batch_first), h0 [B, H] ->
    y [T, B, H] (time-major either way)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, batch_first):
        hid = w_hh.shape[1]
        n_in = x.shape[2]
        gi = torch.addmm(b_ih, x.reshape(-1, n_in), w_ih.t()).view(*x.shape[:2], 3 * hid)
        if batch_first:  # the input projection stays batch-major; its views are time-major
            gi = gi.transpose(0, 1)
        t_len, batch = gi.shape[:2]
        # gh[t] starts as [W_ir x + b_ir + b_hr, W_iz x + b_iz + b_hz, b_hn]; one in-place
        # addmm per timestep then leaves [r and z pre-activations, W_hn h + b_hn] in it.
        gh = x.new_empty(t_len, batch, 3 * hid)
        torch.add(gi[..., :2 * hid], b_hh[:2 * hid], out=gh[..., :2 * hid])
        gh[..., 2 * hid:] = b_hh[2 * hid:]
        rz = x.new_empty(t_len, batch, 2 * hid)
        n = x.new_empty(t_len, batch, hid)
        hs = x.new_empty(t_len + 1, batch, hid)  # hs[0] = h0, hs[t + 1] = output t
        hs[0] = h0
        w_hh_t = w_hh.t()
        # Views of every timestep made once (indexing inside the loop costs more than the
        # arithmetic at these sizes).
        gi_n = gi[..., 2 * hid:].unbind(0)
        gh_t, gh_rz, gh_n = gh.unbind(0), gh[..., :2 * hid].unbind(0), gh[..., 2 * hid:].unbind(0)
        rz_t, r_t, z_t = rz.unbind(0), rz[..., :hid].unbind(0), rz[..., hid:].unbind(0)
        n_t, h_t = n.unbind(0), hs.unbind(0)
        for t in range(t_len):
            gh_t[t].addmm_(h_t[t], w_hh_t)
            torch.sigmoid(gh_rz[t], out=rz_t[t])
            torch.addcmul(gi_n[t], r_t[t], gh_n[t], out=n_t[t]).tanh_()
            torch.lerp(n_t[t], h_t[t], z_t[t], out=h_t[t + 1])  # (1 - z) n + z h
        ctx.save_for_backward(x, w_ih, w_hh, hs, gh, rz, n)
        ctx.batch_first = batch_first
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_y):
        x, w_ih, w_hh, hs, gh, rz, n = ctx.saved_tensors
        t_len, batch, hid = n.shape
        r, z = rz[..., :hid], rz[..., hid:]
        # Everything that does not depend on the incoming gradient, for all timesteps at once:
        # with d = dL/dh_t (total), the gate pre-activation gradients are d * coef.
        dn = (1 - z) * (1 - n * n)                       # d n_pre / d h_t
        coef = x.new_empty(t_len, batch, 3, hid)
        torch.mul(dn * gh[..., 2 * hid:], r * (1 - r), out=coef[:, :, 0])   # r_pre
        torch.mul(hs[:-1] - n, z * (1 - z), out=coef[:, :, 1])              # z_pre
        torch.mul(dn, r, out=coef[:, :, 2])                                  # W_hn h + b_hn
        d_all = x.new_empty(t_len, batch, hid)           # dL/d(output t), all paths
        dgh = x.new_empty(t_len, batch, 3, hid)          # dL/d(W_hh h + b_hh)
        gy_t, d_t, coef_t, dgh_t, z_t = (grad_y.unbind(0), d_all.unbind(0), coef.unbind(0),
                                         dgh.unbind(0), z.unbind(0))
        d_t[-1].copy_(gy_t[-1])
        for t in range(t_len - 1, 0, -1):
            torch.mul(coef_t[t], d_t[t].unsqueeze(1), out=dgh_t[t])
            torch.addmm(torch.addcmul(gy_t[t - 1], d_t[t], z_t[t]), dgh_t[t].view(batch, -1),
                        w_hh, out=d_t[t - 1])
        torch.mul(coef_t[0], d_t[0].unsqueeze(1), out=dgh_t[0])
        grad_h0 = torch.addmm(d_t[0] * z_t[0], dgh_t[0].view(batch, -1), w_hh)
        dgh = dgh.view(t_len, batch, 3 * hid)
        dgi = dgh.clone()                                 # r and z parts are the same
        torch.mul(d_all, dn, out=dgi[..., 2 * hid:])
        grad_w_hh = torch.mm(dgh.view(-1, 3 * hid).t(), hs[:-1].reshape(-1, hid))
        if ctx.batch_first:
            dgi = dgi.transpose(0, 1)
        dgi = dgi.reshape(-1, 3 * hid)
        grad_x = torch.mm(dgi, w_ih).view(x.shape)
        grad_w_ih = torch.mm(dgi.t(), x.reshape(-1, x.shape[2]))
        return (grad_x, grad_h0, grad_w_ih, grad_w_hh, dgi.sum(0),
                dgh.view(-1, 3 * hid).sum(0), None)


def bptt_gru(gru: nn.GRU, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """nn.GRU(x, h0)[0] for a unidirectional, biased `gru`; x is [B, T, I] when
    gru.batch_first, else [T, B, I]; h0 is [layers, B, H]. Returns the last layer's output
    in the layout of x. Parameters are `gru`'s own, so gradients land where the optimizer
    expects them."""
    if gru.bidirectional or not gru.bias or gru.proj_size:
        raise ValueError("bptt_gru: only unidirectional GRUs with biases and no projection")
    y = x
    for layer in range(gru.num_layers):
        if layer > 0 and gru.dropout > 0 and gru.training:
            y = dropout(y, gru.dropout)
        y = _GRULayer.apply(y, h0[layer], getattr(gru, f"weight_ih_l{layer}"),
                            getattr(gru, f"weight_hh_l{layer}"),
                            getattr(gru, f"bias_ih_l{layer}"), getattr(gru, f"bias_hh_l{layer}"),
                            gru.batch_first and layer == 0)
    return y.transpose(0, 1) if gru.batch_first else y
