"""Run one training alone: python -m trainable --config configs/train/proxy.yaml --set k=v.

`python -m trainable check ...` runs the health check instead (trainable/check.py)."""

from __future__ import annotations

import json
import sys
import time

from trainable.errors import OneLineArgumentParser, run_cli
from trainable.official_args import official_data_dir
from trainable.source import add_config_flags


def format_report(r: dict) -> str:
    return (f"step {r['step']:>6} | loss {r['train_loss']:8.3f} train {r['val_loss']:8.3f} val"
            f" | PER {r['val_per']:6.3f} | lr {r['lr']:.2e} | grad {r['grad_norm_mean']:7.2f}"
            f" mean {r['grad_norm_max']:7.2f} max, clip {r['clip_fraction']:.2f}"
            f" | blank {r['blank_fraction']:.3f} | eps_dom {r['eps_dominance']:.3f}"
            f" | {r['steps_per_s']:6.1f} steps/s | {r['outcome']}")


def explain(config: str | None) -> int:
    from trainable.config import read_config_tree
    from trainable.errors import ConfigError
    from trainable.variants import explain_lines

    if config is None:
        raise ConfigError("--explain: give the official rnn_args.yaml with --config")
    _, lines = read_config_tree(config)
    if lines is None:
        print(f"{config}: this project's own config format; nothing to map")
    else:
        print("\n".join(lines))
    print("\nTrainer differences this project can reproduce (config keys; the official "
          "value is the default):")
    print("\n".join(f"  {line}" for line in explain_lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        from trainable.check import main as check

        return check(argv[1:])
    parser = OneLineArgumentParser(
        prog="python -m trainable",
        description="Train the GRU/CTC phoneme decoder once and print one line per "
                    "evaluation, then the outcome. 'python -m trainable check --help': the "
                    "200-batch health check.")
    add_config_flags(parser)
    parser.add_argument("--synthetic-spec", default=None, metavar="YAML",
                        help="synthetic-data spec when --data is not given (default: "
                             "configs/data/synthetic.yaml; calibrated: "
                             "configs/data/calibrated.yaml)")
    parser.add_argument("--synthetic-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a synthetic-data knob (when --data is not given)")
    parser.add_argument("--save", default=None, metavar="PATH",
                        help="write the final training state (checkpoint) here")
    parser.add_argument("--resume", default=None, metavar="PATH",
                        help="continue from a checkpoint written by --save")
    parser.add_argument("--json", action="store_true", help="print reports as JSON lines")
    parser.add_argument("--explain", action="store_true",
                        help="print how each key of an official rnn_args.yaml (--config) "
                             "maps onto this trainer's config, then exit")
    args = parser.parse_args(argv)

    def body() -> int:
        from trainable.config import load_config
        from trainable.data import load_dataset
        from trainable.loop import TrainingRun
        from trainable.source import resolve_data_root

        if args.explain:
            return explain(args.config)
        cfg = load_config(args.config, args.overrides)
        data = args.data or official_data_dir(args.config)
        root, desc = resolve_data_root(data, synthetic_spec=args.synthetic_spec,
                                       synthetic_overrides=args.synthetic_set)
        start = time.perf_counter()
        dataset = load_dataset(root, cfg)
        print(f"{desc}: {dataset.report.summary()} (read in "
              f"{time.perf_counter() - start:.1f} s)", file=sys.stderr)
        run = TrainingRun(cfg, dataset)
        if args.resume:
            run.load(args.resume)
        report = None
        for report in run:
            if args.json:
                print(json.dumps(report), flush=True)
            else:
                print(format_report(report), flush=True)
        if args.save:
            run.save(args.save)
        if report is not None:
            print(f"outcome: {report['outcome']} (best val PER {report['best_val_per']:.3f}, "
                  f"{run.step} of {cfg.train.num_steps} steps)")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
