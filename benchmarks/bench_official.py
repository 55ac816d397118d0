"""The official-size model (44,315,177 parameters) on whatever device is present.

    python benchmarks/bench_official.py [--steps 3] [--device auto]

Generates a small synthetic dataset in the official shape (45 sessions, 512 features,
4 train-only days), builds the official config (configs/train/official.yaml: bf16 autocast
and torch.compile on CUDA, plain fp32 on CPU) and times a few training steps. The official
run reports about 3.5 h for 120,000 batches on one RTX 4090 (0.105 s per batch).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainable.config import CONFIG_DIR, load_config
from trainable.data import load_dataset
from trainable.loop import TrainingRun
from trainable.synthetic import SyntheticSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    spec = SyntheticSpec.load(overrides={
        "n_sessions": 45, "n_features": 512, "train_only_sessions": 4, "train_trials": 16,
        "val_trials": 4, "test_trials": 1, "first_session_date": "2023.08.11"})
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(spec, Path(tmp) / "data", progress=False)
        device = args.device
        on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        overrides = {"train.device": device, "train.num_steps": 120000,
                     "data.sessions": None, "train.amp": on_gpu, "train.compile": on_gpu}
        cfg = load_config(CONFIG_DIR / "train" / "official.yaml", overrides)
        dataset = load_dataset(root, cfg)
        run = TrainingRun(cfg, dataset)
        n_params = sum(p.numel() for p in run.model.parameters())
        run.train_step()  # warm-up (and compilation on GPU)
        times = []
        for _ in range(args.steps):
            if on_gpu:
                torch.cuda.synchronize()
            start = time.perf_counter()
            run.train_step()
            if on_gpu:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    print(f"official model: {n_params:,} parameters on {run.device} "
          f"(amp={cfg.train.amp}, compile={cfg.train.compile})")
    print(f"median step: {step:.3f} s over {args.steps} steps (batch {cfg.data.batch_size}, "
          f"{cfg.data.days_per_batch} days per batch)")
    print(f"120,000 steps would take {step * 120000 / 3600:.1f} h at this rate "
          "(official: about 3.5 h on one RTX 4090)")


if __name__ == "__main__":
    main()
