"""Faults a long study must survive without losing a trial: a killed driver (here in an
adaptive study's wave; a grid study's on cloud storage in tests/test_storage.py), a killed
trial worker, a lost node, NaN/Inf in training or data, a second study at the same time,
Ctrl-C.

Drivers run as real subprocesses (`python -m study.run`), each with its own local Ray under
a short RAY_TMPDIR; a run's processes are found by that RAY_TMPDIR in their environment, so
the tests stop what they started and nothing else. Trials are tiny (16 GRU units, 16
features): the tests wait on what the trials write (result.json rows), not on sleeps.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from support.runs import (Run, held, is_done, kill_all, new_rows, processes_of, trial_rows,
                          tune_state, wait_for)
from support.studies import EVAL_EVERY, STEPS, TINY_SET, run_cli, tiny_grid, write_preset
from trainable.contract import METRICS

SHORT = 60  # 7 evaluations: where a test needs a trial half-way, not a long window

pytestmark = [pytest.mark.ray, pytest.mark.slow]


# ------------------------------------------------------------------- helpers
@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path)
    yield r
    r.close()


def study_args(preset: Path, data: Path, storage: Path, name: str) -> list:
    return ["grid", "--preset", preset, "--data", data, "--storage", storage, "--name", name,
            "--no-report", *TINY_SET]


def eval_steps(steps: int = STEPS) -> list[int]:
    return sorted({*range(1, steps + 1, EVAL_EVERY), steps})


def assert_all_finished(exp: Path, planned: int, retried: tuple[str, ...] = ()
                        ) -> dict[str, list[dict]]:
    """Every planned trial has a folder, a final report and every evaluation's report;
    only trials that failed and were retried have an error file (Tune keeps it)."""
    rows = trial_rows(exp)
    assert len(rows) == planned, sorted(rows)
    unfinished = [name for name, r in rows.items() if not is_done(r)]
    assert not unfinished, unfinished
    for name, r in rows.items():
        assert sorted({row["step"] for row in r}) == eval_steps(r[-1]["budget_steps"]), name
    assert sorted(p.parent.name for p in exp.glob("trial_*/error.txt")) == sorted(retried)
    return rows


def worker_parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


# -------------------------------------------------------------------- faults
def test_killed_trial_worker_is_retried_from_its_checkpoint(ray_session, tiny_data, tmp_path):
    import threading

    preset = tiny_grid(tmp_path / "p.yaml", "workerkill", lr_max=(0.005,), seeds=2)
    exp = tmp_path / "r" / "w"
    killed: dict = {}

    def kill_a_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for name, rows in trial_rows(exp).items():
                if len(rows) >= 3 and not is_done(rows):  # its first checkpoint is known
                    killed.update(trial=name, pid=rows[-1]["pid"], rows=len(rows))
                    os.kill(rows[-1]["pid"], signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    rc = run_cli(*study_args(preset, tiny_data, tmp_path / "r", "w"))
    killer.join()
    assert rc == 0 and killed, killed
    rows = assert_all_finished(exp, planned=4, retried=(killed["trial"],))
    retried = [r for r in rows[killed["trial"]] if r["pid"] != killed["pid"]]
    assert retried[0]["step"] > 1  # from its checkpoint, not from the start
    counted = {n: t["num_failures"] for n, t in tune_state(exp).items()}
    assert counted[killed["trial"]] == 1 and sorted(counted.values()) == [0, 0, 0, 1]
    print(f"\nworker kill: trial {killed['trial']} killed after {killed['rows']} reports "
          f"(step {rows[killed['trial']][killed['rows'] - 1]['step']}), retried from its "
          f"checkpoint: next report at step {retried[0]['step']}; failures {counted}; "
          "4/4 finished, 0 lost")


CLUSTER = textwrap.dedent("""
    import json, sys
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                      "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    print(json.dumps({"address": cluster.address,
                      "head_raylet": cluster.head_node.all_processes["raylet"][0].process.pid,
                      "worker_raylet": worker.all_processes["raylet"][0].process.pid}),
          flush=True)
    for line in sys.stdin:
        if line.strip() == "remove":
            cluster.remove_node(worker)
            print("removed", flush=True)
        else:
            break
    cluster.shutdown()
