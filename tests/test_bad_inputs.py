"""Bad input: every user mistake ends the real CLI with exit code 2 and one line on stderr
naming the file, key or flag and what to do: no traceback, no Ray start-up (its temp dir
stays empty), nothing written, and an existing experiment folder left byte for byte."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from support.h5 import write_dataset
from support.runs import ROOT
from support.studies import TINY_SET

GRID = ["-m", "study.run", "grid", "--storage", "{storage}", "--name", "new", "--no-report",
        *TINY_SET]
GOOD = ["--data", "{data}/good"]
DEFECTS = ("missing_features", "wrong_features", "label_range", "seq_len_long",
           "all_too_short", "nan", "missing_attr")

# (case, argv with {placeholders}, words the one stderr line must contain)
CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    ("malformed YAML", [*GRID, *GOOD, "--train-config", "{inputs}/bad.yaml"],
     ("bad.yaml", "not valid YAML (line 3)", "fix the syntax")),
    ("unknown config key", [*GRID, *GOOD, "--set", "optim.nope=1"],
     ("unknown config key 'optim.nope'",)),
    ("misspelt config key", [*GRID, *GOOD, "--set", "optim.lr_mx=0.01"],
     ("'optim.lr_mx'", "did you mean 'lr_max'")),
    ("eps = 0", [*GRID, *GOOD, "--set", "optim.eps=0"], ("optim.eps=0", "greater than 0")),
    ("lr_max <= 0", [*GRID, *GOOD, "--set", "optim.lr_max=-0.01"],
     ("optim.lr_max=-0.01", "greater than 0")),
    ("lr_min above lr_max", [*GRID, *GOOD, "--set", "optim.lr_min=0.1"],
     ("optim: lr_min=0.1 is above lr_max=0.005", "set lr_min <= lr_max")),
    ("negative white noise", [*GRID, *GOOD, "--set", "augment.white_noise_std=-1"],
     ("augment.white_noise_std=-1", "greater than or equal to 0")),
    ("preset axis not in config", [*GRID, *GOOD, "--preset", "{inputs}/nope.yaml"],
     ("axis 'nope'", "'optim.nope'", "not a training config key")),
    ("unknown preset", [*GRID, *GOOD, "--preset", "nosuch"],
     ("--preset nosuch", "unknown preset", "choose one of")),
    ("bad --set syntax", [*GRID, *GOOD, "--set", "optim.eps"],
     ("--set 'optim.eps'", "expected key=value")),
    ("unknown budget", [*GRID, *GOOD, "--budget", "huge"], ("--budget huge", "expected one of")),
    ("synthetic spec with --data", [*GRID, *GOOD, "--synthetic-spec",
                                    "configs/data/calibrated.yaml"],
     ("--synthetic-spec", "generated only without --data", "drop one of them")),
    ("optuna with 2 seeds", [*GRID[:2], "optuna", *GRID[3:], *GOOD, "--seeds", "2"],
     ("optuna", "--seeds 1")),
    ("--data does not exist", [*GRID, "--data", "{data}/missing"],
     ("--data", "missing", "does not exist")),
    ("data folder without sessions", [*GRID, "--data", "{data}/empty"],
     ("empty", "no session folders", "data_train.hdf5")),
    ("truncated HDF5", [*GRID, "--data", "{data}/truncated"],
     ("truncated/", "data_train.hdf5", "not a readable HDF5 file", "truncated file")),
    ("not an HDF5 file", [*GRID, "--data", "{data}/not_hdf5"],
     ("not_hdf5/", "not a readable HDF5 file", "file signature not found")),
    ("missing input_features", [*GRID, "--data", "{data}/missing_features"],
     ("trial_0001", "missing dataset 'input_features'")),
    ("missing attribute", [*GRID, "--data", "{data}/missing_attr"],
     ("trial_0001", "missing attribute 'n_time_steps'")),
    ("feature count differs", [*GRID, "--data", "{data}/wrong_features"],
     ("17 features", "data.n_features=16", "--set data.n_features=17")),
    ("label id out of range", [*GRID, "--data", "{data}/label_range"],
     ("trial_0001", "label id 41 outside 1..40")),
    ("seq_len longer than labels", [*GRID, "--data", "{data}/seq_len_long"],
     ("trial_0001", "seq_len=501", "500 stored labels")),
    ("every trial too short", [*GRID, "--data", "{data}/all_too_short"],
     ("no usable training trials", "18 too short", "model.patch_size")),
    ("NaN features, default policy", [*GRID, "--data", "{data}/nan"],
     ("trial_0001", "NaN/Inf", "data.nonfinite_features=drop")),
    ("experiment folder exists", [*GRID, *GOOD, "--name", "old"],
     ("results/old", "already exists", "study.run resume")),
    ("resume: not an experiment", ["-m", "study.run", "resume", "{storage}/not_an_experiment"],
     ("not_an_experiment", "not an experiment folder", "study.yaml")),
    ("resume: no Tune state", ["-m", "study.run", "resume", "{storage}/no_state"],
     ("no_state", "Tune saved no experiment state", "start the study again")),
    ("resume: data changed", ["-m", "study.run", "resume", "{storage}/data_changed"],
     ("good", "data changed since the study started", "restore the data")),
    ("--address: nothing listens", [*GRID, *GOOD, "--address", "127.0.0.1:1"],
     ("--address 127.0.0.1:1", "no Ray cluster answers", "drop --address")),
    ("--address: not a Ray head", [*GRID, *GOOD, "--address", "127.0.0.1:{listener}"],
     ("not a Ray head", "drop --address")),
    ("trainable: eps <= 0", ["-m", "trainable", *GOOD, *TINY_SET, "--set", "optim.eps=0"],
     ("optim.eps=0", "greater than 0")),
]


def tree_bytes(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Datasets with planted defects, bad config files, and a storage folder holding an
    experiment (with a marker file) that no failed command may touch."""
    from trainable.config import load_config
    from trainable.data import load_dataset

    base = tmp_path_factory.mktemp("bad")
    data, inputs, storage = base / "data", base / "inputs", base / "results"
    good = write_dataset(data / "good", n_features=16)
    for defect in DEFECTS:
        write_dataset(data / defect, n_features=16, defect=defect)
    shutil.copytree(good, data / "truncated")
    first = next((data / "truncated").glob("*/data_train.hdf5"))
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    shutil.copytree(good, data / "not_hdf5")
    next((data / "not_hdf5").glob("*/data_train.hdf5")).write_text("trial,feature\n1,0.5\n")
    (data / "empty" / "notes").mkdir(parents=True)

    inputs.mkdir()
    (inputs / "bad.yaml").write_text("optim:\n  eps: [0.1\n  lr_max: 0.005\n")
    (inputs / "nope.yaml").write_text(yaml.safe_dump({
        "name": "nope", "search": "grid", "seeds": 1, "claims": None,
        "blocks": [{"nope": {"key": "optim.nope", "values": [1, 2]}}],
        "budgets": {"default": {"steps": 8, "eval_every": 2}}}))

    old = storage / "old"
    (old / "trial_0").mkdir(parents=True)
    (old / "study.yaml").write_text("name: old\n")
    (old / "MARKER").write_text("do not touch\n")
    (old / "trial_0" / "result.json").write_text('{"step": 1}\n')
    (storage / "not_an_experiment").mkdir()
    (storage / "not_an_experiment" / "notes.txt").write_text("mine\n")
    cfg = load_config(overrides=dict(o.split("=") for o in TINY_SET[1::2]))
    study = {"name": "x", "preset": "grid", "kind": "confirmatory", "search": "grid",
             "scheduler": "fifo", "metric": "val_per", "mode": "min",
             "axes": {"eps": {"key": "optim.eps", "values": [0.1]}},
             "blocks": [{"axes": ["eps"]}], "points": [{"eps": 0.1}], "seeds": [0],
             "n_trials": 1, "budget": "default", "budget_steps": 8, "eval_every": 2,
             "train_config_file": "proxy.yaml", "train_config": cfg.model_dump(mode="json"),
             "data": {"path": str(good), "synthetic": False, "n_sessions": 1,
                      "n_train_trials": 1, "n_val_trials": 1,
                      "fingerprint": load_dataset(good, cfg).fingerprint()},
             "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0}, "versions": {},
             "cli": "python -m study.run grid", "started": "2026-11-25T18:00:00",
             "preset_config": {}}
    for name, fingerprint in (("no_state", study["data"]["fingerprint"]),
                              ("data_changed", "0123456789abcdef")):
        (storage / name).mkdir()
        (storage / name / "study.yaml").write_text(yaml.safe_dump(
            {**study, "data": {**study["data"], "fingerprint": fingerprint}}))
    (storage / "data_changed" / "tuner.pkl").write_bytes(b"not read before the data check")
    return {"data": data, "inputs": inputs, "storage": storage}


