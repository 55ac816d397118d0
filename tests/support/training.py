"""One training run interrupted and resumed, for the tests that pin resuming."""

from __future__ import annotations

from trainable.loop import TrainingRun


def interrupted(cfg, ds, path, after: int, resume=TrainingRun.load) -> list[dict]:
    """Reports of a run stopped after `after` reports, saved to `path` and continued by a
    fresh TrainingRun that `resume(run, path)` loads."""
    first = TrainingRun(cfg, ds)
    it = iter(first)
    head = [next(it) for _ in range(after)]
    first.save(path)
    resumed = TrainingRun(cfg, ds)
    resume(resumed, path)
    return head + list(resumed)
