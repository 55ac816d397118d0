"""Study drivers as real subprocesses (`python -m study.run`), each with its own local Ray
under a short RAY_TMPDIR, and what their trials write. A run's processes are found by that
RAY_TMPDIR in their environment, so a test stops what it started and nothing else; the
helpers wait on result.json rows, not on sleeps."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def rows_of(trial_dir: Path) -> list[dict]:
    """The reports in a trial's result.json; a line Tune is still writing is skipped."""
    path = trial_dir / "result.json"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
    return rows


def trial_rows(exp: Path) -> dict[str, list[dict]]:
    return {d.name: rows_of(d) for d in sorted(exp.glob("trial_*"))}


def is_done(rows: list[dict]) -> bool:
    return bool(rows) and bool(rows[-1]["completed"])


def processes_of(ray_tmp: Path) -> list[int]:
    """PIDs whose environment names this run's RAY_TMPDIR: the driver, Ray's daemons and
    the trial workers (which sit in sessions of their own, out of the driver's group)."""
    marker = f"RAY_TMPDIR={ray_tmp}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:  # gone, or not ours
                pass
    return pids


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def held(condition: Callable[[], object], pids: Callable[[object], list[int]]
         ) -> Callable[[], object]:
    """`condition` for wait_for, made to hold until the test acts on it. Trials of the tiny
    model run hundreds of steps a second, so a trial seen half-way may finish before a
    kill lands. Once `condition` is seen, the processes `pids(value)` are stopped
    (SIGSTOP) and it is checked again: if it still holds, nothing moves until the test
    kills them; if not, they go on and the wait goes on."""
    def check():
        if not (value := condition()):
            return value
        stopped = pids(value)
        signal_all(stopped, signal.SIGSTOP)
        if not (value := condition()):
            signal_all(stopped, signal.SIGCONT)
        return value
    return check


def kill_all(ray_tmp: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (pids := processes_of(ray_tmp)) and time.monotonic() < deadline:
        signal_all(pids, signal.SIGKILL)
        time.sleep(0.2)
    assert not processes_of(ray_tmp)


class Run:
    """A short RAY_TMPDIR for one test's Ray instances; everything started under it is
    killed at the end, even when the test fails."""

    def __init__(self, tmp_path: Path):
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="b2t-rel-", dir="/tmp"))
        self.logs = tmp_path / "logs"
        self.logs.mkdir(parents=True)
        self.env = dict(os.environ, RAY_TMPDIR=str(self.ray_tmp), TMPDIR=str(self.ray_tmp),
                        RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                        PYTHONPATH=str(ROOT))
        self.env.pop("RAY_ADDRESS", None)
        self.files: list = []

    def start(self, name: str, *argv, stdin=None) -> subprocess.Popen:
        """A process in a session of its own (so a signal to its group reaches only it and
        the Ray daemons it starts), its output in logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the run
        self.files.append(log)
        return subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=stdin,
                                start_new_session=True, text=True)

    def study(self, name: str, *argv) -> subprocess.Popen:
        return self.start(name, "-m", "study.run", *argv)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def close(self) -> None:
        try:
            kill_all(self.ray_tmp)
        finally:
            for f in self.files:
                f.close()
            shutil.rmtree(self.ray_tmp, ignore_errors=True)


def wait_for(what: str, condition: Callable[[], object], proc: subprocess.Popen | None = None,
             timeout: float = 120.0, log: Callable[[], str] = lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process exited ({proc.returncode}) before {what}:\n{log()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{log()[-3000:]}")


def tune_state(exp: Path) -> dict[str, dict]:
    """Trial folder -> {status, num_failures} in Tune's latest experiment-state snapshot
    (what a resume starts from); empty while none is written."""
    with contextlib.suppress(ValueError):
        state = json.loads(max(exp.glob("experiment_state-*.json")).read_text())
        return {f"trial_{json.loads(t[0])['trial_id']}": {"status": json.loads(t[0])["status"],
                                                         **json.loads(t[1])}
                for t in state["trial_data"]}
    return {}


def new_rows(before: dict[str, list], after: dict[str, list]) -> dict[str, list[dict]]:
    return {name: rows[len(before.get(name, [])):] for name, rows in after.items()}
