"""Studies on cloud storage: `--storage s3://...` against a local S3-compatible server
(moto, started by the `s3_server` fixture on 127.0.0.1), and the failures a user must see
in one line (a store that does not answer, a missing bucket, an unknown scheme).

The drivers run as subprocesses with their own local Ray (tests/support/runs.py's
`Run`), so the trial workers inherit the AWS variables, as they would on a cluster whose
nodes carry credentials."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from analysis.storage import resolve_storage, split_study_uri
from support.runs import (ROOT, Run, held, is_done, kill_all, new_rows, processes_of, trial_rows,
                          tune_state, wait_for)
from support.studies import EVAL_EVERY, STEPS, TINY_SET, run_cli, tiny_grid


def bucket_files(s3_server, prefix: str) -> list[str]:
    from pyarrow import fs

    s3 = resolve_storage(f"s3://{s3_server['bucket']}").fs
    selector = fs.FileSelector(f"{s3_server['bucket']}/{prefix}", recursive=True,
                               allow_not_found=True)
    return sorted(i.path.split("/", 1)[1] for i in s3.get_file_info(selector)
                  if i.type == fs.FileType.File)


def download(s3_server, prefix: str, target: Path) -> Path:
    """The study's files but checkpoints, Tune's state files included (the test's own view
    of the bucket); a file deleted while listing (Tune rotates files) is skipped."""
    from pyarrow import fs

    s3 = resolve_storage(f"s3://{s3_server['bucket']}").fs
    base = f"{s3_server['bucket']}/{prefix}"
    target.mkdir(parents=True, exist_ok=True)
    selector = fs.FileSelector(base, recursive=True, allow_not_found=True)
    for info in s3.get_file_info(selector):
        rel = info.path[len(base):].lstrip("/")
        if info.type != fs.FileType.File or "checkpoint_" in rel:
            continue
        try:
            with s3.open_input_stream(info.path) as src:
                data = src.read()
        except OSError:
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    return target


@pytest.fixture
def run(tmp_path, s3_server, monkeypatch):
    monkeypatch.setenv("B2T_STORAGE_CACHE", str(tmp_path / "mirror"))
    r = Run(tmp_path)
    # Tune snapshots its experiment state (trial statuses, what a resume starts from) at
    # most every 10 s by default; every second here, so that the test's view of the bucket
    # is as fresh as a local folder's and its kill lands mid-study on a fast machine too.
    r.env.update({k: os.environ[k] for k in os.environ if k.startswith("AWS_")},
                 B2T_STORAGE_CACHE=str(tmp_path / "mirror"), TUNE_GLOBAL_CHECKPOINT_S="1")
    yield r
    r.close()


# ----------------------------------------------------------------- one-line failures
def test_a_store_that_does_not_answer_fails_fast_in_one_line(tmp_path, tiny_data, capsys,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("B2T_STORAGE_CACHE", str(tmp_path / "mirror"))
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    start = time.monotonic()
    rc = run_cli("grid", "--budget", "smoke", "--storage", "s3://bucket/exp",
                 "--storage-endpoint", closed, "--data", tiny_data, *TINY_SET)
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("error: --storage s3://bucket/exp: the store at")
    assert "does not answer" in err[0] and "--storage-endpoint" in err[0]
    assert elapsed < 30
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "mirror").exists()
    assert run_cli("resume", "s3://bucket/exp/name", "--storage-endpoint", closed) == 2
    assert "does not answer" in capsys.readouterr().err


def test_a_missing_bucket_and_an_unknown_scheme_are_named(s3_server, tmp_path, tiny_data,
                                                          capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("grid", "--storage", "s3://no-such-bucket/x", "--data", tiny_data,
                   *TINY_SET) == 2
    assert "bucket 'no-such-bucket' not found" in capsys.readouterr().err
    assert run_cli("grid", "--storage", "nope://x/y", "--data", tiny_data, *TINY_SET) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope:// is not a storage" in err[0]
    assert not (tmp_path / "nope:").exists()


def test_a_uri_with_one_slash_is_not_taken_for_a_folder(tmp_path, monkeypatch):
    from trainable.errors import UserError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="looks like a URI with one slash; write s3://b/x"):
        resolve_storage("s3:/b/x")
    assert not (tmp_path / "s3:").exists()


def test_a_store_failing_after_the_check_gives_one_line_not_a_traceback():
    from trainable.errors import UserError

    from analysis.storage import s3_filesystem

    storage = resolve_storage("s3://bucket/x", "http://127.0.0.1:9")
    # the study's own client retries for about two minutes (a store away for half a
    # minute costs a wait); one attempt here, the error path is the same
    storage.fs = s3_filesystem("http://127.0.0.1:9", 1, 1.0)
    with pytest.raises(UserError, match=r"s3://bucket/x: listing s3://bucket/x/s failed"):
        storage.exists("s")


def test_study_uris_split_into_storage_and_name(tmp_path):
    storage, name = split_study_uri("s3://bucket/a/b/study-1", "http://127.0.0.1:1")
    assert (storage.root, name, storage.remote) == ("bucket/a/b", "study-1", True)
    assert storage.uri(name) == "s3://bucket/a/b/study-1"
    local, name = split_study_uri(str(tmp_path / "r" / "s"))
    assert (Path(local.root), name, local.remote) == (tmp_path / "r", "s", False)
    local, name = split_study_uri(f"file://{tmp_path}/r/s")
    assert (Path(local.root), name) == (tmp_path / "r", "s")


class Outage:
    """A TCP forwarder between the study and the S3 server that can go away: while it is
    down, connections are refused and open ones are cut, as when a store is unreachable."""

    def __init__(self, target_port: int):
        import socket
        import threading

        self.target = target_port
        self.up = threading.Event()
        self.up.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.close()
        self.conns: list = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _pipe(self, a, b) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def _serve(self) -> None:
        import socket
        import threading

        while not self.stop.is_set():
            if not self.up.is_set():
                time.sleep(0.05)
                continue
            server = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
            server.settimeout(0.1)
            while self.up.is_set() and not self.stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self.conns += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
            server.close()
            for sock in self.conns:  # cut what was open
                with contextlib.suppress(OSError):
                    sock.close()
            self.conns = []

    def down(self, seconds: float) -> None:
        self.up.clear()
        time.sleep(seconds)
        self.up.set()

    def close(self) -> None:
        self.stop.set()
        self.up.set()
        self.thread.join(timeout=5)


# ----------------------------------------------------------------- end to end
@pytest.mark.ray
@pytest.mark.slow(seconds=130)
def test_a_study_on_s3_survives_a_killed_driver_and_a_30_s_outage_losing_nothing(
        run, s3_server, tiny_data, tmp_path):
    """The driver is SIGKILLed mid-study; the study is resumed from the bucket alone, and
    while the resumed study runs the store goes away for 30 s. No trial is lost, none that
    had finished runs again, the one killed mid-way continues from its checkpoint, and
    the report is then built from the URI on a machine without the mirror."""
    preset = tiny_grid(tmp_path / "p.yaml", "s3killed")  # 4 cells x 2 seeds, 100 steps
    uri = f"s3://{s3_server['bucket']}/killed"
    driver = run.study("first", "grid", "--preset", preset, "--data", tiny_data,
                       "--storage", uri, "--name", "k", "--no-report", *TINY_SET)
    view = tmp_path / "view"

    def finished_and_midway():
        exp = download(s3_server, "killed/k", view / str(time.monotonic_ns()))
        rows, state = trial_rows(exp), tune_state(exp)
        # finished: the final report is in the bucket and so is Tune's snapshot saying so
        done = [n for n, r in rows.items()
                if is_done(r) and state.get(n, {}).get("status") == "TERMINATED"]
        midway = [n for n, r in rows.items() if len(r) >= 5 and not is_done(r)]
        return len(done) >= 2 and midway

    # every process of the study held still once seen, so the kill leaves what was seen
    wait_for("2 trials finished and one half-way in the bucket",
             held(finished_and_midway, lambda _: processes_of(run.ray_tmp)), driver,
             timeout=400, log=lambda: run.log("first"))
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    kill_all(run.ray_tmp)
    before_dir = download(s3_server, "killed/k", view / "before")
    before, state = trial_rows(before_dir), tune_state(before_dir)
    finished = [n for n, r in before.items()
                if is_done(r) and state[n]["status"] == "TERMINATED"]
    midway = [n for n, r in before.items() if len(r) >= 5 and not is_done(r)]
    assert len(finished) >= 2 and midway and len(finished) < 8  # killed mid-study
    assert "killed/k/study.yaml" in bucket_files(s3_server, "killed/k")
    assert not (ROOT / "s3:").exists()  # nothing written to a folder named after the URI

    # resume from the URI, through a link to the store that can be cut
    outage = Outage(s3_server["port"])
    try:
        resumed = run.study("resume", "resume", f"{uri}/k", "--no-report",
                            "--storage-endpoint", f"http://127.0.0.1:{outage.port}")

        def resumed_trial_finished():
            rows = trial_rows(download(s3_server, "killed/k", view / str(time.monotonic_ns())))
            done = sum(is_done(r) for r in rows.values())
            return done > len([n for n in before if is_done(before[n])]) and done < 8

        wait_for("a trial finished after the resume", resumed_trial_finished, resumed,
                 timeout=400, log=lambda: run.log("resume"))
        assert resumed.poll() is None, "the study ended before the store went away"
        outage.down(30)
        assert resumed.wait(timeout=600) == 0, run.log("resume")
    finally:
        outage.close()
    log = run.log("resume")
    assert "Trial task failed" not in log, log[-3000:]  # waited, did not fail and retry

    after = trial_rows(download(s3_server, "killed/k", view / "after"))
    unfinished = {n: [r["step"] for r in rows] for n, rows in after.items() if not is_done(rows)}
    assert len(after) == 8 and not unfinished, (unfinished, log[-3000:])
    added = new_rows(before, after)
    assert all(not added[n] for n in finished)  # finished trials were not run again
    for name in midway:  # continued from its checkpoint in the bucket, not from step 1
        assert added[name][0]["step"] > 1 and added[name][-1]["step"] == STEPS
    for name, rows in after.items():
        assert sorted({r["step"] for r in rows}) == sorted({*range(1, STEPS + 1, EVAL_EVERY),
                                                            STEPS}), name
    cells = {(json.loads((view / "after" / n / "params.json").read_text())["cell"],
              json.loads((view / "after" / n / "params.json").read_text())["seed"])
             for n in after}
    assert cells == {(c, s) for c in range(4) for s in range(2)}  # none lost, none twice

    # the finished study keeps one checkpoint per trial in the bucket
    checkpoints: dict[str, set[str]] = {}
    for f in bucket_files(s3_server, "killed/k"):
        if "/checkpoint_" in f:
            checkpoints.setdefault(f.split("/")[2], set()).add(f.split("/")[3])
    assert len(checkpoints) == 8 and all(len(c) == 1 for c in checkpoints.values())

    # the report from the URI alone, on a machine without the mirror: pulled, built, pushed
    out = tmp_path / "copy"
    run.env["B2T_STORAGE_CACHE"] = str(tmp_path / "other-mirror")
    report = run.start("report", "-m", "analysis.report", f"{uri}/k", "--out", out,
                       "--no-figures")
    assert report.wait(timeout=180) == 0, run.log("report")
    assert (out / "summary.txt").read_text().startswith("Stability study k")
    assert {"killed/k/report/summary.txt", "killed/k/report/report.html"} <= set(
        bucket_files(s3_server, "killed/k/report"))
    assert (tmp_path / "other-mirror" / "s3" / "b2t" / "killed" / "k" / "study.yaml").is_file()
    replayed = [n for n, r in before.items() if is_done(r) and n not in finished]
    print(f"\nSIGKILL on s3: {len(finished)} finished before, {len(replayed)} finished after "
          f"the last snapshot, {len(midway)} resumed mid-way, {8 - len(before)} never "
          "started; store away 30 s during the resume; 8/8 finished, 0 lost")


HEAD_WITH_DASHBOARD = """
import json, sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1",
    "dashboard_port": int(sys.argv[1]), "dashboard_agent_listen_port": int(sys.argv[2])})
