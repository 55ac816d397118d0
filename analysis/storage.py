"""Where studies live: a local or shared (NFS) folder, or cloud storage through pyarrow.fs.

`--storage` takes a folder, a `file://` URI, or a URI pyarrow understands (`s3://bucket/
prefix`, `gs://bucket/prefix`, ...). Tune writes trials, checkpoints and its experiment
state straight to it (RunConfig.storage_path + storage_filesystem; since Ray 2.7 a
multi-node study needs shared or cloud storage, ray-project/ray issue 37177). The driver
keeps a local mirror of each remote study folder: study.yaml and the small per-trial files
the analysis reads (params.json, result.json, progress.csv, error.txt) are pulled into it,
the records the driver writes and the report are pushed back. Checkpoints stay remote
(Tune's own side of the store, and the pruning of checkpoints: study/storage.py).

S3-compatible stores (MinIO, Ceph, moto): `--storage-endpoint URL` or the standard
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; credentials come from the standard AWS environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles). The mirror lives
under B2T_STORAGE_CACHE (default ./.b2t-storage).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from trainable.errors import UserError

# What the analysis reads from a study folder (analysis/load.py); checkpoints stay remote.
PULLED = ("study.yaml", "ladder.yaml", "preset.yaml", "request.yaml", "params.json",
          "result.json", "progress.csv", "error.txt")
# Retries of Tune's own uploads: a store that is away for half a minute costs a wait, not a
# trial (AWS standard retry strategy: exponential back-off up to 20 s between attempts).
TUNE_ATTEMPTS = 12
CHECK_TIMEOUT_S = 5.0


def _endpoint(explicit: str | None) -> str | None:
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
        "AWS_ENDPOINT_URL") or None


def s3_filesystem(endpoint: str | None, attempts: int, timeout_s: float | None,
                  region: str | None = None):
    from pyarrow import fs

    options: dict = {"retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=attempts)}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    if timeout_s is not None:
        options.update(connect_timeout=timeout_s, request_timeout=timeout_s)
    return fs.S3FileSystem(**options)


@dataclass
class Storage:
    """A storage root: `fs` is None for a local folder (`root` is then its absolute path);
    otherwise `root` is the path inside `fs` (bucket/prefix) and `mirror` the local copy."""

    text: str
    scheme: str
    root: str
    fs: object | None = None
    endpoint: str | None = None
    region: str | None = None  # an AWS bucket's region, resolved once

    @property
    def remote(self) -> bool:
        return self.fs is not None

    @property
    def local_root(self) -> Path:
        """Where this machine keeps the study folders: the folder itself, or the mirror."""
        if not self.remote:
            return Path(self.root)
        cache = Path(os.environ.get("B2T_STORAGE_CACHE", ".b2t-storage")).expanduser()
        return (cache / self.scheme / self.root).resolve()

    def uri(self, *parts: str) -> str:
        path = "/".join([self.root.rstrip("/"), *parts])
        return f"{self.scheme}://{path}" if self.remote else path

    def path(self, *parts: str) -> str:
        """The path inside `fs` (what Tune's storage_path takes with a storage_filesystem)."""
        return "/".join([self.root.rstrip("/"), *parts])

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Fail fast, in one line, when the store does not answer or the bucket is missing."""
        if not self.remote:
            return
        from pyarrow import fs

        quick = s3_filesystem(self.endpoint, 1, CHECK_TIMEOUT_S, self.region) \
            if self.scheme == "s3" else self.fs
        bucket = self.root.split("/", 1)[0]
        where = f" at {self.endpoint}" if self.endpoint else ""
        try:
            info = quick.get_file_info(bucket)
        except OSError as err:
            reason = str(err).splitlines()[0][:160]
            raise UserError(f"--storage {self.text}: the store{where} does not answer "
                            f"({reason}); check the endpoint (--storage-endpoint or "
                            "AWS_ENDPOINT_URL), the network and the credentials "
                            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)") from None
        if info.type == fs.FileType.NotFound:
            raise UserError(f"--storage {self.text}: bucket {bucket!r} not found{where}; "
                            "create it first or check the name and the credentials")

    @contextlib.contextmanager
    def one_line_errors(self, action: str):
        """A store failing after the first check: one line, not a traceback."""
        try:
            yield
        except OSError as err:
            reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            raise UserError(f"{self.text}: {action} failed ({reason}); what is already in "
                            "the store is intact: check the network and the credentials' "
                            "rights, then retry") from None

    def exists(self, name: str) -> bool:
        """Whether the study folder `name` holds anything."""
        if not self.remote:
            folder = Path(self.root) / name
            return folder.exists() and any(folder.iterdir())
        from pyarrow import fs

        selector = fs.FileSelector(self.path(name), allow_not_found=True, recursive=False)
        with self.one_line_errors(f"listing {self.uri(name)}"):
            return bool(self.fs.get_file_info(selector))

    # ------------------------------------------------------------------ sync
    def pull(self, name: str) -> Path:
        """Copy the study folder's small files (PULLED) into the mirror; return the local
        folder. A local storage is its own mirror."""
        local = self.local_root / name
        if not self.remote:
            return local
        from pyarrow import fs

        base = self.path(name)
        selector = fs.FileSelector(base, allow_not_found=True, recursive=True)
        with self.one_line_errors(f"reading {self.uri(name)}"):
            self._pull_files(base, local, self.fs.get_file_info(selector))
        return local

    def _pull_files(self, base: str, local: Path, infos) -> None:
        from pyarrow import fs

        for info in infos:
            if info.type != fs.FileType.File or info.base_name not in PULLED:
                continue
            rel = info.path[len(base):].lstrip("/")
            if "/checkpoint_" in f"/{rel}":
                continue
            target = local / rel
            if target.is_file() and target.stat().st_size == info.size and \
                    info.base_name not in ("study.yaml", "ladder.yaml", "result.json",
                                           "progress.csv"):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open_input_stream(info.path) as src:
                data = src.read()
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)

    def push(self, name: str, *relative: str) -> None:
        """Upload files or folders of the local study folder to the store (no-op locally)."""
        if not self.remote:
            return

        local = self.local_root / name
        with self.one_line_errors(f"writing to {self.uri(name)}"):
            self._push_files(local, name, relative)

    def _push_files(self, local: Path, name: str, relative) -> None:
        from pyarrow import fs

        for rel in relative:
            source = local / rel
            if source.is_dir():
                fs.copy_files(str(source), self.path(name, rel),
                              source_filesystem=fs.LocalFileSystem(),
                              destination_filesystem=self.fs)
            elif source.is_file():
                with self.fs.open_output_stream(self.path(name, rel)) as out:
                    out.write(source.read_bytes())



def resolve_storage(text: str, endpoint: str | None = None) -> Storage:
    """--storage as given: a folder (or file:// URI), or a pyarrow-supported URI. Never
    reinterprets a URI as a folder name."""
    if "://" not in text:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text):
            raise UserError(f"--storage {text}: looks like a URI with one slash; write "
                            f"{text.replace(':/', '://', 1)} (or ./{text} for a folder)")
        return Storage(text, "file", str(Path(text).expanduser().resolve()))
    scheme, rest = text.split("://", 1)
    if scheme == "file":
        return Storage(text, "file", str(Path(rest).expanduser().resolve()))
    root = rest.strip("/")
    if not root:
        raise UserError(f"--storage {text}: name a bucket (and optionally a prefix), e.g. "
                        f"{scheme}://my-bucket/studies")
    if scheme == "s3":
        endpoint = _endpoint(endpoint)
        region = None
        if not endpoint and not (os.environ.get("AWS_REGION")
                                 or os.environ.get("AWS_DEFAULT_REGION")):
            from pyarrow import fs

            # AWS itself: the bucket's own region (a wrong one answers 301); a bucket that
            # cannot be located is reported by check().
            with contextlib.suppress(OSError, ValueError):
                region = fs.resolve_s3_region(root.split("/", 1)[0])
        return Storage(text, scheme, root,
                       s3_filesystem(endpoint, TUNE_ATTEMPTS, None, region), endpoint, region)
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(text)
    except (ValueError, OSError, ImportError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserError(f"--storage {text}: {scheme}:// is not a storage this machine's "
                        f"pyarrow can open ({reason}); use s3://, gs://, a shared folder or "
                        "file://") from None
    return Storage(text, scheme, path.strip("/"), filesystem, endpoint)


def split_study_uri(text: str, endpoint: str | None = None) -> tuple[Storage, str]:
    """A study folder given as a path or URI -> (its storage root, its name)."""
    text = text.rstrip("/")
    if "://" in text and not text.startswith("file://"):
        parent, _, name = text.rpartition("/")
        if not name or parent.endswith(":/"):
            raise UserError(f"{text}: name the study folder inside the bucket, e.g. "
                            "s3://bucket/prefix/<study name>")
        return resolve_storage(parent, endpoint), name
    storage = resolve_storage(text, endpoint)
    folder = Path(storage.root)
    return resolve_storage(str(folder.parent)), folder.name
