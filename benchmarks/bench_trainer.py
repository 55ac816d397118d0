"""Proxy training step: fast vs reference CPU path, where the time goes, MFU, evaluation share.

    python benchmarks/bench_trainer.py [--steps 60] [--data DIR] [--eval-every 20]

Prints, on identical batches (two trainers with the same seeds draw the same batches and
augmentation noise; only the dropout masks differ between the paths):
- steps/s of `train.cpu_path=fast` (trainable/gru.py) and `reference` (nn.GRU, nn.Dropout)
  and their ratio (target >= 1.5), measured in alternating blocks so machine noise hits both;
- a torch.profiler breakdown of one step of each path by stage;
- MFU = analytic matmul FLOPs per step as computed (the padded batch on the reference path,
  the valid patches on the fast path) / step time / this run's 1-thread fp32 sgemm rate
  (both paths compute in fp32 on CPU: train.amp applies to CUDA only);
- evaluation time of each path, its share of a trial at the given eval_every (the grid's
  default: 20 of 400) and the ratio of whole trials (training steps and evaluations);
- trainer / bare loop overhead (the same step with nothing around it).
Run on an otherwise idle machine: timings on a shared 2-core VM vary by +-25%.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from trainable.augment import transform
from trainable.batches import DayBatchSampler
from trainable.config import load_config
from trainable.data import load_dataset
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


def step_flops(batch: dict, n_features: int, cfg, packed: bool) -> float:
    """Matmul FLOPs of one forward + backward pass (backward = 2x forward) as computed:
    the GRU and output layer over every padded patch (reference path) or over the valid
    patches only (`packed`, the fast path)."""
    b, t = batch["features"].shape[:2]
    t_out = (t - cfg.model.patch_size) // cfg.model.patch_stride + 1
    rows = b * t_out
    if packed:
        # the random cut drops randint(0, random_cut) frames: (random_cut - 1) / 2 on average
        n = batch["n_frames"] - max(cfg.augment.random_cut - 1, 0) / 2
        rows = int(((n - cfg.model.patch_size) // cfg.model.patch_stride + 1).sum())
    h, c = cfg.model.n_units, cfg.model.n_classes
    day = 2 * b * t * n_features * n_features
    gru = 0
    width = n_features * cfg.model.patch_size
    for _ in range(cfg.model.n_layers):
        gru += 2 * rows * 3 * h * (width + h)
        width = h
    head = 2 * rows * h * c
    return 3 * (day + gru + head)


def alternate(fns: dict, steps: int, block: int = 10) -> dict[str, float]:
    """Seconds per call of each function, run in alternating blocks of `block` calls after
    3 warm-up calls each (so a slow spell of a shared machine hits every function)."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    total = dict.fromkeys(fns, 0.0)
    done = 0
    while done < steps:
        n = min(block, steps - done)
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(n):
                fn()
            total[name] += time.perf_counter() - start
        done += n
    return {name: t / steps for name, t in total.items()}


# Stages of a step: record_function scopes of the instrumented step below, plus the
# backward nodes of the GRU, the CTC loss and the day layer, found by name.
BACKWARD_STAGES = {
    "_GRULayerBackward": "GRU backward (recurrence + input projection)",
    "CtcLossBackward": "CTC backward",
    "UnfoldBackward": "patching backward",
    "IndexSelectBackward": "patching backward",
    "BmmBackward": "day layer backward",
    "ConvolutionBackward": "smoothing backward",
}


