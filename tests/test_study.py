"""Study orchestration on a real Ray instance (one per test session) with tiny trials."""

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from study.cli import main
from support.studies import TINY_SET, adaptive_preset, run_cli, write_preset
from trainable.errors import UserError

def read_trials(exp: Path) -> list[dict]:
    trials = []
    for d in sorted(exp.glob("trial_*")):
        rows = [json.loads(line) for line in (d / "result.json").read_text().splitlines()
                if line.strip()] if (d / "result.json").exists() else []
        trials.append({"params": json.loads((d / "params.json").read_text()), "rows": rows,
                       "errored": (d / "error.txt").exists(), "dir": d})
    return trials


def tensorboard_tags(trial_dir: Path) -> set[str]:
    """Scalar tags in a trial's event file (TFRecord framing: length, crc, data, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    tags = set()
    for path in trial_dir.glob("events.out.tfevents*"):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[i + 12:i + 12 + n])
            tags |= {v.tag for v in event.summary.value}
            i += 12 + n + 4
    return tags


@pytest.mark.ray
def test_grid_gives_one_result_per_cell_and_seed(ray_session, tiny_data, tmp_path):
    preset = write_preset(tmp_path / "p.yaml")
    rc = run_cli("grid", "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "g", "--no-report", *TINY_SET)
    assert rc == 0
    exp = tmp_path / "r" / "g"
    trials = read_trials(exp)
    cells = sorted((t["params"]["eps"], t["params"]["lr_max"], t["params"]["seed"])
                   for t in trials)
    assert cells == sorted((e, lr, s) for e in (1e-8, 0.1) for lr in (0.002, 0.005)
                           for s in (0, 1))
    for t in trials:
        assert t["rows"][-1]["completed"] == 1 and t["rows"][-1]["step"] == 8
        assert t["rows"][-1]["outcome"] in ("stable", "blank_collapse", "diverged",
                                            "exploding", "slow")
    study = yaml.safe_load((exp / "study.yaml").read_text())
    assert study["kind"] == "confirmatory" and study["budget_steps"] == 8
    # lr_max varies and the preset keeps the default day_lr: the day layers stay at 0.005
    assert study["day_lr"] == "fixed" and study["train_config"]["optim"]["lr_max_day"] == 0.005
    assert study["data"]["fingerprint"] and study["versions"]["ray"].startswith("2.60")
    assert study["axes"]["eps"]["key"] == "optim.eps"
    # per-trial TensorBoard scalars (Tune's logger): tensorboard --logdir <study> reads them
    assert {"ray/tune/val_per", "ray/tune/grad_norm_max", "ray/tune/blank_fraction"} <= \
        tensorboard_tags(trials[0]["dir"])
    # the sampled eps really reached the optimizer: Adam's eps regime differs
    dominance = {t["params"]["eps"]: t["rows"][-1]["eps_dominance"] for t in trials}
    assert dominance[0.1] > dominance[1e-8]


@pytest.mark.ray
def test_asha_stops_some_trials_early(ray_session, tiny_data, tmp_path):
    preset = write_preset(
        tmp_path / "p.yaml", name="tinyasha", search="random", scheduler="asha", blocks=None,
        axes={"lr_max": {"distribution": "loguniform", "low": 1e-4, "high": 3e-2}},
        seeds=1, samples=8, budgets={"default": {"steps": 16, "eval_every": 2}},
        asha={"grace_fraction": 0.1, "reduction_factor": 3})
    rc = run_cli("asha", "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "a", "--no-report", *TINY_SET)
    assert rc == 0
    trials = read_trials(tmp_path / "r" / "a")
    assert len(trials) == 8
    steps = [t["rows"][-1]["step"] for t in trials]
    assert min(steps) < 16 and max(steps) == 16
    assert all(t["rows"][-1]["completed"] == 0 for t in trials if t["rows"][-1]["step"] < 16)
    study = yaml.safe_load((tmp_path / "r" / "a" / "study.yaml").read_text())
    assert study["kind"] == "exploratory"


@pytest.mark.ray
def test_optuna_runs_two_trials_at_a_time(ray_session, tiny_data, tmp_path):
    preset = write_preset(
        tmp_path / "p.yaml", name="tinyopt", search="optuna", scheduler="fifo", blocks=None,
        axes={"lr_max": {"distribution": "loguniform", "low": 1e-4, "high": 1e-2}},
        seeds=1, samples=4, budgets={"default": {"steps": 30, "eval_every": 10}})
    rc = run_cli("optuna", "--preset", preset, "--data", tiny_data, "--storage",
                 tmp_path / "r", "--name", "o", "--no-report", *TINY_SET)
    assert rc == 0
    trials = read_trials(tmp_path / "r" / "o")
    assert len(trials) == 4
    assert len({t["params"]["lr_max"] for t in trials}) == 4
    spans = []
    for t in trials:
        end = t["rows"][-1]["timestamp"]
        spans.append((end - t["rows"][-1]["time_total_s"], end))
    overlaps = sum(1 for i, a in enumerate(spans) for b in spans[i + 1:]
                   if a[0] < b[1] and b[0] < a[1])
    assert overlaps >= 1  # with 1 pending trial (Optuna's default) nothing would overlap


@pytest.mark.ray
def test_search_seed_draws_other_configurations_and_is_recorded(ray_session, tiny_data,
                                                                 tmp_path):
    preset = write_preset(
        tmp_path / "p.yaml", name="tinyrand", search="random", scheduler="fifo", blocks=None,
        axes={"lr_max": {"distribution": "loguniform", "low": 1e-4, "high": 1e-2}},
        seeds=1, samples=2, budgets={"default": {"steps": 4, "eval_every": 2}})
    drawn = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "7")):
        assert run_cli("asha", "--preset", preset, "--data", tiny_data, "--storage",
                       tmp_path / "r", "--name", name, "--search-seed", seed, "--no-report",
                       *TINY_SET) == 0
        drawn[name] = sorted(t["params"]["lr_max"] for t in read_trials(tmp_path / "r" / name))
        record = yaml.safe_load((tmp_path / "r" / name / "study.yaml").read_text())
        assert record["search_seed"] == int(seed)
    assert drawn["a"] == drawn["b"] and drawn["a"] != drawn["c"]
    with pytest.raises(SystemExit) as exc:
        run_cli("asha", "--search-seed", "-1")
    assert exc.value.code == 2
    assert run_cli("grid", "--preset", write_preset(tmp_path / "g.yaml"), "--data", tiny_data,
                   "--storage", tmp_path / "r", "--name", "g", "--search-seed", "3",
                   *TINY_SET) == 2
    assert not (tmp_path / "r" / "g").exists()


@pytest.mark.ray
def test_trial_that_raises_is_errored_and_study_completes(ray_session, tiny_data, tmp_path):
    # patch_size 2000 is a valid config value but longer than every tiny trial: it fails
    # inside the trial, not before the study starts.
    preset = write_preset(tmp_path / "p.yaml", seeds=1, blocks=[
        {"patch": {"key": "model.patch_size", "values": [14, 2000]}}])
    rc = run_cli("grid", "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "e", "--no-report", *TINY_SET)
    assert rc == 0
    trials = read_trials(tmp_path / "r" / "e")
    by_patch = {t["params"]["patch"]: t for t in trials}
    assert by_patch[2000]["errored"] and not by_patch[14]["errored"]
    assert by_patch[14]["rows"][-1]["completed"] == 1


def test_help_and_bad_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["grid", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--preset", "--data", "--budget", "--address", "--cpus-per-trial",
                 "--gpus-per-trial", "--max-concurrent", "--dashboard", "--no-report",
                 "--storage", "--seeds", "--samples", "--set", "--train-config", "--name"):
        assert flag in out
    with pytest.raises(SystemExit) as exc:
        main(["grid", "--cpus-per-trial", "zero"])
    assert exc.value.code == 2
    assert main(["grid", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["grid", "--budget", "huge"]) == 2


def test_resume_rejects_a_folder_that_is_not_an_experiment(tmp_path, capsys):
    assert main(["resume", str(tmp_path)]) == 2
    assert "not an experiment folder" in capsys.readouterr().err


def test_existing_experiment_folder_is_not_overwritten(tmp_path, tiny_data, capsys):
    exp = tmp_path / "r" / "x"
    exp.mkdir(parents=True)
    (exp / "study.yaml").write_text("keep: me\n")
    rc = main(["grid", "--data", str(tiny_data), "--storage", str(tmp_path / "r"), "--name",
               "x", *TINY_SET])
    assert rc == 2 and "already exists" in capsys.readouterr().err
    assert (exp / "study.yaml").read_text() == "keep: me\n"


def test_address_where_nothing_listens_fails_fast(tmp_path, tiny_data, capsys):
    start = time.monotonic()
    rc = main(["grid", "--data", str(tiny_data), "--storage", str(tmp_path / "r"),
               "--address", "127.0.0.1:1", *TINY_SET])
    assert rc == 2
    assert time.monotonic() - start < 30
    assert "no Ray cluster answers" in capsys.readouterr().err


def test_large_data_is_packed_once_memory_mapped_and_not_read_again(tiny_data, tiny_config,
                                                                     tmp_path, monkeypatch):
    """Past the object-store limit the driver packs the data once and memory-maps the pack
    (it does not hold the arrays); a later study on the same files maps the pack without
    reading the HDF5 files; a changed file is read again."""
    import numpy as np

    import study.datashare as datashare
    from analysis.storage import resolve_storage
    from trainable.data import Dataset, load_dataset
    from trainable.tune_adapter import tune_trainable

    cfg = tiny_config()
    cache = datashare.data_cache(resolve_storage(str(tmp_path / "results")))
    small, how = datashare.load_data(tiny_data, cfg, cache)
    assert how == "read and validated" and not isinstance(small.train.features, np.memmap)
    assert datashare.trial_data(small, cache, None) is small  # small: the object store
    monkeypatch.setattr(datashare, "OBJECT_STORE_LIMIT", 0)
    packed, how = datashare.load_data(tiny_data, cfg, cache)
    assert how == "read, validated and packed" and isinstance(packed.train.features, np.memmap)
    assert packed.fingerprint() == load_dataset(tiny_data, cfg).fingerprint()
    monkeypatch.setattr(datashare, "load_dataset", lambda *a: pytest.fail("read again"))
    again, how = datashare.load_data(tiny_data, cfg, cache)
    assert how.startswith("packed cache") and again.fingerprint() == packed.fingerprint()
    shared = datashare.trial_data(again, cache, None)
    assert isinstance(shared, str) and Dataset.load_cache(shared).fingerprint() == \
        packed.fingerprint()
    # the trainable accepts the cache folder (outside Tune, tune.report is a no-op)
    tune_trainable({"eps": 0.1, "seed": 0}, base_config=cfg.model_dump(mode="json"),
                   dataset=shared)
    # Other reading settings, or a touched file: read again.
    other = tiny_config(**{"model.patch_stride": 2})
    with pytest.raises(pytest.fail.Exception, match="read again"):
        datashare.load_data(tiny_data, other, cache)
    some_file = next(Path(tiny_data).glob("*/data_train.hdf5"))
    os.utime(some_file, ns=(time.time_ns(), time.time_ns()))
    with pytest.raises(pytest.fail.Exception, match="read again"):
        datashare.load_data(tiny_data, cfg, cache)


def test_large_data_on_cloud_storage_goes_to_the_bucket_once_and_each_node_fetches_it_once(
        tiny_data, tiny_config, tmp_path, monkeypatch, s3_server):
    """With cloud storage the driver uploads the pack once; on another node the first of
    several trials asking at once fetches it (the others wait on the node's lock), and
    every trial memory-maps the same fingerprint."""
    from concurrent.futures import ThreadPoolExecutor

    import study.datashare as datashare
    from analysis.storage import resolve_storage

    monkeypatch.setattr(datashare, "OBJECT_STORE_LIMIT", 0)
    monkeypatch.delenv("B2T_SHARED_CACHE", raising=False)
    monkeypatch.setenv("B2T_STORAGE_CACHE", str(tmp_path / "mirror"))
    storage = resolve_storage(f"s3://{s3_server['bucket']}/share")
    cache = datashare.data_cache(storage)
    assert not cache.shared
    dataset, _ = datashare.load_data(tiny_data, tiny_config(), cache)
    packed = datashare.trial_data(dataset, cache, storage)
    assert isinstance(packed, datashare.PackedData)
    again = datashare.trial_data(dataset, cache, storage)  # already there: not re-sent
    assert again == packed
    nodes = [tmp_path / "node-a", tmp_path / "node-b"]
    with ThreadPoolExecutor(6) as pool:
        folders = list(pool.map(packed.fetch, nodes * 3))
    for node in nodes:
        assert len((node / datashare.FETCH_LOG).read_text().splitlines()) == 1
    from trainable.data import Dataset

    assert {Dataset.load_cache(f).fingerprint() for f in folders} == {dataset.fingerprint()}
    # Outside Ray no node is the driver's: open() fetches into B2T_NODE_CACHE.
    monkeypatch.setenv("B2T_NODE_CACHE", str(tmp_path / "node-c"))
    assert packed.open().fingerprint() == dataset.fingerprint()
    # A bucket that lost the pack: one line naming what failed.
    lost = datashare.PackedData("0" * 16, packed.storage, packed.endpoint, "", None)
    with pytest.raises(UserError, match="fetching the packed data"):
        lost.fetch(tmp_path / "node-d")
    assert [p.name for p in (tmp_path / "node-d").iterdir()] == [f"{'0' * 16}.lock"]


def test_budget_stretches_the_schedules_of_both_parameter_groups():
    from study.plan import budget_overrides
    from trainable.config import load_config

    official = load_config("configs/train/official.yaml")
    assert official.optim.day_schedule() == (0.005, 0.0001, 1000, 120000)
    budget = {"steps": 400, "eval_every": 50}
    assert budget_overrides(budget, {"optim": {"lr_decay_steps": 120000,
                                               "lr_warmup_steps": 1000}}) == [
        "train.num_steps=400", "train.eval_every=50", "optim.lr_decay_steps=400",
        "optim.lr_warmup_steps=3"]
    with_day = budget_overrides(budget, {"optim": {
        "lr_decay_steps": 120000, "lr_warmup_steps": 1000, "lr_decay_steps_day": 120000,
        "lr_warmup_steps_day": 2000}})
    assert "optim.lr_decay_steps_day=400" in with_day
    assert "optim.lr_warmup_steps_day=7" in with_day
    # the real schedule: the config's own warm-up and decay, truncated at the budget
    assert budget_overrides(budget, {"optim": {"lr_decay_steps": 120000,
                                               "lr_warmup_steps": 1000}}, "real") == [
        "train.num_steps=400", "train.eval_every=50"]


@pytest.mark.ray
def test_adaptive_study_adds_seeds_to_the_cells_of_undecided_claims(ray_session, tiny_data,
                                                                      tmp_path):
    from analysis.record import read_record

    rc = run_cli("grid", "--preset", adaptive_preset(tmp_path), "--data", tiny_data,
                 "--storage", tmp_path / "r", "--name", "a", "--no-report", *TINY_SET)
    assert rc == 0
    exp = tmp_path / "r" / "a"
    record = read_record(exp)
    waves = record.adaptive.waves
    assert [len(w.trials) for w in waves] == [4, 4]
    assert record.adaptive.stopped == "the budget is spent"
    fast = record.points.index({"eps": 0.1, "lr_max": 0.005})
    assert [(t.cell, t.seed) for t in waves[1].trials] == [(fast, s) for s in (1, 2, 3, 4)]
    assert waves[0].verdicts == {"fast_cell_stable": "inconclusive"}
    assert waves[1].seeds == {"fast_cell_stable": 5} and waves[1].minutes > 0
    assert record.claims.sha256 and record.claims.path.endswith("claims.yaml")
    second = read_trials(exp / "wave-02")
    assert sorted(t["params"]["seed"] for t in second) == [1, 2, 3, 4]
    assert all(t["rows"][-1]["completed"] == 1 for t in [*read_trials(exp / "wave-01"),
                                                         *second])


@pytest.mark.ray
@pytest.mark.slow(seconds=60)
def test_boundary_study_records_its_refined_points_and_resumes_them(ray_session, tiny_data,
                                                                     tmp_path):
    """A tiny map: 2 eps x 2 lr_max, one seed, 8 steps (every run fails: too short), so
    each column's boundary lies above the grid and the refinement steps up by 3; the trial
    budget allows one refinement wave."""
    import shutil

    from analysis.record import read_record

    preset = write_preset(
        tmp_path / "boundary.yaml", name="tiny-map", seeds=1,
        blocks=[{"eps": {"values": [1e-8, 0.1]}, "lr_max": {"values": [1e-4, 1e-2]}}],
        adaptive={"max_trials": 6, "wave_trials": 2},
        boundary={"limits": [1e-5, 0.05], "regimes": {"small_eps": [1e-8, 0.1]}},
        primary_hypothesis={"text": "lr/eps", "test": "regime"})
    rc = run_cli("map", "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "m", "--no-report", *TINY_SET)
    assert rc == 0
    exp = tmp_path / "r" / "m"
    record = read_record(exp)
    assert [len(w.trials) for w in record.adaptive.waves] == [4, 2]
    assert record.adaptive.stopped.startswith("the budget is spent")
    assert record.points[4:] == [{"eps": 1e-8, "lr_max": 3e-2}, {"eps": 0.1, "lr_max": 3e-2}]
    assert sorted((t["params"]["eps"], t["params"]["lr_max"])
                  for t in read_trials(exp / "wave-02")) == [(1e-8, 3e-2), (0.1, 3e-2)]
    # As if the driver died after planning the second wave: its trials are gone, the plan
    # (and the new points) only in study.yaml. Resume runs exactly those.
    shutil.rmtree(exp / "wave-02")
    record.adaptive.waves[1].minutes = None
    record.adaptive.stopped = None
    record.write(exp)
    assert run_cli("resume", exp) == 0
    record = read_record(exp)
    assert record.points[4:] == [{"eps": 1e-8, "lr_max": 3e-2}, {"eps": 0.1, "lr_max": 3e-2}]
    assert [len(w.trials) for w in record.adaptive.waves] == [4, 2]
    assert all(t["rows"][-1]["completed"] == 1 for t in read_trials(exp / "wave-02"))
    brackets = pd.read_csv(exp / "report" / "boundary.csv")
    assert (brackets["tried"].str.contains("0.03")).all() and len(brackets) == 2
    assert "not testable" in pd.read_csv(exp / "report" / "regime.csv")["note"].iloc[0]


def test_adaptive_flags_need_an_adaptive_preset(tmp_path, tiny_data, capsys):
    preset = write_preset(tmp_path / "p.yaml")
    rc = run_cli("grid", "--preset", preset, "--data", tiny_data, "--storage", tmp_path,
                 "--minutes", "5")
    err = capsys.readouterr().err
    assert rc == 2 and "--minutes: only adaptive studies add waves" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("day_lr, expected_day", [("fixed", 0.005), ("follow", 0.002)])
def test_day_lr_choice_decides_the_day_layers_lr_when_lr_max_varies(day_lr, expected_day):
    from study.presets import Preset, apply_day_lr
    from trainable.config import load_config
    from trainable.model import GRUDecoder
    from trainable.optim import param_groups
    from trainable.tune_adapter import resolve_trial_config

    preset = Preset.model_validate({
        "name": "t", "blocks": [{"lr_max": {"values": [0.002, 0.005]}}],
        "budgets": {"default": {"steps": 8, "eval_every": 4}}, "day_lr": day_lr})
    cfg = apply_day_lr(preset, load_config())  # the proxy: lr_max 0.005, day lr unset
    trial = resolve_trial_config({"lr_max": 0.002, "seed": 0}, cfg.model_dump(mode="json"),
                                 preset.axis_keys())
    groups = {g["group"]: g["lr"] for g in param_groups(
        GRUDecoder(8, 2, trial.model), trial.optim)}
    assert groups == {"no_decay": 0.002, "day": expected_day, "rest": 0.002}


def test_day_lr_is_left_alone_without_an_lr_max_axis():
    from study.presets import Preset, apply_day_lr
    from trainable.config import load_config

    preset = Preset.model_validate({"name": "t", "blocks": [{"eps": {"values": [0.1]}}],
                                    "budgets": {"default": {"steps": 8, "eval_every": 4}},
                                    "day_lr": "fixed"})
    cfg = load_config()
    assert apply_day_lr(preset, cfg) == cfg and cfg.optim.lr_max_day is None


@pytest.mark.ray
def test_study_runs_from_an_official_rnn_args_file(ray_session, tiny_data, tmp_path):
    from support.official import official_args, write

    sessions = sorted(p.name for p in Path(tiny_data).iterdir() if p.is_dir())
    args = write(tmp_path / "rnn_args.yaml", official_args(
        model__n_input_features=16, model__n_units=16, model__n_layers=1,
        model__input_network__input_layer_sizes=[16], dataset__neural_dim=16,
        dataset__batch_size=8, dataset__days_per_batch=2, dataset__sessions=sessions,
        dataset__dataset_probability_val=[1] * len(sessions), dataset__dataset_dir=str(tiny_data),
        use_amp=False))
    preset = write_preset(tmp_path / "p.yaml", seeds=1,
                          blocks=[{"eps": {"values": [1e-8, 0.1]}}])
    rc = run_cli("grid", "--preset", preset, "--train-config", args, "--storage",
                 tmp_path / "r", "--name", "o", "--no-report", "--set", "train.compile=false",
                 "--set", "train.device=cpu", "--cpus-per-trial", "2", "--budget", "12")
    assert rc == 0
    study = yaml.safe_load((tmp_path / "r" / "o" / "study.yaml").read_text())
    assert study["data"]["path"] == str(Path(tiny_data).resolve())  # its dataset_dir
    optim, train = study["train_config"]["optim"], study["train_config"]["train"]
    assert optim["lr_max_day"] == 0.005 and optim["eps"] == 0.1  # from rnn_args.yaml
    # --cpus-per-trial 2: two torch threads per trial, one trial at a time on 2 CPUs
    assert train["num_threads"] == 2 and study["resources"]["max_concurrent"] == 1
    # a numeric budget: as many evaluations as the preset's default (8 steps, every 2), so
    # every round(12 * 2 / 8) = 3 steps; both groups' schedules stretched to 12 steps with
    # the file's warm-up share (1000 of 120000 -> round(0.1) = 0)
    assert train["num_steps"] == 12 and train["eval_every"] == 3
    assert optim["lr_decay_steps"] == optim["lr_decay_steps_day"] == 12
    assert optim["lr_warmup_steps"] == optim["lr_warmup_steps_day"] == 0
    trials = read_trials(tmp_path / "r" / "o")
    assert len(trials) == 2
    assert [r["step"] for r in trials[0]["rows"]] == [1, 4, 7, 10, 12]


def test_file_uri_names_a_local_folder(tmp_path):
    from analysis.storage import resolve_storage

    for text in (f"file://{tmp_path}/r", str(tmp_path / "r")):
        storage = resolve_storage(text)
        assert not storage.remote and storage.local_root == tmp_path / "r"


@pytest.mark.ray
def test_a_trial_no_node_can_hold_fails_before_the_study_starts(ray_session, tiny_data,
                                                                tmp_path, capsys):
    preset = write_preset(tmp_path / "p.yaml")
    rc = run_cli("grid", "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "big", "--cpus-per-trial", "64", *TINY_SET)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: --cpus-per-trial: a trial asks for 64 CPU(s)")
    assert "largest: 2 CPU(s), 0 GPU(s)" in err[-1] and "--autoscaler-wait" in err[-1]
    assert not list((tmp_path / "r" / "big").glob("trial_*"))

    # told that the cluster autoscales: the study asks, says how long it waits, then fails
    # in one line when no such node joins (none can here)
    start = time.monotonic()
    rc = run_cli("grid", "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "big2", "--cpus-per-trial", "64", "--autoscaler-wait", "0.05",
                 *TINY_SET)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and 3 <= time.monotonic() - start < 60
    assert any(line.startswith("no node holds a trial's 64 CPU(s) yet") and
               "waits up to 0.05 min" in line for line in err), err
    assert err[-1].startswith("error: --autoscaler-wait 0.05: no node with 64 CPU(s) joined "
                              "in 0.05 min")
    assert not list((tmp_path / "r" / "big2").glob("trial_*"))


@pytest.mark.ray
def test_ladder_runs_one_study_per_rung_and_writes_the_transfer_table(ray_session, tiny_data,
                                                                      tmp_path):
    preset = write_preset(
        tmp_path / "ladder.yaml", name="tinyladder",
        blocks=[{"eps": {"values": [1e-8, 0.1]}}], seeds=1, claims="claims.yaml",
        budgets={"default": {"steps": 4, "eval_every": 2}},
        rungs=[{"name": "narrow", "budgets": {"default": {"steps": 4, "eval_every": 2}}},
               {"name": "wide", "set": {"model.n_units": 24},
                "budgets": {"default": {"steps": 6, "eval_every": 3, "seeds": 2}}},
               {"name": "official", "gpu": True, "set": {"model.n_units": 768},
                "budgets": {"default": {"steps": 6, "eval_every": 3}}}])
    rc = run_cli("grid", "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "lad", "--no-report", *TINY_SET)
    assert rc == 0
    ladder_dir = tmp_path / "r" / "lad"
    record = yaml.safe_load((ladder_dir / "ladder.yaml").read_text())
    assert [(r["name"], r["status"]) for r in record["rungs"]] == [
        ("narrow", "done"), ("wide", "done"), ("official", "skipped")]
    narrow = yaml.safe_load((ladder_dir / "rung-1-narrow" / "study.yaml").read_text())
    wide = yaml.safe_load((ladder_dir / "rung-2-wide" / "study.yaml").read_text())
    assert (narrow["rung"], wide["rung"]) == ("narrow", "wide")
    # the command line's --set model.n_units=16 comes after the rung's 24, so it wins
    assert wide["train_config"]["model"]["n_units"] == 16
    assert (narrow["budget_steps"], wide["budget_steps"]) == (4, 6)
    assert len(read_trials(ladder_dir / "rung-2-wide")) == 4  # 2 cells x 2 seeds
    assert not (ladder_dir / "rung-3-official").exists()
    from analysis.report import build_report

    out = build_report(ladder_dir)
    transfer = (out / "transfer.csv").read_text()
    assert "narrow" in transfer and "wide" in transfer
    assert "rung official: skipped" in (out / "summary.txt").read_text()


def test_the_record_names_the_generator_that_wrote_the_synthetic_data(tmp_path):
    from study.single import synthetic_generator
    from trainable.synthetic import SPEC_FILE

    (tmp_path / SPEC_FILE).write_text(yaml.safe_dump({"fingerprint": "x",
                                                      "generator_version": 2}))
    assert synthetic_generator(tmp_path) == "v2"
    (tmp_path / SPEC_FILE).write_text(yaml.safe_dump({"fingerprint": "x"}))
    assert synthetic_generator(tmp_path) == "v1"  # written before the field existed
