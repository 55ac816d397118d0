"""Tune's side of a storage root (analysis/storage.py): the filesystem Tune writes through,
in the driver and in every trial, and the pruning of checkpoints once a study has finished.
"""

from __future__ import annotations

from pyarrow import fs as pafs

from analysis.storage import TUNE_ATTEMPTS, Storage, s3_filesystem


class PatientS3(pafs.FileSystemHandler):
    """An S3 filesystem handler whose retries survive pickling. Tune sends its storage
    filesystem to every trial; a pickled pyarrow S3FileSystem comes back with the default
    retry strategy (3 attempts, about 0.4 s against a store that refuses connections,
    measured), so a short outage would fail trials. This handler pickles its settings
    and rebuilds the patient client in each process (credentials stay in the environment).
    Use it as pyarrow.fs.PyFileSystem(PatientS3(endpoint, attempts))."""

    def __init__(self, endpoint: str | None, attempts: int, region: str | None = None):
        self.endpoint, self.attempts, self.region = endpoint, attempts, region
        self.inner = s3_filesystem(endpoint, attempts, None, region)

    def __reduce__(self):
        return PatientS3, (self.endpoint, self.attempts, self.region)

    def __eq__(self, other) -> bool:
        return isinstance(other, PatientS3) and (self.endpoint, self.attempts) == (
            other.endpoint, other.attempts)

    def __ne__(self, other) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "s3-patient"

    def normalize_path(self, path):
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.inner.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        self.inner.delete_dir_contents("/", accept_root_dir=True)

    def delete_file(self, path):
        self.inner.delete_file(path)

    def move(self, src, dest):
        self.inner.move(src, dest)

    def copy_file(self, src, dest):
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path):
        return self.inner.open_input_stream(path)

    def open_input_file(self, path):
        return self.inner.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.inner.open_append_stream(path, metadata=metadata)


def tune_filesystem(storage: Storage):
    """The filesystem Tune writes through, in the driver and in every trial: patient
    retries (a store away for half a minute costs a wait, not a trial)."""
    if storage.scheme == "s3":
        return pafs.PyFileSystem(PatientS3(storage.endpoint, TUNE_ATTEMPTS, storage.region))
    return storage.fs


def prune_checkpoints(storage: Storage, name: str) -> int:
    """Delete every trial checkpoint but the newest, once a study has finished; returns
    how many were deleted. During a study all are kept (see study.runner._run_config)."""
    if not storage.remote:
        return 0
    selector = pafs.FileSelector(storage.path(name), allow_not_found=True, recursive=True)
    with storage.one_line_errors(f"pruning checkpoints of {storage.uri(name)}"):
        by_trial: dict[str, list[str]] = {}
        for info in storage.fs.get_file_info(selector):
            parent, _, base = info.path.rpartition("/")
            if info.type == pafs.FileType.Directory and base.startswith("checkpoint_"):
                by_trial.setdefault(parent, []).append(info.path)
        deleted = 0
        for paths in by_trial.values():
            for path in sorted(paths)[:-1]:
                storage.fs.delete_dir(path)
                deleted += 1
        return deleted
