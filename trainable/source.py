"""Where training data comes from: a user's folder, or the built-in synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

from trainable.errors import DataError


def default_cache_root() -> Path:
    """Synthetic datasets are cached here by spec hash (B2T_DATA_CACHE overrides)."""
    return Path(os.environ.get("B2T_DATA_CACHE", "data/synthetic")).resolve()


def resolve_data_root(data: str | Path | None, synthetic_spec: str | Path | None = None,
                      synthetic_overrides: list[str] | None = None,
                      progress: bool = True) -> tuple[Path, str]:
    """Return (root folder, description). None means the built-in synthetic data,
    generated once and reused."""
    if data is not None:
        root = Path(data).expanduser().resolve()
        if not root.exists():
            raise DataError(f"--data {data}: folder does not exist; give the folder that "
                            "holds <session>/data_train.hdf5, or omit --data for the "
                            "built-in synthetic data")
        return root, f"data folder {root}"
    from trainable.synthetic import SyntheticSpec, ensure_synthetic

    spec = SyntheticSpec.load(synthetic_spec, synthetic_overrides)
    root = ensure_synthetic(spec, default_cache_root(), progress=progress)
    return root, f"synthetic data {spec.fingerprint()} ({root})"


def add_config_flags(parser) -> None:
    """--config, --data and --set, as `python -m trainable` and its `check` take them."""
    parser.add_argument("--config", default=None,
                        help="training config YAML, the project's format or an official "
                             "rnn_args.yaml (detected; default: configs/train/proxy.yaml)")
    parser.add_argument("--data", default=None,
                        help="Brain-to-Text '25 folder (<root>/<session>/data_*.hdf5); "
                             "default: the config's dataset_dir (official format), else "
                             "built-in synthetic data, generated once and cached")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value, e.g. optim.eps=1e-8")
