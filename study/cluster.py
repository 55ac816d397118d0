"""Ray start-up and shutdown: a local instance owned by the study, or an existing cluster.

Ray's defaults write outside the project (/tmp/ray, ~/.ray/auth_token, ~/ray_results);
here the temp dir is RAY_TMPDIR when set, else under the storage folder (or a short /tmp
path when that would exceed the 107-byte AF_UNIX socket limit), token auth is off for
instances the study starts itself on loopback, and storage is always explicit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from trainable.errors import UserError

# Ray appends about 60 characters (session_<date>_<pid>/sockets/plasma_store) to the temp
# dir, and Unix socket paths must stay under 107 bytes.
_MAX_TEMP_DIR = 40


def ray_temp_dir(storage: Path) -> Path:
    if os.environ.get("RAY_TMPDIR"):  # the user's choice wins (a shared machine, CI)
        return Path(os.environ["RAY_TMPDIR"])
    preferred = (storage / ".ray").resolve()
    if len(str(preferred)) <= _MAX_TEMP_DIR:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:8]
    return Path("/tmp") / f"b2t-ray-{digest}"


def configure_environment(storage: Path) -> Path:
    """Environment for Ray and its workers; call before importing ray."""
    temp = ray_temp_dir(storage)
    temp.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_TMPDIR", str(temp))
    os.environ.setdefault("TMPDIR", str(temp))  # keeps /tmp/pymp-* of the dashboard inside
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Tune warns whenever checkpoints of short trials trigger several experiment snapshots
    # within 5 s; harmless here (num_to_keep forces them), and it floods the console.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return temp


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address}: expected HOST:PORT of a Ray head "
                        "(e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or exc
        raise UserError(f"--address {address}: no Ray cluster answers there ({reason}); start "
                        "one with 'ray start --head' or drop --address to run locally"
                        ) from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    # A port that accepts connections but does not speak gRPC (another service, a wrong
    # port) makes ray.init retry for many minutes; a Ray head answers the HTTP/2 handshake.
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise UserError(f"--address {address}: something listens there but it is not a Ray "
                        f"head (no gRPC answer within {timeout_s:g} s); give the address that "
                        "'ray start --head' printed, or drop --address to run locally"
                        ) from None
    finally:
        channel.close()


def resolve_address(address: str | None) -> str | None:
    """The cluster to attach to (--address, else RAY_ADDRESS), checked to answer as a Ray
    head; None means start a local instance. Called before the data is read, so a wrong
    address fails in seconds rather than after loading."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    return address


