"""The command line of `python -m study.run grid|map|asha|optuna|resume`: its flags, the
typed request built once from them (study/request.py), and the dispatch to one study
(study/single.py), a scale ladder (study/ladder.py) or a resume.
"""

from __future__ import annotations

import argparse
import math
import sys

from analysis.record import LADDER_FILE, read_ladder
from study import diff_plan, ladder, single
from study.place import Place
from study.presets import load_preset
from study.request import RayOptions, ResumeRequest, StudyRequest
from trainable.errors import OneLineArgumentParser, UserError, run_cli

COMMANDS = ("grid", "map", "asha", "optuna", "diff")
_RAY_FLAGS = ("storage_endpoint", "address", "dashboard", "verbose")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m study.run",
        description="Run a Ray Tune study of GRU/CTC training stability over Adam eps, "
                    "lr_max, white_noise_std and constant_offset_std, then write its report.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "grid": "confirmatory 2x2x2x2 factorial with seeds, full budget (the main job)",
        "map": "dense 2-D stable-region maps (eps x lr_max; noise x offset) with seeds",
        "asha": "exploratory random search over the continuous box with ASHA",
        "optuna": "exploratory TPE search (OptunaSearch) with ASHA",
        "diff": "which difference between two training configs changes failures or PER: "
                "each applied alone and removed alone, claims decided adaptively",
    }
    for name in COMMANDS:
        p = sub.add_parser(name, help=helps[name], description=helps[name])
        p.add_argument("--preset", default=None,
                       help=f"preset name in configs/studies/ or a YAML file (default: {name})")
        p.add_argument("--data", default=None,
                       help="Brain-to-Text '25 folder (<root>/<session>/data_*.hdf5); default: "
                            "built-in synthetic data, generated once and cached under "
                            "./data/synthetic (B2T_DATA_CACHE overrides)")
        p.add_argument("--train-config", default=None,
                       help="training config YAML, the project's format or an official "
                            "rnn_args.yaml (detected; default: the preset's)")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="override a training config value for every trial")
        p.add_argument("--synthetic-set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a synthetic-data knob (without --data)")
        p.add_argument("--synthetic-spec", default=None, metavar="YAML",
                       help="synthetic-data spec (without --data; default: the preset's, "
                            "else configs/data/synthetic.yaml, generator 1); "
                            "configs/data/calibrated.yaml is generator 2, calibrated to "
                            "the real recordings")
        p.add_argument("--seeds", type=_positive_int, default=None,
                       help="seeds per cell (grid/map); in random search each seed gets "
                            "its own draws (the samples are not replicated)")
        p.add_argument("--samples", type=_positive_int, default=None,
                       help="number of sampled configurations (asha/optuna)")
        p.add_argument("--search-seed", type=_nonneg_int, default=0,
                       help="seed of the random / TPE sampler (asha/optuna; default 0): "
                            "another seed draws other configurations")
        p.add_argument("--budget", default=None,
                       help="smoke, default or full (the preset's budgets), or a number of "
                            "training steps")
        p.add_argument("--storage", default="results",
                       help="where experiment folders live: a local or shared (NFS) folder, "
                            "file://, s3://bucket/prefix or gs://bucket/prefix (default: "
                            "./results)")
        p.add_argument("--name", default=None,
                       help="experiment folder name (default: <preset>-<date>-<time>)")
        p.add_argument("--minutes", type=_positive_float, default=None,
                       help="adaptive studies: training time over all waves (default: the "
                            "preset's)")
        p.add_argument("--max-trials", type=_positive_int, default=None,
                       help="adaptive studies: trials over all waves (default: the preset's)")
        p.add_argument("--wandb", default=None, metavar="PROJECT",
                       help="also log every trial to this Weights & Biases project (Tune's "
                            "WandbLoggerCallback; needs the wandb package)")
        p.add_argument("--mlflow", default=None, metavar="TRACKING_URI",
                       help="also log every trial to this MLflow tracking server or folder "
                            "(Tune's MLflowLoggerCallback; needs the mlflow package)")
        p.add_argument("--allow-short-budget", action="store_true",
                       help="run an official-size model for fewer steps than its own "
                            "warm-up (refused otherwise: such a run says nothing about it)")
        p.add_argument("--no-adaptive", action="store_true",
                       help="run only the preset's fixed design (no claim-directed waves)")
        _add_cluster_flags(p)
        p.add_argument("--no-report", action="store_true",
                       help="skip the analysis report at the end")
        if name == "diff":
            _add_diff_flags(p)
    p = sub.add_parser("resume", help="continue an interrupted study",
                       description="Continue an interrupted study: unfinished trials resume "
                                   "from their last checkpoint, errored ones are retried, "
                                   "finished ones are not re-run.")
    p.add_argument("experiment", help="the experiment folder (<storage>/<name>), a folder "
                                      "or a URI such as s3://bucket/prefix/<name>")
    _add_ray_flags(p)  # trials keep the resources and concurrency the study started with
    p.add_argument("--no-report", action="store_true", help="skip the analysis report")
    return parser