""")


@pytest.mark.slow(seconds=28)
def test_lost_worker_node_trials_finish_on_the_head(run, tiny_data, tmp_path):
    nodes = run.start("cluster", "-c", CLUSTER, stdin=subprocess.PIPE)
    info = wait_for("the two-node cluster", lambda: next(
        (json.loads(line) for line in run.log("cluster").splitlines() if line.startswith("{")),
        None), nodes, log=lambda: run.log("cluster"))
    try:
        preset = tiny_grid(tmp_path / "p.yaml", "twonode", lr_max=(0.005,), seeds=2,
                           steps=SHORT)
        exp = tmp_path / "r" / "n"
        driver = run.study("driver", *study_args(preset, tiny_data, tmp_path / "r", "n"),
                           "--address", info["address"])

        def on_worker_node_midway():
            for name, rows in trial_rows(exp).items():
                if (len(rows) >= 3 and not is_done(rows)
                        and worker_parent(rows[-1]["pid"]) == info["worker_raylet"]):
                    return name, len(rows), rows[-1]["pid"]
            return None

        # the trial's own process is held still until the node goes
        moved, n_before, old_pid = wait_for("a trial half-way on the worker node",
                                            held(on_worker_node_midway, lambda v: [v[2]]),
                                            driver, log=lambda: run.log("driver"))
        nodes.stdin.write("remove\n")
        nodes.stdin.flush()
        wait_for("the node removal", lambda: "removed" in run.log("cluster"), nodes)
        assert driver.wait(timeout=240) == 0, run.log("driver")
        rows = assert_all_finished(exp, planned=4, retried=(moved,))
        after = [r for r in rows[moved][n_before:] if r["pid"] != old_pid]
        assert after[0]["step"] > 1  # from its checkpoint, not from the start
        assert after[-1]["step"] == SHORT
        # the moved trial now reports from a process of the head node
        new_pid = after[-1]["pid"]
        print(f"\nnode loss: trial {moved} moved after {n_before} reports, resumed at step "
              f"{after[0]['step']} (pid {old_pid} -> {new_pid}); 4/4 finished")
    finally:
        if nodes.poll() is None:
            nodes.stdin.write("stop\n")
            nodes.stdin.flush()
            nodes.wait(timeout=60)


GROWING = textwrap.dedent("""
    import json, sys
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                      "include_dashboard": False})
    print(json.dumps({"address": cluster.address}), flush=True)
    for line in sys.stdin:
        if line.strip() == "add":  # what an autoscaler does: a bigger node joins
            cluster.add_node(num_cpus=2)
            print("added", flush=True)
        else:
            break
    cluster.shutdown()
