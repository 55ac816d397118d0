"""How the data reaches every trial, on one machine or many.

Features up to OBJECT_STORE_LIMIT bytes go once into Ray's object store
(tune.with_parameters) and every trial on a node reads them zero-copy. Past it (the real
data is about 14 GB) they are packed once into .npy files (Dataset.save_cache) that the
driver and the trials memory-map, sharing the page cache instead of holding copies:

- with a local or shared (NFS) --storage, or B2T_SHARED_CACHE, the packed folder is one
  that every node sees (<storage>/.datacache/<fingerprint>/);
- with cloud storage the packed folder goes to the bucket once
  (<storage>/.datacache/<fingerprint>/, dataset.json written last as the mark of a
  complete upload) and each other node fetches it once into a local folder (B2T_NODE_CACHE,
  default <tmp>/b2t-datacache), under a lock per node, then memory-maps it. Trials on the
  driver's node use the driver's folder.

A study on the same HDF5 files as an earlier one skips re-reading them: the packed cache is
indexed by a key of the files and the reading settings (trainable.data.source_key;
<cache>/sources/<key> holds the fingerprint), and found there it is memory-mapped as it is.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from analysis.storage import Storage, resolve_storage
from trainable.config import Config
from trainable.data import Dataset, load_dataset, source_key
from trainable.errors import UserError

OBJECT_STORE_LIMIT = 2 * 2**30  # bytes of features shared through the object store
MARKER = "dataset.json"  # Dataset.save_cache writes it last; uploads send it last
FETCH_LOG = "fetches.log"  # one line per fetch, in the node's cache folder


def object_store_limit() -> int:
    """OBJECT_STORE_LIMIT, or B2T_OBJECT_STORE_LIMIT (bytes) where set: a lower limit
    packs smaller data (to test the packed path, or for nodes with little memory)."""
    text = os.environ.get("B2T_OBJECT_STORE_LIMIT")
    if text is None:
        return OBJECT_STORE_LIMIT
    try:
        return int(text)
    except ValueError:
        raise UserError(f"B2T_OBJECT_STORE_LIMIT={text!r}: expected a number of bytes, "
                        "e.g. 2147483648") from None


def feature_bytes(dataset: Dataset) -> int:
    return sum(split.features.nbytes for split in dataset.splits.values())


@dataclass(frozen=True)
class DataCache:
    """Where large data is packed, and whether every node sees that folder."""

    root: Path
    shared: bool

    def folder(self, fingerprint: str) -> Path:
        return self.root / fingerprint

    def source_file(self, key: str) -> Path:
        return self.root / "sources" / key


def data_cache(storage: Storage) -> DataCache:
    if os.environ.get("B2T_SHARED_CACHE"):
        return DataCache(Path(os.environ["B2T_SHARED_CACHE"]).expanduser().resolve(), True)
    return DataCache(storage.local_root / ".datacache", not storage.remote)


def load_data(root: Path, cfg: Config, cache: DataCache) -> tuple[Dataset, str]:
    """(dataset, how it was read). A packed cache of the same files and settings is
    memory-mapped without reading the HDF5 files; otherwise they are read, and data past
    the object-store limit is packed now and memory-mapped from there, so the driver does
    not hold the arrays."""
    key = source_key(root, cfg)
    index = cache.source_file(key)
    if index.is_file():
        folder = cache.folder(index.read_text().strip())
        if (folder / MARKER).is_file():
            return Dataset.load_cache(folder), f"packed cache {folder}, HDF5 files unchanged"
    dataset = load_dataset(root, cfg)
    size = feature_bytes(dataset)
    if size <= object_store_limit():
        return dataset, "read and validated"
    fingerprint = dataset.fingerprint()
    folder = cache.folder(fingerprint)
    if not (folder / MARKER).is_file():
        print(f"packing {size / 2**30:.1f} GiB of features into {folder} for memory-mapped "
              "sharing", file=sys.stderr)
        dataset.save_cache(folder)
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(fingerprint)
    return Dataset.load_cache(folder), "read, validated and packed"


@dataclass(frozen=True)
class PackedData:
    """What a trial receives for packed data on cloud storage: the bucket copy, and the
    driver's folder with the node it is on."""

    fingerprint: str
    storage: str  # --storage as given
    endpoint: str | None
    driver_folder: str
    driver_node: str | None

    def open(self) -> Dataset:
        """The dataset, memory-mapped: the driver's folder on the driver's node, else the
        node's own copy, fetched from the bucket by the first trial on the node."""
        node = _node_id()
        if node is not None and node == self.driver_node:
            return Dataset.load_cache(self.driver_folder)
        return Dataset.load_cache(self.fetch(node_cache_root()))

    def fetch(self, cache_root: Path) -> Path:
        """The node's copy under cache_root, fetched once whatever the number of trials
        asking at the same time (a file lock per node and dataset)."""
        target = cache_root / self.fingerprint
        cache_root.mkdir(parents=True, exist_ok=True)
        with open(cache_root / f"{self.fingerprint}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (target / MARKER).is_file():
                start = time.perf_counter()
                storage = resolve_storage(self.storage, self.endpoint)
                partial = Path(tempfile.mkdtemp(prefix=f"{self.fingerprint}.", dir=cache_root))
                try:
                    _download(storage, storage.path(".datacache", self.fingerprint), partial)
                except BaseException:  # a failed fetch leaves no partial copy behind
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
                if target.exists():
                    shutil.rmtree(target)
                partial.rename(target)
                with open(cache_root / FETCH_LOG, "a") as log:
                    log.write(f"{self.fingerprint} {time.perf_counter() - start:.1f} s\n")
        return target


def node_cache_root() -> Path:
    default = Path(tempfile.gettempdir()) / "b2t-datacache"
    return Path(os.environ.get("B2T_NODE_CACHE") or default).expanduser()


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _download(storage: Storage, path: str, local: Path) -> None:
    from pyarrow import fs

    selector = fs.FileSelector(path, recursive=False)
    with storage.one_line_errors(f"fetching the packed data {storage.uri(path)}"):
        infos = [i for i in storage.fs.get_file_info(selector) if i.type == fs.FileType.File]
        for info in sorted(infos, key=lambda i: i.base_name == MARKER):
            with storage.fs.open_input_stream(info.path) as src, \
                    open(local / info.base_name, "wb") as out:
                shutil.copyfileobj(src, out, 16 * 2**20)


def _upload(storage: Storage, folder: Path, fingerprint: str) -> None:
    """The packed folder into the bucket once: its marker last, so a partial upload is
    never taken for a complete one."""
    from pyarrow import fs

    base = storage.path(".datacache", fingerprint)
    with storage.one_line_errors(f"uploading the packed data to {storage.uri(base)}"):
        if storage.fs.get_file_info(f"{base}/{MARKER}").type == fs.FileType.File:
            return
        print(f"uploading the packed data to {storage.uri('.datacache', fingerprint)} "
              "(once; each node fetches it once)", file=sys.stderr)
        for file in sorted(folder.iterdir(), key=lambda p: p.name == MARKER):
            with open(file, "rb") as src, \
                    storage.fs.open_output_stream(f"{base}/{file.name}") as out:
                shutil.copyfileobj(src, out, 16 * 2**20)


def trial_data(dataset: Dataset, cache: DataCache, storage: Storage):
    """What trials receive (inside a Ray session): the Dataset (object store), the packed
    folder every node sees, or a PackedData that each node fetches once."""
    if feature_bytes(dataset) <= object_store_limit():
        return dataset
    fingerprint = dataset.fingerprint()
    folder = cache.folder(fingerprint)
    if not (folder / MARKER).is_file():  # held in memory (read before the limit was lowered)
        dataset.save_cache(folder)
    if cache.shared:
        return str(folder)
    _upload(storage, folder, fingerprint)
    return PackedData(fingerprint=fingerprint, storage=storage.text,
                      endpoint=storage.endpoint, driver_folder=str(folder),
                      driver_node=_node_id())
