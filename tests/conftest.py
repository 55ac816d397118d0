"""Shared test set-up. Ray writes only under the project's short temp dir (see
raytune_notes.md: AF_UNIX paths must stay under 107 bytes, so not under tmp_path)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RAY_TMP = Path(os.environ.get("B2T_TEST_RAY_TMP", "/tmp/b2t-ray-tests"))
# The suite runs in two pytest-xdist workers (pyproject addopts): each worker's Ray
# instances and study subprocesses get a temp dir of their own.
if os.environ.get("PYTEST_XDIST_WORKER"):
    RAY_TMP = RAY_TMP / os.environ["PYTEST_XDIST_WORKER"]

os.environ.setdefault("RAY_TMPDIR", str(RAY_TMP))
# Ray runs its workers at niceness 15 by default, so a trial of one test would all but stop
# while the other pytest worker computes; here they share the CPU evenly.
os.environ.setdefault("RAY_worker_niceness", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
os.environ.pop("RAY_ADDRESS", None)
# Ray workers must import the project and the tests' helpers.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def ray_session():
    import ray

    RAY_TMP.mkdir(parents=True, exist_ok=True)
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                   object_store_memory=200 * 1024**2, _temp_dir=str(RAY_TMP))
    yield ctx
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from support.h5 import write_dataset

    return write_dataset(tmp_path_factory.mktemp("tiny") / "data", n_features=16)


@pytest.fixture
def tiny_config():
    from trainable.config import load_config

    def make(**extra):
        from support.studies import TINY_OVERRIDES

        overrides = dict(TINY_OVERRIDES)
        overrides.update({k.replace("__", "."): v for k, v in extra.items()})
        return load_config(overrides=overrides)

    return make


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port():
    """A function returning a TCP port free on 127.0.0.1 at the time of the call."""
    return _free_port


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A local S3-compatible server (moto, from the test extras) on 127.0.0.1 with the
    bucket `b2t`; the AWS variables point every process of the session at it. Stopped when
    the session ends."""
    import shutil
    import socket
    import subprocess
    import time

    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("moto_server not found: install the test extras (pip install -e '.[test]')")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                                            "AWS_EC2_METADATA_DISABLED")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint,
                      AWS_EC2_METADATA_DISABLED="true")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the local S3 server (moto) did not start")
                time.sleep(0.1)
        from pyarrow import fs

        fs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                        region="us-east-1", allow_bucket_creation=True).create_dir("b2t")
        yield {"endpoint": endpoint, "port": port, "bucket": "b2t"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pytest_collection_modifyitems(config, items):
    """The long end-to-end tests first, longest first (`@pytest.mark.slow(seconds=...)`,
    measured alone on the 2-core VM), then the other slow and Ray tests: with work stealing
    the two workers share them instead of one worker meeting a long one at the end."""
    def key(item) -> tuple[int, float]:
        slow = item.get_closest_marker("slow")
        if slow:
            return 0, -slow.kwargs.get("seconds", 0)
        return (1 if item.get_closest_marker("ray") else 2), 0

    items.sort(key=key)


def pytest_configure(config):
    # Two pytest workers on two cores: each computes on one thread (torch's default is one
    # per core, and OpenMP threads that outnumber the cores spin against each other).
    # Trials in Ray workers and study subprocesses set their own (train.num_threads).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
