"""The official rnn_args.yaml format: read as a config, explained, exported, round-tripped."""

from pathlib import Path

import pytest
import yaml

from trainable.config import load_config, read_config_tree
from trainable.errors import ConfigError
from support.official import official_args, write
from trainable.official_args import from_official, is_official, to_official

def test_official_file_resolves_to_the_official_config(tmp_path):
    path = write(tmp_path / "rnn_args.yaml", official_args())
    ours = load_config(path)
    reference = load_config("configs/train/official.yaml")
    for section in ("data", "model", "augment", "optim"):
        mine = getattr(ours, section).model_dump()
        theirs = getattr(reference, section).model_dump()
        if section == "optim":  # the reference leaves the (identical) day schedule unset
            assert ours.optim.day_schedule() == reference.optim.day_schedule()
            mine = {k: v for k, v in mine.items() if "_day" not in k}
            theirs = {k: v for k, v in theirs.items() if "_day" not in k}
        assert mine == theirs, section
    assert ours.train.model_dump(include={"num_steps", "eval_every", "seed", "amp",
                                          "compile", "device"}) == \
        {"num_steps": 120000, "eval_every": 2000, "seed": 10, "amp": True, "compile": True,
         "device": "auto"}
    assert ours.optim.beta1 == 0.9 and ours.optim.beta2 == 0.999  # shifted names


def test_explain_maps_every_key_one_line_each(tmp_path, capsys):
    from trainable.__main__ import main

    tree = official_args()
    path = write(tmp_path / "rnn_args.yaml", tree)
    assert main(["--config", str(path), "--explain"]) == 0
    out = capsys.readouterr().out.strip()
    mapping, differences = out.split("\n\n")
    lines = mapping.splitlines()
    _, expected = from_official(tree)
    assert lines == expected
    assert len(lines) == 72 + 1  # every leaf key of the official file, plus the defaults line
    # Then the trainer differences a config can state, one line each (trainable.variants).
    from trainable.variants import VARIANTS

    listed = differences.splitlines()[1:]
    assert [line.split(":")[0].strip() for line in listed] == [v.key for v in VARIANTS]
    assert "epsilon = 0.1 -> optim.eps" in lines
    assert "beta0 = 0.9 -> optim.beta1" in lines
    assert any(line.startswith("gpu_number = '1' -> ignored:") for line in lines)


@pytest.mark.parametrize("changes, message", [
    ({"lr_maxx": 0.01}, "unknown official key 'lr_maxx'"),
    ({"early_stopping": True}, "early_stopping=True is not supported"),
    ({"model__rnn_trainable": False}, "model.rnn_trainable=False is not supported"),
    ({"dataset__feature_subset": [1, 2]}, "dataset.feature_subset=[1, 2] is not supported"),
    ({"dataset__neural_dim": 256}, "dataset.neural_dim=256 differs"),
    ({"grad_norm_clip_value": 0}, "grad_norm_clip_value=0"),
    ({"epsilon": -1}, "optim.eps=-1"),
])
def test_bad_official_values_are_one_line(tmp_path, changes, message):
    path = write(tmp_path / "rnn_args.yaml", official_args(**changes))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) \
            as caught:
        load_config(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path))


def test_own_format_is_not_taken_for_official():
    tree, lines = read_config_tree("configs/train/proxy.yaml")
    assert lines is None and not is_official(tree)


def test_export_then_import_gives_the_same_config(tmp_path):
    cfg = load_config(overrides={"optim.eps": 1e-8, "optim.lr_max": 0.002,
                                 "optim.lr_max_day": 0.005, "augment.white_noise_std": 0.25,
                                 "data.sessions": ["s1", "s2"]})
    exported = to_official(cfg, ["s1", "s2"], {"s2"}, dataset_dir="/data/x")
    path = write(tmp_path / "rnn_args.yaml", exported)
    back = load_config(path)
    for section in ("data", "model", "augment"):
        keep = {"nonfinite_features", "max_val_trials_per_day"}
        assert getattr(back, section).model_dump(exclude=keep) == \
            getattr(cfg, section).model_dump(exclude=keep), section
    assert back.optim.model_dump() == cfg.optim.model_copy(update={
        "lr_min_day": cfg.optim.day_schedule()[1],
        "lr_warmup_steps_day": cfg.optim.day_schedule()[2],
        "lr_decay_steps_day": cfg.optim.day_schedule()[3]}).model_dump()
    assert exported["dataset"]["dataset_probability_val"] == [0, 1]
    # every key of the official file is written, no more
    assert set(from_official(exported)[1][i].split(" = ")[0]
               for i in range(len(from_official(exported)[1]) - 1)) == \
        set(from_official(official_args())[1][i].split(" = ")[0] for i in range(72))


