"""AdamW with the official parameter groups, and the warm-up + cosine schedule.

Groups (rnn_trainer.create_optimizer): (1) `gru.bias*` / `out.bias`: no weight decay;
(2) day layers (`day_*`): their own lr schedule and weight_decay_day; (3) the rest
(GRU weights, out.weight, h0): weight_decay.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainable.config import OptimConfig


def lr_factor(step: int, lr_max: float, lr_min: float, warmup: int, decay: int,
              schedule: str = "cosine") -> float:
    """Multiplier of a group's initial lr at `step`, official formulas.

    cosine (rnn_trainer.create_cosine_lr_scheduler, a LambdaLR per group):
    step < warmup: step / warmup (step 0 trains at lr 0); warmup <= step < decay: cosine
    from 1 to r = lr_min/lr_max over decay - warmup steps; after: r.
    linear (torch LinearLR from 1 to r = lr_min/lr_max over `decay` steps): no warm-up,
    1 - (1 - r) * min(step, decay) / decay; `warmup` is ignored.
    """
    ratio = lr_min / lr_max
    if schedule == "linear":
        return 1.0 - (1.0 - ratio) * min(step, decay) / decay
    if step < warmup:
        return step / warmup
    if step < decay:
        progress = (step - warmup) / (decay - warmup)
        return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return ratio


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    no_decay, day, rest = [], [], []
    for name, param in model.named_parameters():
        if "gru.bias" in name or "out.bias" in name:
            no_decay.append(param)
        elif "day_" in name:
            day.append(param)
        else:
            rest.append(param)
    day_lr = cfg.day_schedule()[0]
    return [
        {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr_max, "group": "no_decay"},
        {"params": day, "weight_decay": cfg.weight_decay_day, "lr": day_lr, "group": "day"},
        {"params": rest, "weight_decay": cfg.weight_decay, "lr": cfg.lr_max, "group": "rest"},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device,
                    fused: bool | None = None
                    ) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """`fused`: torch's fused AdamW kernel, as the official code (`fused=True`); default
    on CUDA only, so the CPU reference path keeps the foreach kernel it always had. The fast
    CPU path asks for it: the same update to float32 rounding, 0.8 ms per proxy step
    instead of 3.6."""
    kind = torch.optim.AdamW if cfg.weight_decay_mode == "decoupled" else torch.optim.Adam
    optimizer = kind(param_groups(model, cfg), lr=cfg.lr_max, betas=(cfg.beta1, cfg.beta2),
                     eps=cfg.eps, weight_decay=cfg.weight_decay,
                     fused=device.type == "cuda" if fused is None else fused)
    main = (cfg.lr_max, cfg.lr_min, cfg.lr_warmup_steps, cfg.lr_decay_steps)
    # The official linear schedule is one LinearLR over all groups: the day layers start
    # at their own lr (lr_max_day) and follow the main factor, lr_min/lr_max over
    # lr_decay_steps; the day-specific min, warm-up and decay apply to cosine only.
    day = cfg.day_schedule() if cfg.schedule == "cosine" else main
    lambdas = [
        (lambda s, a=args: lr_factor(s, *a, cfg.schedule))
        for args in (main, day, main)
    ]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
    return optimizer, scheduler


@torch.no_grad()
def eps_dominance(optimizer: torch.optim.Optimizer) -> float:
    """Share of Adam second-moment coordinates with sqrt(v_hat) < eps.

    Where eps dominates sqrt(v_hat), the Adam update is about lr * m_hat / eps: momentum SGD
    with step lr/eps (Choi et al. 2019, arXiv 1910.05446).
    """
    below, total = 0, 0
    for group in optimizer.param_groups:
        beta2, eps = group["betas"][1], group["eps"]
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state or "exp_avg_sq" not in state:
                continue
            step = float(state["step"])
            v_hat = state["exp_avg_sq"] / (1.0 - beta2 ** step)
            below += int((v_hat.sqrt() < eps).sum())
            total += v_hat.numel()
    return below / total if total else 0.0
