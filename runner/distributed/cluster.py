"""``--cluster`` values -> a ``distributed.Client``: ``local:N`` (a LocalCluster of N worker processes),
``threads:N`` (one worker in this process with N threads: one model in memory, e.g. for one GPU) or a
scheduler address (``tcp://host:port``, e.g. one started by dask-jobqueue or ``dask scheduler``)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from runner.errors import UserError

CONNECT_TIMEOUT_S = 10


def parse_cluster(spec: str) -> tuple[str, int | str]:
    """``"local:2"`` -> ``("local", 2)``; ``"tcp://host:8786"`` -> ``("address", "tcp://host:8786")``."""
    text = spec.strip()
    match = re.fullmatch(r"(local|threads)(?::(\d+))?", text)
    if match:
        n = int(match.group(2) or 1)
        if n < 1:
            raise UserError(f"--cluster {match.group(1)}:N needs N >= 1, got {spec!r}")
        return match.group(1), n
    if re.fullmatch(r"(tcp|tls|inproc|ws|wss|ucx)://[^\s/]+(:\d+)?", text):
        return "address", text
    raise UserError(
        f"--cluster must be local:N or a scheduler address, got {spec!r}",
        hint="e.g. --cluster local:2 or --cluster tcp://10.0.0.5:8786",
    )


@contextlib.contextmanager
def connect(
    spec: str,
    *,
    memory_limit: str | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
    dashboard: bool = True,
) -> Iterator:
    """A connected ``distributed.Client`` for ``spec`` (closed, with its LocalCluster, on exit).

    Raises
    ------
    UserError
        A bad spec or a scheduler that does not answer within :data:`CONNECT_TIMEOUT_S` seconds.
    """
    from distributed import Client, LocalCluster

    kind, value = parse_cluster(spec)
    _quiet_logs()
    if kind in ("local", "threads"):
        cluster = LocalCluster(
            n_workers=int(value) if kind == "local" else 1,
            threads_per_worker=threads_per_worker if kind == "local" else int(value),
            processes=processes and kind == "local",
            memory_limit=memory_limit or "auto",
            dashboard_address=":0" if dashboard else None,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(str(value), timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise UserError(
            f"cannot reach the Dask scheduler at {value} ({type(exc).__name__})",
            hint="start it (dask scheduler / dask-jobqueue) or check the address and port",
        ) from None
    try:
        yield client
    finally:
        client.close()


def _quiet_logs() -> None:
    """Worker start/stop chatter and ome-zarr's format notes would drown the progress bars."""
    import logging

    for name in ("distributed", "ome_zarr"):
        logging.getLogger(name).setLevel(logging.ERROR)


def describe(client) -> str:
    """One line: workers, threads and the dashboard link when there is one."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    try:
        link = client.dashboard_link if info.get("services", {}).get("dashboard") else None
    except Exception:  # no dashboard
        link = None
    return f"{len(workers)} worker(s), {threads} thread(s)" + (f"; dashboard {link}" if link else "")
