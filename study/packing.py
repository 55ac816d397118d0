"""Does the largest training batch fit one trial's share of a GPU? Checked before a study
whose trials train on GPUs starts, so that a packing of several trials per GPU that cannot
hold its worst batch stops in one line instead of failing trials hours in.

The check trains one step on the worst batch the data allows (data.batch_size trials, the
longest of the training split, so padded to the longest trial) in a Ray task that asks for
exactly a trial's resources, under the trial's memory cap (train.gpu_memory_fraction),
and reads the step's peak allocated memory. Augmentation's random cut only shortens a
batch, so this bounds every step of every trial of the study's config.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from trainable.config import Config
from trainable.data import open_dataset
from trainable.errors import UserError

TIMED_STEPS = 5  # ordinary steps timed after the worst batch, for the cost projection


def worst_batch_indices(lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """The batch_size longest trials (the padded batch is as long as the longest trial and
    holds as many trials as a batch can)."""
    order = np.argsort(np.asarray(lengths), kind="stable")[::-1]
    return np.sort(order[:batch_size])


def worst_batch_peak(cfg_dump: dict, dataset) -> dict:
    """One training step on the worst batch on this process's GPU; the peak allocated
    memory and the share it was allowed, in bytes. Runs inside the Ray task."""
    import torch

    from trainable.loop import TrainingRun

    dataset = open_dataset(dataset)
    cfg = Config.model_validate(cfg_dump)
    run = TrainingRun(cfg, dataset)
    if run.device.type != "cuda":
        return {"device": run.device.type}
    batch = dataset.train.batch(worst_batch_indices(dataset.train.n_frames,
                                                    cfg.data.batch_size))
    total = torch.cuda.get_device_properties(run.device).total_memory
    share = total * (cfg.train.gpu_memory_fraction or 1.0)
    try:
        run.train_step(batch)
        torch.cuda.synchronize(run.device)
    except torch.cuda.OutOfMemoryError:
        return {"device": "cuda", "oom": True, "share": share, "total": total,
                "length": int(batch["n_frames"].max()), "trials": len(batch["n_frames"])}
    peak = torch.cuda.max_memory_allocated(run.device)
    # The step rate on ordinary batches, for the study's cost projection (the first steps
    # pay for warm-up; TIMED_STEPS after them).
    for _ in range(2):
        run.train_step()
    torch.cuda.synchronize(run.device)
    start = time.perf_counter()
    for _ in range(TIMED_STEPS):
        run.train_step()
    torch.cuda.synchronize(run.device)
    return {"device": "cuda", "oom": False, "share": share, "total": total, "peak": peak,
            "length": int(batch["n_frames"].max()), "trials": len(batch["n_frames"]),
            "s_per_step": (time.perf_counter() - start) / TIMED_STEPS}


def verdict_line(result: dict, gpus_per_trial: float) -> str:
    """The line the study prints, or raises UserError when the batch does not fit."""
    if result.get("device") != "cuda":
        return ("packing check skipped: the check's task found no GPU (trials will say so "
                "themselves)")
    gib = 2**30
    what = (f"the largest training batch ({result['trials']} trials padded to "
            f"{result['length']:,} bins)")
    share = f"{result['share'] / gib:.1f} GiB of the GPU's {result['total'] / gib:.1f} GiB"
    if result["oom"]:
        raise UserError(f"--gpus-per-trial {gpus_per_trial:g}: {what} does not fit a trial's "
                        f"share ({share}); give each trial more of a GPU (fewer trials per "
                        "GPU) or lower data.batch_size")
    return (f"packing check: {what} peaks at {result['peak'] / gib:.2f} GiB of a trial's "
            f"{share}")


def check_packing(cfg: Config, data, cpus_per_trial: float, gpus_per_trial: float
                  ) -> float | None:
    """Inside a Ray session, before the study: the worst batch in a task with a trial's
    resources; returns the measured seconds per ordinary step on a trial's share (None:
    CPU trials, nothing to check, or no GPU found)."""
    if gpus_per_trial <= 0:
        return None
    import ray

    task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)(worst_batch_peak)
    result = ray.get(task.remote(cfg.model_dump(mode="json"), data))
    print(verdict_line(result, gpus_per_trial), file=sys.stderr, flush=True)
    return result.get("s_per_step")
