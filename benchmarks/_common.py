"""Helpers shared by the benchmark scripts: timing + peak memory in a forked child, markdown tables."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


@dataclass
class Measured:
    seconds: float
    peak_mib: float
    result: Any


def _child(fn, args, kwargs, repeat, queue):
    start_rss = _rss_kib("VmRSS")
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    peak = _rss_kib("VmHWM") - start_rss
    queue.put((min(times), peak / 1024, result))


def measure(fn: Callable, *args, repeat: int = 1, keep_result: bool = True, **kwargs) -> Measured:
    """Run ``fn(*args, **kwargs)`` in a forked child: best wall time of ``repeat`` runs and the peak memory
    the
    call added on top of the inputs (VmHWM - VmRSS at the start, in MiB). The result is sent back when asked.
    """
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    wrapped = fn if keep_result else (lambda *a, **k: (fn(*a, **k), None)[1])
    proc = ctx.Process(target=_child, args=(wrapped, args, kwargs, repeat, queue))
    proc.start()
    seconds, peak, result = queue.get()
    proc.join()
    return Measured(seconds, peak, result)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