def test_official_file_trains_on_its_own_dataset_dir_or_on_data(tmp_path, tiny_data, capsys):
    from trainable.__main__ import main

    sessions = sorted(p.name for p in Path(tiny_data).iterdir() if p.is_dir())
    tree = official_args(num_training_batches=4, batches_per_val_step=2, use_amp=False,
                         model__n_input_features=16, model__n_units=16, model__n_layers=1,
                         model__input_network__input_layer_sizes=[16],
                         dataset__neural_dim=16, dataset__batch_size=8,
                         dataset__days_per_batch=2, dataset__sessions=sessions,
                         dataset__dataset_probability_val=[1] * len(sessions),
                         dataset__dataset_dir="data-here")
    (tmp_path / "data-here").symlink_to(tiny_data)
    path = write(tmp_path / "rnn_args.yaml", tree)
    extra = ["--set", "train.compile=false", "--set", "train.device=cpu"]
    assert main(["--config", str(path), *extra]) == 0
    assert "outcome:" in capsys.readouterr().out
    # --data wins over dataset_dir (a folder that does not exist fails, naming --data)
    assert main(["--config", str(path), *extra, "--data", str(tmp_path / "nowhere")]) == 2
    assert "--data" in capsys.readouterr().err


def test_export_cli_writes_a_complete_rnn_args_for_the_stable_best_cell(tmp_path, tiny_data):
    from analysis.export import main
    from support.experiments import write_fake_experiment

    exp = write_fake_experiment(tmp_path, n_seeds=3)
    study = yaml.safe_load((exp / "study.yaml").read_text())
    study["data"]["path"] = str(tiny_data)
    (exp / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    out = tmp_path / "rnn_args.yaml"
    assert main([str(exp), "--cell", "eps=1e-8,lr_max=0.002", "--out", str(out)]) == 0
    exported = yaml.safe_load(out.read_text())
    assert exported["epsilon"] == 1e-8 and exported["lr_max"] == 0.002
    cfg = load_config(out)  # the written file reads back
    assert cfg.optim.eps == 1e-8 and len(cfg.data.sessions) == 3
    assert main([str(exp), "--cell", "momentum=0.9", "--out", str(out)]) == 2


def test_stable_best_is_the_lowest_median_per_among_all_stable_settings():
    import pandas as pd

    from analysis.export import stable_best
    from trainable.errors import UserError

    rows = []
    for eps, pers, outcomes in [
        (1e-8, [0.20, 0.21, 0.22], ["stable", "slow", "stable"]),   # best PER, one slow
        (1e-4, [0.30, 0.25, 0.26], ["stable"] * 3),                 # median 0.26
        (0.1, [0.27, 0.24, 0.29], ["stable"] * 3),                  # median 0.27
        (1.0, [0.10, 0.10, 0.10], ["stable", "stable", None]),      # one stopped early
    ]:
        for per, outcome in zip(pers, outcomes):
            rows.append({"eps": eps, "final_val_per": per, "outcome": outcome,
                         "status": "finished" if outcome else "stopped_early"})
    trials = pd.DataFrame(rows)
    # eps=1.0: the two full-budget runs are stable with PER 0.10, so it wins
    assert stable_best(trials, ["eps"]) == {"eps": 1.0}
    assert stable_best(trials[trials.eps != 1.0], ["eps"]) == {"eps": 1e-4}
    with pytest.raises(UserError, match="no setting had every full-budget run stable"):
        stable_best(trials[trials.eps == 1e-8], ["eps"])


def test_export_checkpoint_writes_the_best_weights_in_the_official_layout(tmp_path, tiny_data,
                                                                        tiny_config):
    import torch
    from support.experiments import write_fake_experiment

    from analysis.export import main
    from analysis.load import load_experiment
    from trainable.data import load_dataset
    from trainable.loop import TrainingRun

    exp = write_fake_experiment(tmp_path, n_seeds=3)
    study = yaml.safe_load((exp / "study.yaml").read_text())
    study["data"]["path"] = str(tiny_data)
    (exp / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    cell = {"eps": 1e-8, "lr_max": 0.002}
    trials = load_experiment(exp).trials
    mine = trials[(trials["eps"] == 1e-8) & (trials["lr_max"] == 0.002)
                  & trials["status"].isin(["finished", "diverged"])]
    best = mine.sort_values("best_val_per", kind="stable").iloc[0]
    # A real training state in that trial's checkpoint: the best evaluation's weights.
    cfg = tiny_config()
    run = TrainingRun(cfg, load_dataset(tiny_data, cfg))
    reports = list(run)
    folder = next(d for d in exp.rglob(best["folder"]) if d.is_dir())
    (folder / "checkpoint_000000").mkdir(exist_ok=True)
    run.save(folder / "checkpoint_000000" / "state.pt")
    out = tmp_path / "export"
    assert main([str(exp), "--cell", "eps=1e-8,lr_max=0.002", "--checkpoint",
                 "--out", str(out)]) == 0
    saved = torch.load(out / "checkpoint" / "best_checkpoint", weights_only=False)
    assert saved["val_PER"] == min(r["val_per"] for r in reports)
    assert set(saved["model_state_dict"]) == set(run.model.state_dict())
    args = yaml.safe_load((out / "checkpoint" / "args.yaml").read_text())
    assert args["epsilon"] == cell["eps"] and args["lr_max"] == cell["lr_max"]
