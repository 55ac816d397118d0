"""The training loop: a plain iterator of evaluation reports with full-state checkpoints.

    run = TrainingRun(cfg, dataset)
    for report in run:          # one report per evaluation, see trainable.contract
        print(report)

Evaluations happen after batch 0, every `eval_every` batches and after the last batch, as
the official trainer (61 validations for 120,000 batches). `report["step"]` counts batches
done. A NaN/Inf loss or gradient never raises: the run stops at once as `diverged` and its
last report carries finite sentinels (trainable.contract).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from trainable import contract, monitor
from trainable.augment import smoothing_kernel, transform
from trainable.batches import Batches, batch_sampler, feature_moments, validation_batches
from trainable.config import Config
from trainable.data import Dataset
from trainable.decode import (
    ctc_loss_per_utterance,
    edit_distances,
    greedy_decode,
    phoneme_error_rate,
)
from trainable.model import GRUDecoder
from trainable.optim import build_optimizer, eps_dominance


def is_evaluation_step(step: int, num_steps: int, eval_every: int) -> bool:
    """Evaluate after batch 0, every eval_every batches, and after the last batch."""
    return (step - 1) % eval_every == 0 or step == num_steps


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TrainingRun:
    def __init__(self, cfg: Config, dataset: Dataset):
        self.cfg = cfg
        self.dataset = dataset
        self.device = resolve_device(cfg.train.device)
        if self.device.type == "cuda":  # the official run's numerics settings
            torch.backends.cudnn.deterministic = True
            torch.set_float32_matmul_precision("high")
            if cfg.train.gpu_memory_fraction is not None:
                torch.cuda.set_per_process_memory_fraction(cfg.train.gpu_memory_fraction,
                                                           self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        seed_everything(cfg.train.seed)
        self.model = GRUDecoder(dataset.n_features, len(dataset.sessions), cfg.model).to(
            self.device)
        # torch.compile is for the CUDA run; a compiled CPU model keeps nn.GRU.
        self.model.fast_cpu = cfg.train.cpu_path == "fast" and not cfg.train.compile
        if cfg.train.compile:
            self.model.compile_decoder()
        self.forward = self.model
        self.optimizer, self.scheduler = build_optimizer(
            self.model, cfg.optim, self.device,
            fused=self.device.type == "cuda" or self.model.fast_cpu)
        self.sampler = batch_sampler(dataset.train, cfg.data)
        self.batches = Batches(dataset.train, self.sampler, cfg.train.prefetch_batches,
                               pin=self.device.type == "cuda")
        # data.extra_normalisation "global": the training split's per-feature moments,
        # applied to every batch (padding stays zero).
        self.moments = None
        if cfg.data.extra_normalisation == "global":
            mean, sd = feature_moments(dataset.train)
            self.moments = (torch.from_numpy(mean).to(self.device),
                            torch.from_numpy(sd).to(self.device))
        # A stream of its own, so augmentation noise never replays the init stream.
        self.aug_gen = torch.Generator(device=self.device).manual_seed(
            cfg.data.seed * 1_000_003 + 7)
        kernel = (smoothing_kernel(cfg.augment.smooth_kernel_std,
                                   cfg.augment.smooth_kernel_size)
                  if cfg.augment.smooth_data else None)
        self.kernel = torch.from_numpy(kernel).to(self.device) if kernel is not None else None
        self.params = [p for p in self.model.parameters()]
        self.step = 0  # batches done
        self.history: list[dict] = []
        self.grad_norms: list[float] = []  # every finite pre-clip norm of the run
        self.nonfinite_steps = 0
        self.diverged = False
        self.ever_exploded = False
        # The weights of the best evaluation (lowest val PER, ties to the lower val loss,
        # as the official trainer's best_checkpoint), on the CPU, for export.
        self.best_model: dict | None = None
        self.best_eval: dict | None = None
        self._reset_window()

    # ---------------------------------------------------------------- training
    def _reset_window(self) -> None:
        self.window_losses: list[float] = []
        self.window_norms: list[float] = []
        self.window_clipped = 0
        self.window_time = 0.0

    def _autocast(self):
        enabled = self.cfg.train.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _to_device(self, batch: dict) -> dict:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.moments is not None:
            mean, sd = self.moments
            x = batch["features"]
            valid = (torch.arange(x.shape[1], device=x.device)[None, :]
                     < batch["n_frames"][:, None])[..., None]
            batch["features"] = torch.where(valid, (x - mean) / sd, torch.zeros_like(x))
        return batch

    def train_step(self, batch: dict | None = None) -> bool:
        """One batch (the sampler's next, or `batch`); returns False if the loss or gradient
        was non-finite (run diverged)."""
        start = time.perf_counter()
        self.model.train()
        batch = self._to_device(self.batches.next() if batch is None else batch)
        with self._autocast():
            x, n_frames = transform(batch["features"], batch["n_frames"], self.cfg.augment,
                                    self.kernel, self.aug_gen, train=True)
            logits = self.forward(x, batch["day"], n_frames)
            out_lens = self.model.output_lengths(n_frames)
            loss = ctc_loss_per_utterance(logits, out_lens, batch["labels"],
                                          batch["label_lens"], self.cfg.loss.normalisation,
                                          self.cfg.loss.zero_infinity).mean()
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            loss.backward()
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip))
            finite = math.isfinite(norm)
        if not finite:
            # The official trainer raises here (error_if_nonfinite=True); a study instead
            # records the run as diverged and stops it without applying the bad update.
            self.nonfinite_steps += 1
            self.diverged = True
            self.step += 1
            self.window_time += time.perf_counter() - start
            return False
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.window_losses.append(loss.item())
        self.window_norms.append(norm)
        self.grad_norms.append(norm)
        self.window_clipped += norm > self.cfg.optim.grad_clip
        self.window_time += time.perf_counter() - start
        return True

    # -------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        val = self.dataset.val
        losses, dists, ref_lens, days = [], [], [], []
        blank_frames = valid_frames = emitted = 0
        used_classes: set[int] = set()
        for idx in validation_batches(val, self.cfg.data.batch_size,
                                      self.cfg.data.max_val_trials_per_day):
            batch = self._to_device(val.batch(idx))
            with self._autocast():
                x, n_frames = transform(batch["features"], batch["n_frames"],
                                        self.cfg.augment, self.kernel, None, train=False)
                logits = self.forward(x, batch["day"], n_frames)
                out_lens = self.model.output_lengths(n_frames)
                loss = ctc_loss_per_utterance(logits, out_lens, batch["labels"],
                                              batch["label_lens"])
            # The official per-utterance sum whatever loss.normalisation trains with, so
            # validation losses compare across trainer variants.
            losses.append(float(loss.mean()))
            decoded = greedy_decode(logits, out_lens)
            dists.extend(edit_distances(decoded, batch["labels"].cpu(),
                                        batch["label_lens"].cpu()))
            ref_lens.extend(batch["label_lens"].tolist())
            days.extend(batch["day"].tolist())
            frames = torch.arange(logits.shape[1], device=logits.device)[None, :]
            mask = frames < out_lens[:, None]
            blank_frames += int(((logits.argmax(-1) == 0) & mask).sum())
            valid_frames += int(mask.sum())
            for seq in decoded:
                emitted += len(seq)
                used_classes.update(seq.tolist())
        days_arr, dists_arr, refs_arr = map(np.asarray, (days, dists, ref_lens))
        per_day = {
            self.dataset.sessions[d]: phoneme_error_rate(dists_arr[days_arr == d],
                                                         refs_arr[days_arr == d])
            for d in np.unique(days_arr)
        }
        return {
            # Unweighted mean over batches, as the official validation.
            "val_loss": float(np.mean(losses)),
            "val_per": phoneme_error_rate(dists_arr, refs_arr),
            "val_per_by_day": per_day,
            "blank_fraction": blank_frames / max(valid_frames, 1),
            "unique_phonemes": len(used_classes),
            "emit_ratio": emitted / max(int(refs_arr.sum()), 1),
        }

    # ----------------------------------------------------------------- reports
    def _report(self, ev: dict | None, done: bool) -> dict:
        cfg = self.cfg
        budget = cfg.train.num_steps
        initial = self.history[0] if self.history else None
        norms = self.window_norms
        if self.diverged or ev is None or not math.isfinite(ev["val_loss"]):
            self.diverged = True
            ev = {"val_loss": contract.SENTINEL_LOSS, "val_per": contract.SENTINEL_PER,
                  "val_per_by_day": {}, "blank_fraction": 1.0, "unique_phonemes": 0,
                  "emit_ratio": 0.0}
        initial_loss = initial["initial_val_loss"] if initial else ev["val_loss"]
        initial_per = initial["initial_val_per"] if initial else ev["val_per"]
        self.diverged = self.diverged or monitor.is_diverged(
            ev["val_loss"], initial_loss, False, cfg.monitor)
        window_max = max(norms) if norms else 0.0
        if self.grad_norms and monitor.is_exploded(window_max, float(np.median(self.grad_norms)),
                                                   cfg.monitor):
            self.ever_exploded = True
        collapsed = monitor.is_collapsed(ev["emit_ratio"], self.step, budget, cfg.monitor)
        best = min([h["val_per"] for h in self.history] + [ev["val_per"]])
        if not self.diverged and (self.best_eval is None or (ev["val_per"], ev["val_loss"]) < (
                self.best_eval["val_per"], self.best_eval["val_loss"])):
            self.best_eval = {"step": self.step, "val_per": ev["val_per"],
                              "val_loss": ev["val_loss"]}
            self.best_model = {k: v.detach().to("cpu", copy=True)
                               for k, v in self.model.state_dict().items()}
        done = done or self.diverged
        report = {
            "step": self.step,
            "train_loss": (float(np.mean(self.window_losses)) if self.window_losses
                           else contract.SENTINEL_LOSS),
            "val_loss": ev["val_loss"],
            "val_per": ev["val_per"],
            "lr": float(self.optimizer.param_groups[2]["lr"]),
            "grad_norm_mean": float(np.mean(norms)) if norms else 0.0,
            "grad_norm_max": window_max if norms or not self.diverged
            else contract.SENTINEL_GRAD_NORM,
            "clip_fraction": self.window_clipped / max(len(norms), 1),
            "nonfinite_steps": self.nonfinite_steps,
            "blank_fraction": ev["blank_fraction"],
            "unique_phonemes": ev["unique_phonemes"],
            "eps_dominance": eps_dominance(self.optimizer),
            "steps_per_s": len(norms) / self.window_time if self.window_time > 0 else 0.0,
            "gpu_peak_mb": (torch.cuda.max_memory_allocated(self.device) / 2**20
                            if self.device.type == "cuda" else 0.0),
            "collapsed": int(collapsed),
            "diverged": int(self.diverged),
            "exploded": int(self.ever_exploded),
            "outcome": monitor.outcome(self.diverged, collapsed, self.ever_exploded,
                                       ev["val_per"], cfg.monitor),
            "completed": int(done),
            "budget_steps": budget,
            "best_val_per": best,
            "initial_val_loss": initial_loss,
            "initial_val_per": initial_per,
            "emit_ratio": ev["emit_ratio"],
            "val_per_by_day": ev["val_per_by_day"],
        }
        self.history.append({k: v for k, v in report.items() if k != "val_per_by_day"})
        self._reset_window()
        return report

    def __iter__(self) -> Iterator[dict]:
        try:
            yield from self._train()
        finally:
            self.batches.close()

    def _train(self) -> Iterator[dict]:
        cfg = self.cfg.train
        while self.step < cfg.num_steps and not self.diverged:
            ok = self.train_step()
            if not ok:
                yield self._report(None, done=True)
                return
            if is_evaluation_step(self.step, cfg.num_steps, cfg.eval_every):
                report = self._report(self.evaluate(), done=self.step == cfg.num_steps)
                yield report
                if report["diverged"]:
                    return

    @property
    def finished(self) -> bool:
        return self.diverged or self.step >= self.cfg.train.num_steps

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.batches.state_dict(),
            "aug_gen": self.aug_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "step": self.step,
            "history": self.history,
            "grad_norms": self.grad_norms,
            "nonfinite_steps": self.nonfinite_steps,
            "diverged": self.diverged,
            "ever_exploded": self.ever_exploded,
            "best_model": self.best_model,
            "best_eval": self.best_eval,
            "config": self.cfg.model_dump(mode="json"),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.batches.load_state_dict(state["sampler"])
        self.aug_gen.set_state(state["aug_gen"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        self.step = state["step"]
        self.history = state["history"]
        self.grad_norms = state["grad_norms"]
        self.nonfinite_steps = state["nonfinite_steps"]
        self.diverged = state["diverged"]
        self.ever_exploded = state["ever_exploded"]
        self.best_model = state.get("best_model")  # absent from older checkpoints
        self.best_eval = state.get("best_eval")
        self._reset_window()

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        # Read to the CPU whatever the training device: the RNG states must stay CPU
        # ByteTensors (set_state raises "RNG state must be a torch.ByteTensor" for a CUDA
        # one). The model's load_state_dict copies onto its parameters' device, and the
        # optimiser's casts its state to each parameter's device (and, fused, `step` too).
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