print(json.dumps({"address": cluster.address}), flush=True)
sys.stdin.readline()
cluster.shutdown()
"""


@pytest.mark.ray
@pytest.mark.slow(seconds=35)
def test_ray_job_submit_runs_a_study_on_the_cluster_with_s3_storage(run, s3_server, tiny_data,
                                                                   tmp_path, free_port):
    """The Ray way to run on a cluster: `ray job submit --working-dir . -- python -m
    study.run grid --address auto --storage s3://...`; the Jobs API (the dashboard's Jobs
    page) lists the study, and its trials land in the bucket."""
    import subprocess
    import sys

    # the job agent's own port too: the session's Ray instance (other tests) holds Ray's
    # default (52365), and a head whose agent cannot listen takes no job
    port, agent = free_port(), free_port()
    head = run.start("head", "-c", HEAD_WITH_DASHBOARD, port, agent, stdin=subprocess.PIPE)
    try:
        wait_for("the head node", lambda: "address" in run.log("head"), head, timeout=120,
                 log=lambda: run.log("head"))
        preset = tiny_grid(tmp_path / "p.yaml", "job", lr_max=(0.005,), seeds=1, steps=20)
        ray_cli = str(Path(sys.executable).parent / "ray")
        submit = [ray_cli, "job", "submit", "--address", f"http://127.0.0.1:{port}",
                  "--submission-id", "b2t-study-j", "--working-dir", str(ROOT), "--",
                  sys.executable, "-m", "study.run", "grid", "--preset", str(preset),
                  "--data", str(tiny_data), "--address", "auto", "--storage",
                  f"s3://{s3_server['bucket']}/jobs", "--name", "j", "--no-report",
                  *TINY_SET]
        deadline = time.monotonic() + 120
        while True:  # the head's job agent answers some seconds after the dashboard does
            job = subprocess.run(submit, cwd=ROOT, env=run.env, capture_output=True,
                                 text=True, timeout=300)
            if "No available agent to submit job" not in job.stderr \
                    or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert job.returncode == 0, (job.stdout + job.stderr)[-3000:]
        assert "study j: 2 trials of 20 steps" in job.stdout + job.stderr
        assert "Job 'b2t-study-j' succeeded" in job.stdout + job.stderr

        from ray.job_submission import JobStatus, JobSubmissionClient

        info = JobSubmissionClient(f"http://127.0.0.1:{port}").get_job_info("b2t-study-j")
        assert info.status == JobStatus.SUCCEEDED and "study.run grid" in info.entrypoint
    finally:
        head.stdin.write("stop\n")
        head.stdin.flush()
        head.wait(timeout=60)
    rows = trial_rows(download(s3_server, "jobs/j", tmp_path / "view"))
    assert len(rows) == 2 and all(is_done(r) for r in rows.values())


def test_the_patient_s3_filesystem_keeps_its_retries_through_pickling(s3_server):
    import pickle

    from study.storage import PatientS3, tune_filesystem

    storage = resolve_storage(f"s3://{s3_server['bucket']}/p", s3_server["endpoint"])
    filesystem = pickle.loads(pickle.dumps(tune_filesystem(storage)))
    handler = filesystem.handler
    assert isinstance(handler, PatientS3) and handler.attempts >= 10
    with filesystem.open_output_stream("b2t/p/x.txt") as out:
        out.write(b"kept")
    assert storage.fs.open_input_stream("b2t/p/x.txt").read() == b"kept"


def test_on_cloud_storage_tune_keeps_every_checkpoint_while_the_study_runs(tmp_path):
    from types import SimpleNamespace

    from study.place import Place
    from study.runner import _run_config

    record = SimpleNamespace(axes={"eps": "optim.eps"}, name="s", loggers={})
    place = Place(resolve_storage("s3://bucket/p", "http://127.0.0.1:9"), "s")
    config = _run_config(place, "wave-02", record, 4)
    assert (config.storage_path, config.name) == ("bucket/p/s", "wave-02")
    assert config.checkpoint_config.num_to_keep is None
    assert config.storage_filesystem.type_name == "py::s3-patient"


TWO_NODES = """
import json, sys
from ray.cluster_utils import Cluster

