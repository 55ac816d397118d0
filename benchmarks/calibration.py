"""How close the calibrated synthetic data (generator 2) is to the real recordings.

    python benchmarks/calibration.py                    # the data targets (about a minute)
    python benchmarks/calibration.py --train            # + training targets (hours on CPU)
    python benchmarks/calibration.py --train --steps 100 --seeds 1   # a quick check

Prints one table row per target: its real value with its source (S1..S16 in
shared/design/real_data_targets.md), the measured value and pass/fail.

Data: lengths, words and labels are measured on the trial plans of a real-sized training
split (configs/data/calibrated_official.yaml: 8,055 trials; no features are computed or
written), the z-scored features' extremes on the features of configs/data/calibrated.yaml,
generated in memory.

--train: the official setting (configs/train/official.yaml: batch 64, warm-up 1,000, cosine
to 120k, truncated after --steps; eps 0.1, clip 10) with a --model of layers x units, on the
calibrated data (--spec), through trainable.loop.TrainingRun, once per seed (train.seed
10, 11, ...). Validation runs after batch 0 and every --eval-every batches, so "PER at
2,000" is the evaluation after batch 2,000 as in the official log. It prints the step-0
training loss, the all-blank plateau, when the all-blank phase ends (validation emits
fewer non-blank tokens than monitor.collapse_emit_ratio of the labels, as the collapse
monitor), val PER at 2,000 and 4,000, the median pre-clip gradient norm over steps
100-2,000, the share of steps clipped after the plateau, the median over seeds against
each target, and the seconds per step with the projected time of the full run.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from trainable.config import CONFIG_DIR, load_config
from trainable.errors import OneLineArgumentParser, UserError, run_cli
from trainable.synthetic import SyntheticSpec
from trainable.synthetic_v2 import session_days, trial_plans, v2_sessions

DATA_DIR = CONFIG_DIR / "data"
# The all-blank phase of the official run is over within 2,000 steps (S4, S9).
PHASE_DEADLINE = 2000


def row(name: str, real: str, source: str, measured: str, ok: bool | None) -> str:
    verdict = "" if ok is None else ("pass" if ok else "FAIL")
    return f"{name:<38} {real:<22} {source:<7} {measured:<22} {verdict}"


HEADER = row("target", "real", "source", "measured", None) + "verdict"


# --------------------------------------------------------------------------- data


def length_rows(spec: SyntheticSpec) -> list[str]:
    train = [p for p in trial_plans(spec) if p.slot.split == "train"]
    val = [p for p in trial_plans(spec) if p.slot.split == "val"][:1426]
    labels = np.array([len(p.ids) for p in train])
    frames = np.array([p.n_frames for p in train])
    words = np.array([len(p.sentence.split()) for p in train])
    low, high = np.percentile(words, [5, 95])
    distinct = len({w.strip(".").lower() for p in val for w in p.sentence.split()})
    per_label = frames.sum() / labels.sum()
    fit = np.polyfit(labels, frames, 1)
    n = f"n={len(train)}"
    return [
        row("labels per sentence, mean", "28.8 +- 3", "S2", f"{labels.mean():.1f}",
            abs(labels.mean() - 28.8) <= 3),
        row("labels per sentence, SD / max", "9.2 / 66", "S2",
            f"{labels.std():.1f} / {labels.max()}", None),
        row("words per sentence, mean", "6.6 +- 0.5", "S6", f"{words.mean():.2f}",
            abs(words.mean() - 6.6) <= 0.5),
        row("words per sentence, SD", "2.1 (1.6-2.6)", "S6", f"{words.std():.2f}",
            1.6 <= words.std() <= 2.6),
        row("words, 5th-95th percentile", "4-10", "S6", f"{low:.0f}-{high:.0f}",
            3 <= low <= 5 and 9 <= high <= 11),
        row("distinct words in 1,426 val sentences", "1,835", "S2, S6", f"{distinct:,}", None),
        row("bins per label (sum T / sum labels)", "30 +- 3", "S6, S7", f"{per_label:.1f}",
            abs(per_label - 30) <= 3),
        row("T vs labels, linear fit", "141 + 22.6 x (day 1)", "S7",
            f"{fit[1]:.0f} + {fit[0]:.1f} x", None),
        row("trial length T, mean", "875 +- 90", "S6", f"{frames.mean():.0f}",
            abs(frames.mean() - 875) <= 90),
        row("trial length T, median", "836", "S6", f"{np.median(frames):.0f}", None),
        row(f"trial length T, max ({n})", ">= 2,000 (real 2,475)", "S6", f"{frames.max():,}",
            frames.max() >= 2000),
    ]


def session_rows(spec: SyntheticSpec) -> list[str]:
    gaps = np.diff(session_days(spec))
    return [
        row(f"session gaps, median / max ({spec.n_sessions})", "5 / 166 d", "S1",
            f"{np.median(gaps):.0f} / {gaps.max()} d",
            np.median(gaps) == 5 and gaps.max() == 166),
        row("session gaps >= 14 d", "9", "S1", f"{int((gaps >= 14).sum())}", None),
    ]


def feature_rows(spec: SyntheticSpec) -> list[str]:
    half = spec.n_features // 2
    clipped = total = 0
    tx_min = sbp_min = np.inf
    for _, by_split in v2_sessions(spec):
        for items in by_split.values():
            for _, x in items:
                clipped += int((x >= 10).sum())
                total += x.size
                tx_min = min(tx_min, float(x[:, :half].min()))
                sbp_min = min(sbp_min, float(x[:, half:].min()))
    share = 100 * clipped / total
    return [
        row("values at the +10 clip", "0.004% (x/ 3)", "S8", f"{share:.4f}%",
            0.004 / 3 <= share <= 0.004 * 3),
        row("TX minimum (z)", "-1.26 +- 0.3", "S8", f"{tx_min:.2f}", abs(tx_min + 1.26) <= 0.3),
        row("SBP minimum (z)", "-2.77 +- 0.5", "S8", f"{sbp_min:.2f}",
            abs(sbp_min + 2.77) <= 0.5),
    ]


def data_table(real_sized: SyntheticSpec, features: SyntheticSpec) -> list[str]:
    return [HEADER, *length_rows(real_sized), *session_rows(real_sized),
            *feature_rows(features)]


# --------------------------------------------------------------------------- training


def blank_phase(reports: list[dict], emit_threshold: float) -> tuple[int | None, int | None]:
    """(first, last) evaluation step of the all-blank phase: the first run of evaluations
    after step 1 whose greedy output is blank-only. (None, None) if there was none; last
    is None if it had not ended by the last evaluation."""
    blank = [r["emit_ratio"] < emit_threshold for r in reports]
    start = next((i for i in range(1, len(reports)) if blank[i]), None)
    if start is None:
        return None, None
    end = next((i for i in range(start, len(reports)) if not blank[i]), None)
    return reports[start]["step"], (reports[end]["step"] if end is not None else None)


def per_at(reports: list[dict], batch: int) -> float | None:
    """Val PER of the evaluation after batch `batch` (report step batch + 1)."""
    return next((r["val_per"] for r in reports if r["step"] == batch + 1), None)


def train_metrics(run, reports: list[dict]) -> dict:
    cfg = run.cfg
    clip = cfg.optim.grad_clip
    norms = np.asarray(run.grad_norms)
    start, end = blank_phase(reports, cfg.monitor.collapse_emit_ratio)
    plateau = [r["train_loss"] for r in reports[1:]
               if start is not None and start <= r["step"] and (end is None or r["step"] < end)]
    # After the plateau: after the blank phase; if no evaluation caught one in a run past
    # 2,000 steps, it fell within the first window, so after the second evaluation. A
    # shorter run that has not (yet) shown the phase says nothing.
    if end is not None:
        after = end
    elif start is None and run.step > PHASE_DEADLINE and len(reports) > 1:
        after = reports[1]["step"]
    else:
        after = None
    steps = [b - a for a, b in zip([0] + [r["step"] for r in reports], [r["step"] for r in
                                                                        reports])]
    seconds = sum(n / r["steps_per_s"] for n, r in zip(steps, reports) if r["steps_per_s"])
    return {
        "steps": run.step,
        "step0_loss": reports[0]["train_loss"],
        "plateau_loss": float(np.median(plateau)) if plateau else None,
        "blank_start": start,
        "blank_end": end,
        "per_2000": per_at(reports, 2000),
        "per_4000": per_at(reports, 4000),
        "grad_median": float(np.median(norms[100:2001])) if len(norms) > 100 else None,
        "clipped_after": (float(np.mean(norms[after:] > clip))
                          if after is not None and len(norms) > after else None),
        "s_per_step": seconds / max(sum(steps), 1),
    }


def train_one(spec_path: str, model: tuple[int, int], seed: int, steps: int, eval_every: int,
              overrides: list[str], spec_overrides: list[str]) -> dict:
    import torch

    from trainable.data import load_dataset
    from trainable.loop import TrainingRun
    from trainable.source import resolve_data_root

    root, desc = resolve_data_root(None, synthetic_spec=spec_path,
                                   synthetic_overrides=spec_overrides)
    cuda = torch.cuda.is_available()
    n_features = SyntheticSpec.load(spec_path, spec_overrides).n_features
    cfg = load_config(CONFIG_DIR / "train" / "official.yaml", [
        "data.sessions=null", f"data.n_features={n_features}",
        f"model.n_layers={model[0]}", f"model.n_units={model[1]}",
        f"train.num_steps={steps + 1}", f"train.eval_every={eval_every}",
        f"train.seed={seed}", f"train.compile={str(cuda).lower()}", *overrides])
    dataset = load_dataset(root, cfg)
    print(f"seed {seed}: {desc}; {dataset.report.summary()}", file=sys.stderr, flush=True)
    run = TrainingRun(cfg, dataset)
    reports = []
    try:
        for report in run:
            reports.append(report)
            print(f"  step {report['step']:>5} loss {report['train_loss']:8.2f} "
                  f"PER {report['val_per']:.3f} emit {report['emit_ratio']:.2f} "
                  f"grad {report['grad_norm_mean']:7.2f} clipped "
                  f"{report['clip_fraction']:.0%} {report['steps_per_s']:.3f} steps/s",
                  file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        # Ctrl-C: the targets from the evaluations so far (a long CPU run stopped early
        # still says what it measured).
        print(f"  interrupted after step {run.step}", file=sys.stderr, flush=True)
        if not reports:
            raise
    return train_metrics(run, reports)


def _fmt(values: list, spec: str) -> str:
    shown = [("-" if v is None else format(v, spec)) for v in values]
    return " / ".join(shown)


def _median(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if len(known) == len(values) and known else None


def train_table(results: list[dict]) -> tuple[list[str], float]:
    def get(key):
        return [r[key] for r in results]

    def check(key, test, spec):
        median = _median(get(key))
        return _fmt(get(key), spec), (None if median is None else test(median))

    def phase_end(start, end, steps) -> tuple[str, bool | None]:
        """A phase no evaluation caught, in a run past 2,000 steps, ended within the first
        window; one still on at the end of a shorter run may yet end in time."""
        if end is not None:
            return str(end), end <= PHASE_DEADLINE + 1
        if steps <= PHASE_DEADLINE:
            return ("none yet" if start is None else "not yet"), None
        return ("none seen", True) if start is None else ("not ended", False)

    ends = [phase_end(*args) for args in zip(get("blank_start"), get("blank_end"),
                                              get("steps"))]
    end_text = " / ".join(text for text, _ in ends)
    verdicts = [ok for _, ok in ends]
    end_ok = None if None in verdicts else all(verdicts)
    rows = [HEADER]
    for name, real, source, key, test, spec in (
            ("step-0 train loss", "620 +- 90", "S9", "step0_loss",
             lambda v: abs(v - 620) <= 90, ".0f"),
            ("all-blank plateau loss", "~95 (+- 20)", "S9", "plateau_loss",
             lambda v: abs(v - 95) <= 20, ".0f"),
            ("val PER at 2,000", "22.5 +- 5%", "S1, S4", "per_2000",
             lambda v: abs(v - 0.225) <= 0.05, ".1%"),
            ("val PER at 4,000", "15.9 +- 4%", "S1, S4", "per_4000",
             lambda v: abs(v - 0.159) <= 0.04, ".1%"),
            ("pre-clip grad norm, median 100-2,000", ">= 20 (real 29)", "S9", "grad_median",
             lambda v: v >= 20, ".1f"),
            ("share of steps clipped after plateau", ">= 95% (real ~99%)", "S9",
             "clipped_after", lambda v: v >= 0.95, ".1%")):
        measured, ok = check(key, test, spec)
        rows.append(row(name, real, source, measured, ok))
        if key == "plateau_loss":
            rows.append(row("all-blank phase ends (step)", "< 2,000", "S4, S9", end_text,
                            end_ok))
    per_step = float(np.mean(get("s_per_step")))
    rows.append(row("seconds per training step", "", "", f"{per_step:.2f}", None))
    return rows, per_step


# --------------------------------------------------------------------------- CLI


def parse_model(text: str) -> tuple[int, int]:
    try:
        layers, units = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--model {text!r}: expected LAYERSxUNITS, e.g. 2x256") from None
    return layers, units


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python benchmarks/calibration.py",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(DATA_DIR / "calibrated.yaml"),
                        help="generator-2 spec whose features (and, with --train, training "
                             "data) are measured (default: configs/data/calibrated.yaml)")
    parser.add_argument("--real-sized", default=str(DATA_DIR / "calibrated_official.yaml"),
                        help="spec whose trial plans give the length statistics")
    parser.add_argument("--train", action="store_true", help="also the training targets")
    parser.add_argument("--steps", type=int, default=4000, help="training steps per seed")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (train.seed 10, 11, ...)")
    parser.add_argument("--model", default="2x256", help="LAYERSxUNITS (official: 5x768)")
    parser.add_argument("--eval-every", type=int, default=100,
                        help="batches between validations (they time the blank phase)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a training config value")
    parser.add_argument("--synthetic-set", dest="spec_overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a knob of --spec for the training data (e.g. "
                             "train_trials=100 for more trials per session)")
    parser.add_argument("--no-data", action="store_true", help="skip the data targets")
    args = parser.parse_args(argv)

    def body() -> int:
        model = parse_model(args.model)
        if not args.no_data:
            start = time.perf_counter()
            table = data_table(SyntheticSpec.load(args.real_sized), SyntheticSpec.load(args.spec))
            print("\n".join(table))
            print(f"(data targets measured in {time.perf_counter() - start:.0f} s)\n")
        if args.train:
            results = [train_one(args.spec, model, 10 + i, args.steps, args.eval_every,
                                 args.overrides, args.spec_overrides)
                       for i in range(args.seeds)]
            rows, per_step = train_table(results)
            print(f"training: official schedule truncated after {args.steps} steps, model "
                  f"{model[0]}x{model[1]}, {args.seeds} seed(s); values per seed, verdict on "
                  "their median")
            print("\n".join(rows))
            full = 4000 * 3 * per_step
            print(f"projected full calibration (4,000 steps x 3 seeds at {per_step:.2f} s/step,"
                  f" evaluations excluded): {full / 3600:.1f} h")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