def start_ray(address: str | None, storage: Path, dashboard: bool, num_cpus: int | None,
              num_gpus: int | None = None) -> dict:
    """Start a local Ray instance, or attach to `address` (as resolve_address returned it).

    Returns {"address", "dashboard_url", "owned"}: `owned` tells whether this process must
    shut the instance down.
    """
    temp = configure_environment(storage)
    import ray

    project = str(Path(__file__).resolve().parent.parent)
    if ray.is_initialized():  # a notebook or test session already holds Ray: use it
        return {"address": None, "dashboard_url": None, "owned": False}
    if address:
        # Workers of an existing cluster import the driver's copy of the project: the
        # trainable, and study/analysis for the store's filesystem (study.storage.PatientS3
        # travels pickled with every trial's storage context).
        ctx = ray.init(address=address, log_to_driver=True,
                       runtime_env={"py_modules": [str(Path(project) / package) for package
                                                   in ("trainable", "study", "analysis")],
                                    "env_vars": {"RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}})
        owned = False
    else:
        # Ray 2.60 turns token auth on by default: the dashboard's API then answers 401 to
        # a browser on loopback. The study's own instance listens on loopback only, so the
        # token is off there; an existing cluster keeps whatever it was started with.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [project, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        ctx = ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus,
                       include_dashboard=dashboard, dashboard_host="127.0.0.1",
                       _temp_dir=str(temp), log_to_driver=False)
        owned = True
    url = getattr(ctx, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    if dashboard:
        if url:
            print(f"Ray dashboard: {url} (no token needed on this local instance)",
                  file=sys.stderr)
        else:
            print("Ray dashboard is not available (install ray[default])", file=sys.stderr)
    return {"address": ctx.address_info.get("address") if hasattr(ctx, "address_info")
            else address, "dashboard_url": url, "owned": owned}


def _alive_nodes() -> list[dict]:
    import ray

    return [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]


def _fits(nodes: list[dict], cpus: float, gpus: float) -> bool:
    return any(n.get("CPU", 0.0) >= cpus and n.get("GPU", 0.0) >= gpus for n in nodes)


def check_resources(cpus_per_trial: float, gpus_per_trial: float,
                    autoscaler_wait_min: float = 0.0) -> None:
    """Fail before the study starts when no alive node can hold one trial: Tune would keep
    the trial PENDING forever. With `autoscaler_wait_min` > 0 (--autoscaler-wait, a cluster
    that autoscales), ask Ray's autoscaler for such a node (ray.autoscaler.sdk
    .request_resources, a no-op without one), say so, and wait that long for it to join.
    Reads ray.nodes(), Ray's public view of the cluster."""
    nodes = _alive_nodes()
    if not nodes or _fits(nodes, cpus_per_trial, gpus_per_trial):
        return
    best_cpu = max(n.get("CPU", 0.0) for n in nodes)
    best_gpu = max(n.get("GPU", 0.0) for n in nodes)
    asked = f"{cpus_per_trial:g} CPU(s)" + (f" and {gpus_per_trial:g} GPU(s)"
                                             if gpus_per_trial else "")
    largest = (f"largest: {best_cpu:g} CPU(s), {best_gpu:g} GPU(s) on one node, "
               f"{len(nodes)} node(s)")
    flag = "--cpus-per-trial" if best_cpu < cpus_per_trial else "--gpus-per-trial"
    if autoscaler_wait_min <= 0:
        raise UserError(f"{flag}: a trial asks for {asked} but no node of this Ray cluster has "
                        f"that ({largest}); lower the request or add a node that fits (the "
                        "study would wait forever); on a cluster with an autoscaler, "
                        "--autoscaler-wait MINUTES asks it for one and waits")
    from ray.autoscaler.sdk import request_resources

    bundle = {"CPU": cpus_per_trial} | ({"GPU": gpus_per_trial} if gpus_per_trial else {})
    request_resources(bundles=[bundle])
    print(f"no node holds a trial's {asked} yet ({largest}): asked the autoscaler for one; "
          f"the study waits up to {autoscaler_wait_min:g} min for it (--autoscaler-wait)",
          file=sys.stderr, flush=True)
    start, poll_s = time.monotonic(), min(2.0, max(0.5, autoscaler_wait_min * 3))
    told = 0
    try:
        while time.monotonic() - start < autoscaler_wait_min * 60:
            time.sleep(poll_s)
            waited = int((time.monotonic() - start) // 60)
            if waited > told:  # a line a minute, so a long wait is seen to be alive
                told = waited
                print(f"still waiting for the autoscaler: {waited} of "
                      f"{autoscaler_wait_min:g} min", file=sys.stderr, flush=True)
            if _fits(_alive_nodes(), cpus_per_trial, gpus_per_trial):
                print(f"a node with {asked} joined after {time.monotonic() - start:.0f} s; "
                      "starting the study", file=sys.stderr, flush=True)
                return
    finally:
        request_resources(bundles=[])  # the trials' own demand keeps the node from now on
    raise UserError(f"--autoscaler-wait {autoscaler_wait_min:g}: no node with {asked} joined "
                    f"in {autoscaler_wait_min:g} min ({largest}); check that the autoscaler "
                    "has a node type that large (`ray status`, the cluster config's "
                    "available_node_types) or lower the request")


def default_concurrency(cpus_per_trial: float, gpus_per_trial: float) -> int:
    """Trials at once when --max-concurrent is not given: as many as the cluster holds."""
    import ray

    total = ray.cluster_resources()
    n = int(total.get("CPU", 1) // cpus_per_trial)
    if gpus_per_trial > 0:
        n = min(n, int(total.get("GPU", 0) // gpus_per_trial))
    return max(n, 1)


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


@contextlib.contextmanager
def ray_session(address: str | None, storage: Path, dashboard: bool,
                num_cpus: int | None = None) -> Iterator[dict]:
    """`start_ray` for the length of a `with` block; a local instance the block started is
    shut down when it ends, however it ends."""
    cluster = start_ray(address, storage, dashboard, num_cpus)
    try:
        yield cluster
    finally:
        if cluster["owned"]:
            stop_ray()