def run_case(argv: list[str], env: dict) -> tuple[int, str, str, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def test_bad_input_fails_fast_with_one_clear_line(world):
    ray_tmp = Path(tempfile.mkdtemp(prefix="b2t-rel-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(ray_tmp), TMPDIR=str(ray_tmp), PYTHONPATH=str(ROOT))
    listener = socket.socket()  # accepts TCP connections but never speaks gRPC
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    names = {**{k: str(v) for k, v in world.items()}, "listener": listener.getsockname()[1]}
    before = tree_bytes(world["storage"])
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(
                lambda case: run_case([a.format(**names) for a in case[1]], env), CASES))
        problems, table = [], []
        for (case, _, words), (rc, out, err, seconds) in zip(CASES, results):
            lines = [line for line in err.splitlines() if line.strip()]
            table.append(f"{case:32} {seconds:4.1f} s  {lines[0] if lines else '(nothing)'}")
            line = lines[0] if lines else ""
            if rc != 2 or len(lines) != 1 or not line.startswith("error: "):
                problems.append(f"{case}: exit {rc}, stderr:\n{err}")
            elif missing := [w for w in words if w not in line]:
                problems.append(f"{case}: {missing} not in {line!r}")
            if "Traceback" in out + err or seconds > 30:
                problems.append(f"{case}: traceback or slow ({seconds:.1f} s)")
        print("\n" + "\n".join(table))
        assert not problems, "\n".join(problems)
        assert tree_bytes(world["storage"]) == before  # nothing created, nothing changed
        assert not any(ray_tmp.iterdir())  # no command got as far as starting Ray
    finally:
        listener.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