def _add_diff_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="diff_from", default=None, metavar="YAML",
                   help="the configuration that trains well (this project's format or an "
                        "official rnn_args.yaml; default: the preset's)")
    p.add_argument("--to", dest="diff_to", default=None, metavar="YAML",
                   help="the configuration that fails (either format; default: the "
                        "preset's)")
    p.add_argument("--keys", type=_key_list, default=None, metavar="K1,K2",
                   help="study only these dotted config keys (default: every key that "
                        "differs and sets the training)")
    p.add_argument("--margin-rate", type=_fraction, default=None,
                   help="claimed change in failure rate (default: the preset's, 0.25)")
    p.add_argument("--margin-per", type=_fraction, default=None,
                   help="claimed change in final val PER (default: the preset's, 0.05)")


def _key_list(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in keys if "." not in k]
    if not keys or bad:
        raise argparse.ArgumentTypeError(
            f"expected dotted config keys separated by commas (optim.eps,loss.normalisation)"
            f", got {text!r}")
    return keys


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage-endpoint", default=None, metavar="URL",
                   help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// storage; "
                        "default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS")
    p.add_argument("--address", default=None,
                   help="attach to an existing Ray cluster (HOST:PORT); RAY_ADDRESS is "
                        "honoured; default: start a local instance")
    p.add_argument("--dashboard", action="store_true",
                   help="start the Ray dashboard on 127.0.0.1:8265 and print its URL")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print Tune's own trial tables (default: one line per "
                        "finished trial with counts and ETA)")


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    _add_ray_flags(p)
    p.add_argument("--cpus-per-trial", type=_positive_float, default=1.0,
                   help="CPUs per trial; torch uses as many threads (default 1)")
    p.add_argument("--gpus-per-trial", type=_nonneg_float, default=0.0,
                   help="GPUs per trial, fractions allowed (default 0: CPU)")
    p.add_argument("--max-concurrent", type=_positive_int, default=None,
                   help="trials at once (default: as many as the CPUs allow)")
    p.add_argument("--autoscaler-wait", type=_nonneg_float, default=0.0, metavar="MINUTES",
                   help="on a cluster with an autoscaler: when no node can hold a trial, "
                        "ask the autoscaler for one and wait this long (default 0: fail "
                        "at once, naming the largest node)")


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _nonneg_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def _float_at_least(text: str, low: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise argparse.ArgumentTypeError(
            f"expected a number {'>' if strict else '>='} {low:g}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _float_at_least(text, 0.0, strict=True)


def _nonneg_float(text: str) -> float:
    return _float_at_least(text, 0.0, strict=False)


def study_request(args: argparse.Namespace) -> StudyRequest:
    values = vars(args)
    return StudyRequest.model_validate(
        {k: v for k, v in values.items() if k not in _RAY_FLAGS}
        | {"ray": RayOptions(**{k: values[k] for k in _RAY_FLAGS})})


def resume_request(args: argparse.Namespace) -> ResumeRequest:
    return ResumeRequest(experiment=args.experiment, no_report=args.no_report,
                         ray=RayOptions(**{k: getattr(args, k) for k in _RAY_FLAGS}))


def launch(request: StudyRequest) -> int:
    preset = load_preset(request.preset or request.command)
    if request.command == "diff":
        preset, request = diff_plan.prepare(request, preset)
    elif preset.diff is not None:
        raise UserError(f"preset {preset.name!r} is a diff study; run it with 'python -m "
                        f"study.run diff --preset {request.preset}'")
    if preset.rungs is not None:
        return ladder.launch(request, preset)
    return single.launch(request, preset)


def resume(request: ResumeRequest) -> int:
    place = Place.open(request.experiment, request.ray.storage_endpoint)
    if (place.local / LADDER_FILE).is_file():
        return ladder.resume(request, place, _ladder_request(place))
    return single.resume(request, place)


def _ladder_request(place: Place) -> StudyRequest:
    """The request a ladder was started with: its request file, or, for a ladder started
    before that file was written, the command line its ladder.yaml kept."""
    stored = StudyRequest.read(place.local)
    if stored is not None:
        return stored
    return study_request(build_parser().parse_args(read_ladder(place.local).argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "resume":
        return run_cli(lambda: resume(resume_request(args)))
    return run_cli(lambda: launch(study_request(args)))