""")


@pytest.mark.slow(seconds=31)
def test_a_study_told_to_wait_for_the_autoscaler_starts_when_a_node_joins(run, tiny_data,
                                                                          tmp_path):
    nodes = run.start("cluster", "-c", GROWING, stdin=subprocess.PIPE)
    info = wait_for("the one-CPU cluster", lambda: next(
        (json.loads(line) for line in run.log("cluster").splitlines() if line.startswith("{")),
        None), nodes, log=lambda: run.log("cluster"))
    try:
        preset = tiny_grid(tmp_path / "p.yaml", "grow", lr_max=(0.005,), eps=(0.1,), seeds=1,
                           steps=20)
        exp = tmp_path / "r" / "g"
        driver = run.study("driver", *study_args(preset, tiny_data, tmp_path / "r", "g"),
                           "--address", info["address"], "--cpus-per-trial", "2",
                           "--autoscaler-wait", "2")
        wait_for("the study to ask the autoscaler", lambda: "asked the autoscaler" in
                 run.log("driver"), driver, log=lambda: run.log("driver"))
        assert "waits up to 2 min" in run.log("driver")
        nodes.stdin.write("add\n")
        nodes.stdin.flush()
        assert driver.wait(timeout=240) == 0, run.log("driver")
        assert "a node with 2 CPU(s) joined after" in run.log("driver")
        # a 2-CPU trial on a cluster whose only other node has 1 CPU: it ran on the new node
        assert_all_finished(exp, planned=1)
    finally:
        if nodes.poll() is None:
            nodes.stdin.write("stop\n")
            nodes.stdin.flush()
            nodes.wait(timeout=60)


@pytest.mark.slow(seconds=48)
def test_sigint_leaves_no_ray_processes_and_a_resumable_folder(run, tiny_data, tmp_path):
    preset = tiny_grid(tmp_path / "p.yaml", "ctrlc", lr_max=(0.005,), seeds=1, steps=SHORT)
    exp = tmp_path / "r" / "c"
    driver = run.study("first", *study_args(preset, tiny_data, tmp_path / "r", "c"))
    wait_for("a trial half-way", lambda: any(len(r) >= 4 and not is_done(r)
                                             for r in trial_rows(exp).values()),
             driver, log=lambda: run.log("first"))
    os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert driver.wait(timeout=60) == 130, run.log("first")
    before = trial_rows(exp)
    wait_for("the run's Ray processes to exit", lambda: not processes_of(run.ray_tmp),
             timeout=15)
    assert "resume" in run.log("first") and "Traceback" not in run.log("first")

    resumed = run.study("resume", "resume", exp, "--no-report")
    assert resumed.wait(timeout=240) == 0, run.log("resume")
    after = assert_all_finished(exp, planned=2)
    for name, rows in new_rows(before, after).items():
        if before.get(name) and not is_done(before[name]):
            assert rows and rows[0]["step"] > 1
    print(f"\nCtrl-C: {sum(is_done(r) for r in before.values())} finished before, "
          f"{len(before)} started; 2/2 after resume; no Ray process left")


@pytest.mark.slow(seconds=41)
def test_two_studies_at_once_keep_to_their_own_folders(run, tiny_data, tmp_path):
    presets = {"a": tiny_grid(tmp_path / "a.yaml", "a", lr_max=(0.002, 0.003), eps=(0.1,),
                              seeds=1, steps=40),
               "b": tiny_grid(tmp_path / "b.yaml", "b", lr_max=(0.004, 0.005), eps=(0.1,),
                              seeds=1, steps=40)}
    other = Run(tmp_path / "b")  # a second RAY_TMPDIR: each driver starts its own Ray
    try:
        drivers = {"a": run.study("a", *study_args(presets["a"], tiny_data, tmp_path / "ra",
                                                   "a")),
                   "b": other.study("b", *study_args(presets["b"], tiny_data, tmp_path / "rb",
                                                     "b"))}
        for name, proc in drivers.items():
            assert proc.wait(timeout=240) == 0, (run if name == "a" else other).log(name)
    finally:
        other.close()
    ids = {}
    for name, lrs in (("a", {0.002, 0.003}), ("b", {0.004, 0.005})):
        exp = tmp_path / f"r{name}" / name
        rows = assert_all_finished(exp, planned=2)
        assert sorted(p.name for p in exp.parent.iterdir()) == [name]
        params = [json.loads((exp / t / "params.json").read_text()) for t in rows]
        assert {p["lr_max"] for p in params} == lrs
        assert yaml.safe_load((exp / "study.yaml").read_text())["name"] == name
        ids[name] = {r[-1]["trial_id"] for r in rows.values()}
    assert not ids["a"] & ids["b"]


# ---------------------------------------------------------------- NaN and Inf
def nonfinite_metrics(exp: Path) -> list[str]:
    return [f"{name} step {r['step']}: {key}={r[key]}"
            for name, rows in trial_rows(exp).items() for r in rows
            for key in METRICS if not math.isfinite(r[key])]


# Adam with eps 1e-12, no clipping and no warm-up: lr_max >= 1e4 turns the first steps
# non-finite in the tiny model (test_trainer::test_nonfinite_loss_stops_cleanly_as_diverged).
EXPLODING = ["--set", "optim.eps=1e-12", "--set", "optim.grad_clip=1e12",
             "--set", "optim.lr_warmup_steps=0"]


@pytest.mark.parametrize("search", ["asha", "optuna"])
def test_diverging_trials_do_not_stop_a_search(ray_session, tiny_data, tmp_path, search):
    preset = write_preset(
        tmp_path / "p.yaml", name=f"nan{search}", search="random" if search == "asha"
        else "optuna", scheduler="asha", blocks=None, seeds=1, samples=6,
        axes={"lr_max": {"distribution": "loguniform", "low": 1e2, "high": 1e6}},
        budgets={"default": {"steps": 40, "eval_every": 4}},
        asha={"grace_fraction": 0.2, "reduction_factor": 2})
    rc = run_cli(search, "--preset", preset, "--data", tiny_data, "--storage", tmp_path / "r",
                 "--name", "x", "--no-report", *TINY_SET, *EXPLODING)
    assert rc == 0
    exp = tmp_path / "r" / "x"
    rows = trial_rows(exp)
    assert len(rows) == 6 and not list(exp.glob("trial_*/error.txt"))
    diverged = [n for n, r in rows.items() if r[-1]["diverged"]]
    assert diverged  # and the search went on to schedule every sample
    for name in diverged:
        last = rows[name][-1]
        assert is_done(rows[name]) and last["outcome"] == "diverged" and last["step"] < 40
        assert last["nonfinite_steps"] >= 1
    assert not nonfinite_metrics(exp)
    print(f"\n{search}: 6/6 trials scheduled, {len(diverged)} diverged, all metrics finite")


def test_nan_in_data_is_dropped_or_refused_before_ray(ray_session, tmp_path, capsys):
    from support.h5 import write_dataset

    data = write_dataset(tmp_path / "nan", n_features=16, defect="nan")
    preset = tiny_grid(tmp_path / "p.yaml", "nandata", lr_max=(0.005,), seeds=1, steps=20)
    rc = run_cli(*study_args(preset, data, tmp_path / "r", "refused"))
    assert rc == 2 and not (tmp_path / "r" / "refused").exists()
    assert "data.nonfinite_features=drop" in capsys.readouterr().err

    rc = run_cli(*study_args(preset, data, tmp_path / "r", "dropped"),
                 "--set", "data.nonfinite_features=drop")
    assert rc == 0
    exp = tmp_path / "r" / "dropped"
    assert_all_finished(exp, planned=2)
    assert yaml.safe_load((exp / "study.yaml").read_text())["data"]["dropped"] == 1
    assert not nonfinite_metrics(exp)


@pytest.mark.slow(seconds=54)
def test_adaptive_study_killed_in_a_wave_resumes_its_waves(run, tiny_data, tmp_path):
    from analysis.record import read_record
    from support.studies import adaptive_preset

    preset = adaptive_preset(tmp_path, steps=SHORT, eval_every=EVAL_EVERY)
    exp = tmp_path / "r" / "aw"
    driver = run.study("first", *study_args(preset, tiny_data, tmp_path / "r", "aw"))

    def second_wave_midway():
        rows = trial_rows(exp / "wave-02")
        return any(len(r) >= 4 and not is_done(r) for r in rows.values())

    wait_for("the second wave half-way",
             held(second_wave_midway, lambda _: processes_of(run.ray_tmp)), driver,
             timeout=300, log=lambda: run.log("first"))
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    kill_all(run.ray_tmp)
    first_before = trial_rows(exp / "wave-01")
    record = read_record(exp)
    assert len(record.adaptive.waves) == 2 and record.adaptive.waves[1].minutes is None
    assert all(is_done(r) for r in first_before.values()) and len(first_before) == 4

    resumed = run.study("resume", "resume", exp, "--no-report")
    assert resumed.wait(timeout=300) == 0, run.log("resume")
    record = read_record(exp)
    assert [len(w.trials) for w in record.adaptive.waves] == [4, 4]
    assert record.adaptive.waves[1].minutes is not None
    assert record.adaptive.stopped == "the budget is spent"
    assert trial_rows(exp / "wave-01") == first_before  # the finished wave was not re-run
    assert_all_finished(exp / "wave-02", planned=4)
    assert "resuming" in run.log("resume")