# Two nodes of one CPU each, each with a node-local data folder of its own (on separate
# machines these would be their own disks).
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "env_vars": {"B2T_NODE_CACHE": sys.argv[1]}})
cluster.add_node(num_cpus=1, env_vars={"B2T_NODE_CACHE": sys.argv[2]})
cluster.wait_for_nodes()
print(json.dumps({"address": cluster.address}), flush=True)
sys.stdin.readline()
cluster.shutdown()
"""


@pytest.mark.ray
@pytest.mark.slow(seconds=40)
def test_data_over_the_memory_limit_reaches_a_second_node_through_the_bucket_once(
        run, s3_server, tiny_data, tmp_path):
    """A two-node cluster, s3:// storage and data over the object-store limit (set to 0
    bytes here): the driver packs and uploads the data once, the trials on the other node
    fetch it once between them, and every trial finishes."""
    import subprocess

    head_cache, worker_cache = tmp_path / "node-head", tmp_path / "node-worker"
    cluster = run.start("cluster", "-c", TWO_NODES, head_cache, worker_cache,
                        stdin=subprocess.PIPE)
    try:
        wait_for("the cluster", lambda: "address" in run.log("cluster"), cluster,
                 timeout=120, log=lambda: run.log("cluster"))
        address = json.loads(run.log("cluster").strip().splitlines()[-1])["address"]
        run.env["B2T_OBJECT_STORE_LIMIT"] = "0"
        preset = tiny_grid(tmp_path / "p.yaml", "nodes", lr_max=(0.005,), seeds=2, steps=20)
        study = run.study("study", "grid", "--preset", preset, "--data", tiny_data,
                          "--address", address, "--storage",
                          f"s3://{s3_server['bucket']}/nodes", "--name", "n", "--no-report",
                          "--max-concurrent", "2", *TINY_SET)
        assert study.wait(timeout=300) == 0, run.log("study")[-3000:]
    finally:
        cluster.stdin.write("stop\n")
        cluster.stdin.flush()
        cluster.wait(timeout=60)
    log = run.log("study")
    assert "uploading the packed data" in log and log.count("uploading the packed data") == 1
    assert bucket_files(s3_server, "nodes/.datacache")  # the pack is in the bucket
    fetches = (worker_cache / "fetches.log").read_text().splitlines()
    assert len(fetches) == 1, fetches  # the second node fetched once for its trials
    assert not (head_cache / "fetches.log").exists()  # the driver's node maps its own pack
    rows = trial_rows(download(s3_server, "nodes/n", tmp_path / "view"))
    assert len(rows) == 4 and all(is_done(r) for r in rows.values())
