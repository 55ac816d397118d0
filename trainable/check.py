"""Health check before committing GPU days: python -m trainable check [--batches 200].

Trains the first N batches of a config (the official one on a GPU, the CPU proxy by default)
and judges four criteria, one line each with the measured value:

- loss falls: the mean training loss of the last window (a tenth of the batches, at least
  10) is at most `--loss-ratio` (default 0.9) times that of the first window;
- finite: no NaN/Inf loss or gradient (the run stops at the first one);
- gradient norm: the 95th percentile of the pre-clip gradient norms after warm-up (or over
  the second half when N ends inside the warm-up) is below `--max-grad-norm` (default 30);
- no blank collapse: greedy decoding of the validation set after the last batch emits more
  than `--min-phonemes` (default 10) distinct phonemes.

Then steps/s and the estimated time of the config's full budget. Exit 0 when every
criterion passes, 1 when any fails, 2 on bad input.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from trainable.errors import ConfigError, OneLineArgumentParser, run_cli
from trainable.source import add_config_flags


def judge(losses: list[float], grad_norms: list[float], finite: bool, warmup: int,
          unique_phonemes: int | None, *, loss_ratio: float = 0.9,
          max_grad_norm: float = 30.0, min_phonemes: int = 10) -> list[tuple[str, bool, str]]:
    """(criterion, passed, measured) for each criterion; pure, so the rules are testable."""
    rows = []
    window = max(10, len(losses) // 10)
    if len(losses) >= 2 * window:
        first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
        rows.append(("training loss falls", last <= loss_ratio * first,
                     f"mean of first {window} batches {first:.2f}, of last {window} "
                     f"{last:.2f} (ratio {last / first:.2f}; pass <= {loss_ratio})"))
    else:
        rows.append(("training loss falls", False,
                     f"only {len(losses)} finite batches, need {2 * window}"))
    rows.append(("no NaN/Inf loss or gradient", finite,
                 "all finite" if finite else f"non-finite at batch {len(losses) + 1}"))
    start = warmup if warmup < len(grad_norms) // 2 else len(grad_norms) // 2
    after = np.asarray(grad_norms[start:])
    if after.size:
        p95 = float(np.percentile(after, 95))
        rows.append(("gradient norm after warm-up", p95 < max_grad_norm,
                     f"95th percentile {p95:.1f} (median {np.median(after):.1f}, max "
                     f"{after.max():.1f}) over batches {start + 1}..{len(grad_norms)}; "
                     f"pass < {max_grad_norm:g}"))
    else:
        rows.append(("gradient norm after warm-up", False, "no finite gradient measured"))
    if unique_phonemes is None:
        rows.append(("no blank collapse", False, "not measured: the run stopped"))
    else:
        rows.append(("no blank collapse", unique_phonemes > min_phonemes,
                     f"{unique_phonemes} distinct phonemes emitted on validation; pass > "
                     f"{min_phonemes}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m trainable check",
        description="Train the first N batches and check that the loss falls, everything "
                    "stays finite, gradient norms stay bounded and the decoder emits "
                    "phonemes. Exit 0 all pass, 1 any fails, 2 bad input.")
    add_config_flags(parser)
    parser.add_argument("--batches", type=int, default=200, help="batches to train (200)")
    parser.add_argument("--max-grad-norm", type=float, default=30.0,
                        help="pass when the 95th percentile of pre-clip gradient norms after "
                             "warm-up is below this (30)")
    parser.add_argument("--min-phonemes", type=int, default=10,
                        help="pass when validation decoding emits more distinct phonemes (10)")
    parser.add_argument("--loss-ratio", type=float, default=0.9,
                        help="pass when last-window loss <= this x first-window loss (0.9)")
    args = parser.parse_args(argv)

    def body() -> int:
        from trainable.config import load_config
        from trainable.data import load_dataset
        from trainable.loop import TrainingRun
        from trainable.source import resolve_data_root

        if args.batches < 20:
            raise ConfigError(f"--batches={args.batches}: the loss windows need at least 20 "
                              "batches; give --batches 20 or more")
        if not args.max_grad_norm > 0 or not args.loss_ratio > 0 or args.min_phonemes < 0:
            raise ConfigError("--max-grad-norm and --loss-ratio must be positive and "
                              "--min-phonemes non-negative")
        from trainable.official_args import official_data_dir

        cfg = load_config(args.config, args.overrides)
        root, desc = resolve_data_root(args.data or official_data_dir(args.config))
        dataset = load_dataset(root, cfg)
        run = TrainingRun(cfg, dataset)
        print(f"health check: {args.batches} batches of {desc} on {run.device.type} "
              f"(batch {cfg.data.batch_size}, lr_max {cfg.optim.lr_max:g}, eps "
              f"{cfg.optim.eps:g}, warm-up {cfg.optim.lr_warmup_steps})", flush=True)
        losses: list[float] = []
        finite = True
        start = time.perf_counter()
        for batch in range(1, args.batches + 1):
            if not run.train_step():
                finite = False
                break
            losses.append(run.window_losses[-1])
            if batch % max(1, args.batches // 4) == 0:
                elapsed = time.perf_counter() - start
                print(f"  batch {batch}/{args.batches}, loss {losses[-1]:.2f}, "
                      f"{elapsed:.0f} s, ETA {elapsed / batch * (args.batches - batch):.0f} s",
                      flush=True)
        train_s = time.perf_counter() - start
        unique = None
        eval_s = 0.0
        if finite:
            t0 = time.perf_counter()
            unique = run.evaluate()["unique_phonemes"]
            eval_s = time.perf_counter() - t0
        rows = judge(losses, run.grad_norms, finite, cfg.optim.lr_warmup_steps, unique,
                     loss_ratio=args.loss_ratio, max_grad_norm=args.max_grad_norm,
                     min_phonemes=args.min_phonemes)
        for name, passed, measured in rows:
            print(f"{'PASS' if passed else 'FAIL'}  {name}: {measured}")
        rate = len(losses) / train_s if train_s > 0 else 0.0
        if rate > 0:
            n_evals = cfg.train.num_steps // cfg.train.eval_every + 1
            full = cfg.train.num_steps / rate + n_evals * eval_s
            print(f"speed: {rate:.2f} steps/s; the full budget ({cfg.train.num_steps} steps, "
                  f"{n_evals} evaluations of {eval_s:.1f} s) would take about "
                  f"{full / 3600:.1f} h" if full >= 3600 else
                  f"speed: {rate:.2f} steps/s; the full budget ({cfg.train.num_steps} steps, "
                  f"{n_evals} evaluations of {eval_s:.1f} s) would take about "
                  f"{full / 60:.1f} min")
        failed = [name for name, passed, _ in rows if not passed]
        print(f"health check: {'FAILED: ' + ', '.join(failed) if failed else 'all passed'}")
        return 1 if failed else 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