def breakdown(model, optimizer, scheduler, params, batches, cfg, kernel, gen, steps=10):
    """Milliseconds per step by stage (torch.profiler, CPU time of the stage's scope)."""

    def step(batch):
        with record_function("stage: augmentation + smoothing"):
            x, n = transform(batch["features"], batch["n_frames"], cfg.augment, kernel, gen,
                             True)
        with record_function("stage: forward"):
            logits = model(x, batch["day"], n)
        with record_function("stage: CTC loss"):
            loss = ctc_loss_per_utterance(logits, model.output_lengths(n), batch["labels"],
                                          batch["label_lens"]).mean()
        optimizer.zero_grad(set_to_none=True)
        with record_function("stage: backward"):
            loss.backward()
        with record_function("stage: clip + AdamW + schedule"):
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()

    for batch in batches[:3]:
        step(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for batch in batches[3:3 + steps]:
            step(batch)
        wall = time.perf_counter() - start
    ms = defaultdict(float)
    for ev in prof.key_averages():
        if ev.key.startswith("stage: "):
            ms[ev.key[7:]] += ev.cpu_time_total / 1e3 / steps
        for name, stage in BACKWARD_STAGES.items():
            if ev.key.startswith(name):
                ms["  of which " + stage] += ev.cpu_time_total / 1e3 / steps
        if ev.key in ("aten::gru",):
            ms["  of which nn.GRU forward"] += ev.cpu_time_total / 1e3 / steps
        if ev.key.startswith("_GRULayer") and not ev.key.startswith("_GRULayerBackward"):
            ms["  of which GRU forward"] += ev.cpu_time_total / 1e3 / steps
        if ev.key in ("aten::bernoulli_", "aten::rand_like"):
            ms["  of which dropout masks"] += ev.cpu_time_total / 1e3 / steps
    return dict(ms), wall / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--data", default=None)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--budget", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = {"train.num_threads": 1, "train.num_steps": 10**6}
    cfg = load_config(overrides=base)
    root, _ = resolve_data_root(args.data, progress=False)
    dataset = load_dataset(root, cfg)

    runs = {path: TrainingRun(load_config(overrides={**base, "train.cpu_path": path}), dataset)
            for path in ("fast", "reference")}
    per_step = alternate({p: r.train_step for p, r in runs.items()}, args.steps)
    fast, ref = per_step["fast"], per_step["reference"]

    # The same batches for the instrumented and bare loops (a sampler with the trainer's seed).
    sampler = DayBatchSampler(dataset.train, cfg.data.batch_size, cfg.data.days_per_batch,
                              cfg.data.seed)
    batches = [dataset.train.batch(sampler.next_indices()) for _ in range(args.steps + 3)]
    kernel = runs["fast"].kernel
    stages = {}
    for path in ("fast", "reference"):
        torch.manual_seed(0)
        model = GRUDecoder(dataset.n_features, len(dataset.sessions), cfg.model)
        model.fast_cpu = path == "fast"
        opt, sched = build_optimizer(model, cfg.optim, torch.device("cpu"),
                                     fused=path == "fast")
        gen = torch.Generator().manual_seed(0)
        stages[path] = breakdown(model, opt, sched, list(model.parameters()), batches, cfg,
                                 kernel, gen)

    # The bare loop: the fast step with nothing around it (batches prepared in advance,
    # no monitors, no bookkeeping).
    torch.manual_seed(0)
    model = GRUDecoder(dataset.n_features, len(dataset.sessions), cfg.model)
    model.fast_cpu = True
    optimizer, scheduler = build_optimizer(model, cfg.optim, torch.device("cpu"), fused=True)
    gen = torch.Generator().manual_seed(0)
    params = list(model.parameters())
    queue = iter(batches)

    def bare_step():
        batch = next(queue)
        x, n = transform(batch["features"], batch["n_frames"], cfg.augment, kernel, gen, True)
        logits = model(x, batch["day"], n)
        loss = ctc_loss_per_utterance(logits, model.output_lengths(n), batch["labels"],
                                      batch["label_lens"]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()

    bare = alternate({"bare": bare_step}, args.steps)["bare"]
    eval_s = alternate({p: r.evaluate for p, r in runs.items()}, 3, block=1)
    rate = sgemm_rate()
    flops = {path: sum(step_flops(b, dataset.n_features, cfg, path == "fast")
                       for b in batches[3:]) / args.steps for path in ("fast", "reference")}

    batch = batches[3]
    print(f"proxy model: {sum(p.numel() for p in params):,} parameters, batch "
          f"{tuple(batch['features'].shape)}; {args.steps} steps per path, 1 thread")
    print(f"1-thread fp32 sgemm (1024^3): {rate / 1e9:.1f} GFLOP/s; analytic matmul FLOPs "
          f"per step as computed: {flops['reference'] / 1e9:.3f} GFLOP over the padded batch "
          f"(reference), about {flops['fast'] / 1e9:.3f} GFLOP over the valid patches (fast)")
    print(f"reference path (nn.GRU): {ref * 1e3:6.1f} ms/step  {1 / ref:5.2f} steps/s  "
          f"MFU {flops['reference'] / ref / rate:.3f}")
    print(f"fast path (trainable.gru): {fast * 1e3:6.1f} ms/step  {1 / fast:5.2f} steps/s  "
          f"MFU {flops['fast'] / fast / rate:.3f}")
    print(f"fast / reference steps/s = {ref / fast:.2f}x   (target >= 1.5)")
    for path in ("reference", "fast"):
        ms, wall = stages[path]
        print(f"\nwhere a {path}-path step goes (torch.profiler, ms per step; profiled "
              f"step {wall:.1f} ms):")
        for name, value in sorted(ms.items(), key=lambda kv: kv[0].startswith("  ")):
            print(f"  {name:<52} {value:7.1f}")
    evals = args.budget // args.eval_every + 1
    trial = {p: args.budget * per_step[p] + evals * eval_s[p] for p in per_step}
    print(f"\nevaluation: {eval_s['reference'] * 1e3:.0f} ms reference, "
          f"{eval_s['fast'] * 1e3:.0f} ms fast; {evals} evaluations in a {args.budget}-step "
          f"trial = {evals * eval_s['fast'] / trial['fast']:.1%} of its compute on the fast "
          "path")
    print(f"a {args.budget}-step trial with its evaluations: reference {trial['reference']:.1f} "
          f"s, fast {trial['fast']:.1f} s = {trial['reference'] / trial['fast']:.2f}x")
    print(f"trainer / bare loop (fast path) = {fast / bare:.3f}   (target <= 1.05)")


if __name__ == "__main__":
    main()
