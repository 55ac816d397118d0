"""Training and validation batches: the official day sampler, a plain shuffle, the
background thread that builds batches ahead, and the feature moments of a second global
normalisation (config data.sampling / data.extra_normalisation / train.prefetch_batches)."""

from __future__ import annotations

import math
import queue
import threading

import numpy as np

from trainable.config import DataConfig
from trainable.data import PackedSplit


class DayBatchSampler:
    """The official sampler (model_training/dataset.py, create_batch_index_train): each batch
    draws `days_per_batch` distinct days uniformly (not weighted by size), then
    ceil(batch_size/days_per_batch) trials from each day with replacement; when that is more
    than batch_size, the surplus goes one trial at a time, each time the last trial of a
    uniformly chosen day among the batch's days (a day already emptied loses nothing, as in
    the official loop). Deterministic for a seed; its state is a checkpointable numpy
    bit-generator state."""

    def __init__(self, split: PackedSplit, batch_size: int, days_per_batch: int, seed: int):
        self.days = split.days
        self.by_day = {int(d): split.trials_of_day(int(d)) for d in self.days}
        self.days_per_batch = days_per_batch
        self.per_day = math.ceil(batch_size / days_per_batch)
        self.surplus = self.per_day * days_per_batch - batch_size
        self.rng = np.random.default_rng(seed)

    def next_indices(self) -> np.ndarray:
        days = self.rng.choice(self.days, size=self.days_per_batch, replace=False)
        draws = [self.by_day[int(d)][self.rng.integers(0, len(self.by_day[int(d)]),
                                                        self.per_day)]
                 for d in days]
        for _ in range(self.surplus):
            k = int(self.rng.integers(0, len(draws)))
            draws[k] = draws[k][:-1]
        return np.concatenate(draws)

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state


class ShuffleBatchSampler:
    """A plain shuffle, as DataLoader(shuffle=True) over all training trials (a trainer
    difference, config data.sampling: "shuffle"): each epoch a new permutation of every
    trial, cut into consecutive batches of batch_size (the last one of an epoch smaller,
    as drop_last=False). Days mix as they fall. Deterministic for a seed; checkpointable."""

    def __init__(self, split: PackedSplit, batch_size: int, seed: int):
        self.n = len(split)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.n)
        self.position = 0

    def next_indices(self) -> np.ndarray:
        if self.position >= self.n:
            self.order = self.rng.permutation(self.n)
            self.position = 0
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += len(batch)
        return batch

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order.tolist(),
                "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"], dtype=np.int64)
        self.position = int(state["position"])


def batch_sampler(split: PackedSplit, cfg: DataConfig) -> DayBatchSampler | ShuffleBatchSampler:
    """The sampler data.sampling names (official: days)."""
    if cfg.sampling == "shuffle":
        return ShuffleBatchSampler(split, cfg.batch_size, cfg.seed)
    return DayBatchSampler(split, cfg.batch_size, cfg.days_per_batch, cfg.seed)


class Batches:
    """Training batches in the sampler's order, built `ahead` batches in advance by a
    background thread (0: built on demand, in the caller's thread). With `pin` each batch
    is copied into page-locked memory, so the copy to a CUDA device can overlap compute
    (`tensor.to(device, non_blocking=True)`). The order and content are the same either
    way; `state_dict` is the sampler's state after the last batch handed out, not after the
    ones built ahead, so a checkpoint resumes exactly where training was."""

    def __init__(self, split: PackedSplit, sampler, ahead: int = 0, pin: bool = False):
        self.split, self.sampler, self.ahead, self.pin = split, sampler, ahead, pin
        self._state = sampler.state_dict()
        self._queue = None
        self._thread = None
        self._stop = None

    def _build(self) -> tuple[dict, dict]:
        batch = self.split.batch(self.sampler.next_indices())
        if self.pin:
            batch = {k: v.pin_memory() for k, v in batch.items()}
        return batch, self.sampler.state_dict()

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._build()
            except BaseException as exc:  # handed to the consumer, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def _start(self) -> None:
        self._queue = queue.Queue(maxsize=self.ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="batches", daemon=True)
        self._thread.start()

    def next(self) -> dict:
        if self.ahead <= 0:
            batch, self._state = self._build()
            return batch
        if self._thread is None:
            self._start()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        batch, self._state = item
        return batch

    def close(self) -> None:
        """Stop building ahead; batches already built are dropped (the sampler state
        stays at the last batch handed out)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = self._queue = None

    def state_dict(self) -> dict:
        return self._state

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.sampler.load_state_dict(state)
        self._state = self.sampler.state_dict()


def feature_moments(split: PackedSplit, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of every feature over all frames of a split (padding is not stored, so
    only real frames count), accumulated in float64 a chunk at a time so a memory-mapped
    split is read once and never copied whole. A constant feature gets SD 1."""
    total = np.zeros(split.features.shape[1])
    squares = np.zeros(split.features.shape[1])
    n = split.features.shape[0]
    for start in range(0, n, chunk):
        block = np.asarray(split.features[start:start + chunk], dtype=np.float64)
        total += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
    mean = total / max(n, 1)
    sd = np.sqrt(np.maximum(squares / max(n, 1) - mean ** 2, 0.0))
    return mean.astype(np.float32), np.where(sd > 0, sd, 1.0).astype(np.float32)


def validation_batches(split: PackedSplit, batch_size: int, max_per_day: int | None = None):
    """Fixed order, single-day batches of up to batch_size (official validation)."""
    for day in split.days:
        idx = split.trials_of_day(int(day))
        if max_per_day is not None:
            idx = idx[:max_per_day]
        for start in range(0, len(idx), batch_size):
            yield idx[start : start + batch_size]
