"""The GPU path, measured in one run of under ten minutes on a machine with a GPU.

    python benchmarks/device_check.py                 # on a GPU machine (about 6 min)
    python benchmarks/device_check.py --device cpu --quick    # checks the script itself

Prints one line per measurement, for the README:
  1. official size (5x768 GRU, 512 features, 45 sessions; bf16 autocast and torch.compile
     as the official run): median seconds per training step with batches built on demand
     and built ahead (train.prefetch_batches 2, pinned memory), the projected 120,000
     steps against the official run's ~3.5 h on one RTX 4090, and the peak GPU memory;
  2. save and resume on the device: a proxy run interrupted after its second evaluation,
     saved, loaded into a fresh run and continued, against the same run uninterrupted
     (the training losses must be identical);
  3. sharing one GPU: 1, 2 and 4 proxy trials at once, each in its own process capped to
     its share of the GPU's memory (train.gpu_memory_fraction), with each trial's steps/s,
     the total, and each trial's peak memory.
No test depends on it; it needs the built-in synthetic data generator only (no download).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainable.config import CONFIG_DIR, load_config
from trainable.data import load_dataset
from trainable.loop import TrainingRun
from trainable.synthetic import SyntheticSpec, generate

OFFICIAL_STEP_4090 = 3.5 * 3600 / 120_000  # s per batch in the official run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def official_data(folder: Path, quick: bool) -> Path:
    """Synthetic data in the official shape (45 sessions, 512 features, 4 train-only)."""
    spec = SyntheticSpec.load(overrides={
        "n_sessions": 45, "n_features": 64 if quick else 512, "train_only_sessions": 4,
        "train_trials": 16, "val_trials": 4, "test_trials": 1,
        "first_session_date": "2023.08.11"})
    return generate(spec, folder / "official", progress=False)


def official_speed(root: Path, device: str, steps: int, prefetch: int, quick: bool) -> dict:
    gpu = device == "cuda"
    overrides = {"train.device": device, "data.sessions": None, "train.amp": gpu,
                 "train.compile": gpu, "train.prefetch_batches": prefetch}
    if quick:
        overrides.update({"data.n_features": 64, "model.n_units": 64, "model.n_layers": 2})
    cfg = load_config(CONFIG_DIR / "train" / "official.yaml", overrides)
    run = TrainingRun(cfg, load_dataset(root, cfg))
    for _ in range(3):  # compilation and the first graphs
        run.train_step()
    times = []
    for _ in range(steps):
        _sync(run.device)
        start = time.perf_counter()
        run.train_step()
        _sync(run.device)
        times.append(time.perf_counter() - start)
    run.batches.close()
    peak = torch.cuda.max_memory_allocated(run.device) / 2**20 if gpu else 0.0
    return {"step": statistics.median(times), "peak_mb": peak,
            "params": sum(p.numel() for p in run.model.parameters())}


def proxy_config(device: str, fraction: float | None = None, steps: int = 60):
    overrides = {"train.device": device, "train.num_steps": steps, "train.eval_every": 20,
                 "train.num_threads": 1}
    if fraction is not None and device == "cuda":
        overrides["train.gpu_memory_fraction"] = fraction
    return load_config(CONFIG_DIR / "train" / "proxy.yaml", overrides)


def resume_check(root: Path, device: str, folder: Path) -> tuple[bool, int]:
    cfg = proxy_config(device)
    dataset = load_dataset(root, cfg)
    full = [r["train_loss"] for r in TrainingRun(cfg, dataset)]
    first = TrainingRun(cfg, dataset)
    reports = iter(first)
    head = [next(reports)["train_loss"] for _ in range(2)]
    first.save(folder / "state.pt")
    resumed = TrainingRun(cfg, dataset)
    resumed.load(folder / "state.pt")
    tail = [r["train_loss"] for r in resumed]
    return head + tail == full, len(full)


def _shared_trial(job: tuple[str, str, float, int]) -> dict:
    root, device, fraction, steps = job
    cfg = proxy_config(device, fraction, steps)
    run = TrainingRun(cfg, load_dataset(root, cfg))
    start = time.perf_counter()
    for _ in run:
        pass
    _sync(run.device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(run.device) / 2**20 if run.device.type == "cuda" \
        else 0.0
    return {"steps_per_s": steps / elapsed, "peak_mb": peak}


def sharing(root: Path, device: str, k: int, steps: int) -> list[dict]:
    with mp.get_context("spawn").Pool(k) as pool:
        return pool.map(_shared_trial, [(str(root), device, 1.0 / k, steps)] * k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=20, help="timed official-size steps")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: checks that the script runs (any device)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device_check: no CUDA device here; run it on a GPU machine (or "
                         "--device cpu --quick to check the script)")
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"device check on {name}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = official_data(folder, args.quick)
        for prefetch in (0, 2):
            speed = official_speed(root, args.device, args.steps, prefetch, args.quick)
            print(f"official size ({speed['params']:,} parameters), prefetch {prefetch}: "
                  f"median {speed['step']:.3f} s/step, 120,000 steps = "
                  f"{speed['step'] * 120_000 / 3600:.1f} h (official run on an RTX 4090: "
                  f"{OFFICIAL_STEP_4090:.3f} s/step, 3.5 h); peak {speed['peak_mb']:,.0f} MB")
        proxy_root = generate(SyntheticSpec.load(), folder / "proxy", progress=False)
        same, n = resume_check(proxy_root, args.device, folder)
        print(f"save and resume on {args.device}: {n} evaluations, losses "
              f"{'identical' if same else 'DIFFERENT'} to the uninterrupted run")
        steps = 20 if args.quick else 200
        for k in (1, 2, 4):
            trials = sharing(proxy_root, args.device, k, steps)
            total = sum(t["steps_per_s"] for t in trials)
            print(f"{k} proxy trial(s) sharing the device: "
                  + ", ".join(f"{t['steps_per_s']:.1f}" for t in trials)
                  + f" steps/s (total {total:.1f}); peak "
                  + ", ".join(f"{t['peak_mb']:,.0f}" for t in trials) + " MB")


if __name__ == "__main__":
    main()
