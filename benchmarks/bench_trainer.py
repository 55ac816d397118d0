"""Proxy training step: model-FLOP utilisation and overhead against a bare PyTorch loop.

    python benchmarks/bench_trainer.py [--steps 40] [--data DIR]

Prints two ratios (targets from the trainer issue):
- MFU = analytic FLOPs per step / step time / 1-thread sgemm rate measured in this run;
- overhead = trainer step time / bare loop step time (same model, batch, optimizer).
Run on an otherwise idle machine: timings on a shared 2-core VM vary by +-25%.
"""

from __future__ import annotations

import argparse
import time

import torch

from trainable.augment import transform
from trainable.config import load_config
from trainable.data import DayBatchSampler, load_dataset
from trainable.decode import ctc_loss_per_utterance
from trainable.loop import TrainingRun
from trainable.model import GRUDecoder
from trainable.optim import build_optimizer
from trainable.source import resolve_data_root


def sgemm_rate(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


def step_flops(batch: dict, model: GRUDecoder, n_features: int, cfg) -> float:
    """Matmul FLOPs of one forward + backward pass (backward = 2x forward)."""
    b, t = batch["features"].shape[:2]
    t_out = (t - cfg.model.patch_size) // cfg.model.patch_stride + 1
    h, c = cfg.model.n_units, cfg.model.n_classes
    day = 2 * b * t * n_features * n_features
    gru = 0
    width = n_features * cfg.model.patch_size
    for _ in range(cfg.model.n_layers):
        gru += 2 * b * t_out * 3 * h * (width + h)
        width = h
    head = 2 * b * t_out * h * c
    return 3 * (day + gru + head)


def timed(fn, steps: int) -> float:
    """Total seconds of `steps` calls after 3 warm-up calls."""
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(overrides={"train.num_threads": 1, "train.num_steps": 10**6})
    root, _ = resolve_data_root(args.data, progress=False)
    dataset = load_dataset(root, cfg)

    run = TrainingRun(cfg, dataset)
    # Both loops see the same batches in the same order (a sampler with the trainer's seed).
    sampler = DayBatchSampler(dataset.train, cfg.data.batch_size, cfg.data.days_per_batch,
                              cfg.data.seed)
    batches = [dataset.train.batch(sampler.next_indices()) for _ in range(args.steps + 3)]
    trainer_s = timed(run.train_step, args.steps)

    # The bare loop: the same work with nothing around it (batches prepared in advance,
    # no monitors, no bookkeeping).
    torch.manual_seed(0)
    model = GRUDecoder(dataset.n_features, len(dataset.sessions), cfg.model)
    optimizer, scheduler = build_optimizer(model, cfg.optim, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    params = list(model.parameters())
    queue = iter(batches)

    def bare_step():
        batch = next(queue)
        x, n = transform(batch["features"], batch["n_frames"], cfg.augment, run.kernel, gen,
                         True)
        logits = model(x, batch["day"])
        loss = ctc_loss_per_utterance(logits, model.output_lengths(n), batch["labels"],
                                      batch["label_lens"]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()

    bare_s = timed(bare_step, args.steps)
    rate = sgemm_rate()
    flops = sum(step_flops(b, model, dataset.n_features, cfg) for b in batches[3:])
    per_step = flops / args.steps
    batch = batches[3]
    print(f"proxy model: {sum(p.numel() for p in params):,} parameters, batch "
          f"{tuple(batch['features'].shape)}")
    print(f"1-thread sgemm (1024^3): {rate / 1e9:.1f} GFLOP/s")
    print(f"analytic FLOPs per step: {per_step / 1e9:.3f} GFLOP (mean over {args.steps} "
          "batches)")
    print(f"trainer step: {trainer_s / args.steps * 1e3:.1f} ms; bare loop step: "
          f"{bare_s / args.steps * 1e3:.1f} ms (mean of {args.steps}, same batches)")
    print(f"MFU (trainer) = {flops / trainer_s / rate:.3f}   (target >= 0.6)")
    print(f"MFU (bare loop) = {flops / bare_s / rate:.3f}")
    print(f"trainer / bare loop = {trainer_s / bare_s:.3f}   (target <= 1.05)")


if __name__ == "__main__":
    main()
