"""Carry a setting out of a study: python -m analysis.export <study> [--cell ...] --out FILE.

    python -m analysis.export results/<study> --cell stable-best --out rnn_args.yaml
    python -m analysis.export results/<study> --cell eps=1e-8,lr_max=0.002 --format yaml \
        --out setting.yaml

`--cell` picks the setting: `stable-best` (default) is, among the settings whose every
full-budget run ended `stable`, the one with the lowest median final val PER (ties: more
runs); `official` is the study's base training config with no axis changed; `AXIS=VALUE,...`
sets the named axes. The base values come from the study's training config, or from
`--base CONFIG` (for example the official rnn_args.yaml: the proxy's setting carried onto
the official model). `--format rnn_args` writes a complete official rnn_args.yaml (every key
the official train_model.py reads); `yaml` writes this project's format. `--checkpoint`
writes the cell's best run as the official trainer leaves it: <out>/checkpoint/
best_checkpoint (the weights of its lowest-val-PER evaluation) and checkpoint/args.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

from trainable.errors import OneLineArgumentParser, UserError, run_cli


def stable_best(trials, axes: list[str]) -> dict:
    """Axis values of the setting with the lowest median final PER among settings whose
    full-budget runs all ended stable (ties: more runs). Pure, for tests."""
    full = trials[trials["status"].isin(("finished", "diverged"))]
    if full.empty:
        raise UserError("no full-budget runs in the study: nothing to choose from; name a "
                        "setting with --cell AXIS=VALUE,...")
    rows = []
    for key, group in full.groupby(axes, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        if (group["outcome"] == "stable").all():
            rows.append((float(np.median(group["final_val_per"])), -len(group), key))
    if not rows:
        raise UserError("no setting had every full-budget run stable; name one with --cell "
                        "AXIS=VALUE,... or --cell official")
    rows.sort()
    return dict(zip(axes, (v.item() if hasattr(v, "item") else v for v in rows[0][2])))


def parse_cell(text: str, axes: list[str]) -> dict:
    """'eps=1e-8,lr_max=0.002' -> {'eps': 1e-08, 'lr_max': 0.002}; names must be axes."""
    out = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or name not in axes:
            raise UserError(f"--cell {text!r}: {name!r} is not an axis of the study "
                            f"({', '.join(axes)}); give AXIS=VALUE pairs separated by commas")
        try:
            out[name] = float(raw)
        except ValueError:
            raise UserError(f"--cell {text!r}: {raw!r} is not a number") from None
    return out


def build(study_dir: str | Path, cell: str = "stable-best", base: str | None = None):
    """(resolved Config, chosen axis values, sessions, sessions with validation data)."""
    from analysis.load import load_experiment
    from trainable.config import read_config_tree
    from trainable.tune_adapter import resolve_trial_config

    experiment = load_experiment(study_dir)
    study = experiment.study
    axes = list(study.axes)
    if cell == "stable-best":
        chosen = stable_best(experiment.trials, axes)
    elif cell == "official":
        chosen = {}
    else:
        chosen = parse_cell(cell, axes)
    tree = study.train_config.model_dump(mode="json") if base is None else read_config_tree(base)[0]
    cfg = resolve_trial_config(chosen, tree, study.axis_keys, study.axis_levels)
    root = Path(study.data.path)
    sessions = list(cfg.data.sessions) if cfg.data.sessions else sorted(
        p.name for p in root.iterdir() if (p / "data_train.hdf5").exists()) \
        if root.is_dir() else []
    val = {s for s in sessions if (root / s / "data_val.hdf5").exists()}
    return cfg, chosen, sessions, val, str(root)


def best_run(trials, chosen: dict):
    """The complete run of the chosen cell with the lowest best val PER."""
    from analysis.runs import full_budget, in_cell

    runs = full_budget(trials)
    runs = runs[in_cell(runs, chosen)] if chosen else runs
    if runs.empty:
        raise UserError("no full-budget run in the chosen cell has a checkpoint to export; "
                        "pick another --cell")
    return runs.sort_values("best_val_per", kind="stable").iloc[0]


def export_checkpoint(study_dir: Path, run, official_args: dict, out: Path) -> Path:
    """<out>/checkpoint/best_checkpoint and <out>/checkpoint/args.yaml, the layout the
    official evaluate_model.py loads (model_state_dict under the official GRUDecoder's
    parameter names; the best evaluation's val PER and loss beside it)."""
    import torch

    folders = [d for d in Path(study_dir).rglob(str(run["folder"])) if d.is_dir()]
    states = sorted((f for d in folders for f in d.glob("checkpoint_*/state.pt")),
                    key=lambda f: f.parent.name)
    if not states:
        raise UserError(f"{study_dir}: trial {run['trial_id']} kept no checkpoint (pruned, or "
                        "the study ran on remote storage not pulled); re-run that cell")
    state = torch.load(states[-1], map_location="cpu", weights_only=False)
    if state.get("best_model") is None:
        raise UserError(f"{states[-1]}: written before checkpoints kept the best weights; "
                        "re-run the cell to export its best checkpoint")
    folder = out / "checkpoint"
    folder.mkdir(parents=True, exist_ok=True)
    best = state["best_eval"]
    torch.save({"model_state_dict": state["best_model"], "val_PER": best["val_per"],
                "val_loss": best["val_loss"], "batch": best["step"]},
               folder / "best_checkpoint")
    (folder / "args.yaml").write_text(yaml.safe_dump(official_args, sort_keys=False))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python -m analysis.export",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("study", help="the study folder (results/<name>)")
    parser.add_argument("--cell", default="stable-best",
                        help="stable-best (default), official, or AXIS=VALUE,...")
    parser.add_argument("--format", choices=("rnn_args", "yaml"), default="rnn_args")
    parser.add_argument("--base", default=None,
                        help="take the other values from this config (the project's format "
                             "or an official rnn_args.yaml) instead of the study's")
    parser.add_argument("--checkpoint", action="store_true",
                        help="write the best run of the cell as the official trainer does: "
                             "--out is a folder that gets checkpoint/best_checkpoint and "
                             "checkpoint/args.yaml (for evaluate_model.py)")
    parser.add_argument("--out", required=True, help="the file (or, with --checkpoint, the "
                                                     "folder) to write")
    args = parser.parse_args(argv)

    def body() -> int:
        from trainable.official_args import to_official

        cfg, chosen, sessions, val, root = build(args.study, args.cell, args.base)
        if args.checkpoint:
            from analysis.load import load_experiment

            if not sessions:
                raise UserError(f"{root}: the study's data folder is gone, so args.yaml's "
                                "session list is unknown; restore it")
            run = best_run(load_experiment(args.study).trials, chosen)
            folder = export_checkpoint(Path(args.study), run,
                                       to_official(cfg, sessions, val, dataset_dir=root),
                                       Path(args.out))
            print(f"wrote {folder} (trial {run['trial_id']}, best val PER "
                  f"{run['best_val_per']:.3f})")
            return 0
        if args.format == "rnn_args":
            if not sessions:
                raise UserError(f"{root}: the study's data folder is gone, so the session "
                                "list of rnn_args.yaml is unknown; restore it or set "
                                "data.sessions in --base")
            tree = to_official(cfg, sessions, val, dataset_dir=root)
        else:
            tree = cfg.model_dump(mode="json")
        out = Path(args.out)
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder; give a file name")
        setting = ", ".join(f"{k}={v:g}" for k, v in chosen.items()) or "no axis changed"
        header = (f"# Exported by python -m analysis.export from study {Path(args.study).name} "
                  f"(cell {args.cell}: {setting}).\n")
        out.write_text(header + yaml.safe_dump(tree, sort_keys=False))
        print(f"wrote {out} ({args.format}; {setting})")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
