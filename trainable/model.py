"""GRUDecoder: the official nejm-brain-to-text phoneme decoder (model_training/rnn_model.py).

day layer (x W_d + b_d, identity/zero init) -> softsign -> dropout -> time-major unfold
patching -> multi-layer GRU from one learnable initial state -> linear head to 41 logits.
"""

from __future__ import annotations

import torch
from torch import nn

from trainable.config import ModelConfig
from trainable.data import patched_length
from trainable.gru import bptt_gru, dropout, packed_gru, packing


def patches(x: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """[B, T, F] -> [B, (T - size) // stride + 1, size * F], no padding. Inside a patch the
    feature index is k * F + d for frame k and channel d (time-major, as the official
    unfold + permute)."""
    x = x.unfold(1, size, stride).permute(0, 1, 3, 2)
    return x.reshape(x.shape[0], x.shape[1], -1)


class GRUDecoder(nn.Module):
    def __init__(self, n_features: int, n_days: int, cfg: ModelConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.patch_stride = cfg.patch_stride
        self.n_layers = cfg.n_layers
        # Official names (day_weights / day_biases) so parameter grouping by name matches.
        self.day_weights = nn.ParameterList(
            [nn.Parameter(torch.eye(n_features)) for _ in range(n_days)])
        self.day_biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, n_features)) for _ in range(n_days)])
        self.day_layer_activation = nn.Softsign()
        self.day_layer_dropout = nn.Dropout(cfg.input_dropout)
        self.gru = nn.GRU(n_features * cfg.patch_size, cfg.n_units, num_layers=cfg.n_layers,
                          dropout=cfg.rnn_dropout if cfg.n_layers > 1 else 0.0,
                          batch_first=True, bidirectional=False)
        for name, param in self.gru.named_parameters():
            if "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "weight_ih" in name:
                nn.init.xavier_uniform_(param)
        self.out = nn.Linear(cfg.n_units, cfg.n_classes)
        nn.init.xavier_uniform_(self.out.weight)
        self.h0 = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(1, 1, cfg.n_units)))
        # On CPU, training and evaluation through trainable.gru (same equations over the
        # valid patches only, hand-written backward, cheaper dropout masks); set by the
        # trainer from train.cpu_path. CUDA always uses nn.GRU (cuDNN) and nn.Dropout.
        self.fast_cpu = False

    def output_lengths(self, n_frames: torch.Tensor) -> torch.Tensor:
        return patched_length(n_frames, self.patch_size, self.patch_stride)

    def forward(self, x: torch.Tensor, day: torch.Tensor,
                n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, T', n_classes] of x [B, T, F]. Given each trial's valid frames
        (`n_frames`), the fast CPU path (training and evaluation) computes only the patches
        inside them (the logits after a trial's output length are then 0; CTC and the
        decoder never read them)."""
        return self.decode(self.day_layer(x, day), n_frames)

    def day_layer(self, x: torch.Tensor, day: torch.Tensor) -> torch.Tensor:
        """Each trial's own day's input layer, x @ W_day + b_day (before its activation).

        Separate parameters per day (as the official ParameterList): days absent from a
        batch get no gradient, so AdamW leaves them and their moments untouched. The
        selection is a Python look-up by day, so it stays outside torch.compile: compiled,
        it would specialise the graph on the batch's days and recompile for every new set
        of days (the recompile limit, 8 by default, is reached within a few dozen batches
        of 45 sessions, and torch then runs the model uncompiled)."""
        days = day.tolist()  # one host sync per batch
        weights = torch.stack([self.day_weights[d] for d in days])
        biases = torch.cat([self.day_biases[d] for d in days]).unsqueeze(1)
        return torch.einsum("btd,bdk->btk", x, weights) + biases

    def compile_decoder(self, **options) -> None:
        """Compile everything after the day layer (torch.compile; the CUDA run's setting):
        the graph then depends on shapes only, never on which days a batch holds."""
        self.decode = torch.compile(self.decode, **options)

    def decode(self, x: torch.Tensor, n_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from the day layer's output (activation, dropout, patches, GRU, output)."""
        cpu_fast = self.fast_cpu and x.device.type == "cpu"
        fast = cpu_fast and self.training and torch.is_grad_enabled()
        x = self.day_layer_activation(x)
        x = dropout(x, self.day_layer_dropout.p) if fast else self.day_layer_dropout(x)
        if cpu_fast and n_frames is not None:
            lengths = self.output_lengths(n_frames.cpu())
            if int(lengths.min()) >= 1:
                return self._packed(x, lengths)
        x = patches(x, self.patch_size, self.patch_stride)
        h0 = self.h0.expand(self.n_layers, x.shape[0], -1).contiguous()
        y = bptt_gru(self.gru, x, h0) if fast else self.gru(x, h0)[0]
        return self.out(y)

    def _packed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The GRU and output layer over the valid patches only (trainable.gru.packed_gru)."""
        batch, t_len, n_features = x.shape
        t_out = int(self.output_lengths(torch.tensor(t_len)))  # patches of the padded batch
        seq, step, sizes = packing(lengths.clamp(max=t_out))
        # Patch rows gathered straight from the frames (the layout of `patches`: frame k of
        # the patch, then channel); the gather's backward adds the overlapping windows up.
        first = seq * t_len + step * self.patch_stride
        frames = (first[:, None] + torch.arange(self.patch_size)).view(-1)
        x = x.reshape(batch * t_len, n_features).index_select(0, frames)
        x = x.view(len(seq), self.patch_size * n_features)
        # Every trial starts from the same learnt state, so the packed order needs no h0 rows
        # of its own.
        h0 = self.h0.expand(self.n_layers, batch, -1).contiguous()
        logits = self.out(packed_gru(self.gru, x, h0, sizes))
        padded = logits.new_zeros(batch * t_out, logits.shape[1])
        return padded.index_copy(0, seq * t_out + step, logits).view(batch, t_out, -1)
