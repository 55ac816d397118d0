"""Augmentations as pure tensor functions, in the official order (rnn_trainer.transform_data).

Train: static gain -> white noise -> constant offset -> random walk -> random cut, then
Gaussian smoothing; validation: smoothing only. Every random draw comes from the
`torch.Generator` passed in, so a run is reproducible and resumable.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter1d

from trainable.config import AugmentConfig


def static_gain(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """Multiply each trial by I + N(0, std) (a [F, F] matrix per trial)."""
    n_features = x.shape[-1]
    noise = torch.randn((x.shape[0], n_features, n_features), generator=gen,
                        device=x.device, dtype=x.dtype) * std
    gain = torch.eye(n_features, device=x.device, dtype=x.dtype) + noise
    return torch.bmm(x, gain)


def white_noise(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    return x + torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * std


def constant_offset(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """One offset per trial and channel, constant over time: shape (B, 1, F)."""
    shape = (x.shape[0], 1, x.shape[2])
    return x + torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype) * std


def random_walk(x: torch.Tensor, std: float, axis: int, gen: torch.Generator) -> torch.Tensor:
    steps = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * std
    return x + torch.cumsum(steps, dim=axis)


def random_cut(x: torch.Tensor, n_frames: torch.Tensor, max_exclusive: int,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the first c frames of every trial, c = randint(0, max_exclusive), once per batch."""
    cut = int(torch.randint(0, max_exclusive, (1,), generator=gen, device=gen.device).item())
    return x[:, cut:], n_frames - cut


def smoothing_kernel(std: float, size: int) -> np.ndarray:
    """Official gauss_smooth kernel: gaussian_filter1d of a unit impulse of length `size`,
    taps above 0.01 kept, renormalised to sum 1 (std 2 -> 9 taps)."""
    impulse = np.zeros(size)
    impulse[size // 2] = 1.0
    kernel = gaussian_filter1d(impulse, std)
    kernel = kernel[kernel > 0.01]
    return (kernel / kernel.sum()).astype(np.float32)


def gauss_smooth(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise conv along time, zero 'same' padding, non-causal, length unchanged."""
    n_features = x.shape[-1]
    weight = kernel.to(x.dtype).to(x.device).view(1, 1, -1).repeat(n_features, 1, 1)
    y = F.conv1d(x.transpose(1, 2), weight, padding="same", groups=n_features)
    return y.transpose(1, 2)


def transform(x: torch.Tensor, n_frames: torch.Tensor, cfg: AugmentConfig,
              kernel: torch.Tensor | None, gen: torch.Generator | None, train: bool
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the official pipeline. `kernel` is smoothing_kernel(...) as a tensor or None."""
    if train:
        if cfg.static_gain_std > 0:
            x = static_gain(x, cfg.static_gain_std, gen)
        if cfg.white_noise_std > 0:
            x = white_noise(x, cfg.white_noise_std, gen)
        if cfg.constant_offset_std > 0:
            x = constant_offset(x, cfg.constant_offset_std, gen)
        if cfg.random_walk_std > 0:
            x = random_walk(x, cfg.random_walk_std, cfg.random_walk_axis, gen)
        if cfg.random_cut > 0:
            x, n_frames = random_cut(x, n_frames, cfg.random_cut, gen)
    if kernel is not None:
        x = gauss_smooth(x, kernel)
    return x, n_frames
