"""Shared test set-up. Ray writes only under the project's short temp dir (see
raytune_notes.md: AF_UNIX paths must stay under 107 bytes, so not under tmp_path)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RAY_TMP = Path(os.environ.get("B2T_TEST_RAY_TMP", "/tmp/b2t-ray-tests"))

os.environ.setdefault("RAY_TMPDIR", str(RAY_TMP))
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
    from h5_fixtures import write_dataset

    return write_dataset(tmp_path_factory.mktemp("tiny") / "data", n_features=16)


TINY_OVERRIDES = {
    "data.n_features": 16, "data.batch_size": 8, "data.days_per_batch": 2,
    "model.n_units": 24, "model.n_layers": 2, "train.num_steps": 12, "train.eval_every": 4,
    "optim.lr_warmup_steps": 2, "optim.lr_decay_steps": 12, "train.num_threads": 1,
}


@pytest.fixture
def tiny_config():
    from trainable.config import load_config

    def make(**extra):
        overrides = dict(TINY_OVERRIDES)
        overrides.update({k.replace("__", "."): v for k, v in extra.items()})
        return load_config(overrides=overrides)

    return make
