"""Memory budget: estimate an allocation from headers and descriptions, refuse it before it is made.

A TIFF header may claim 100000 x 100000 pixels, a package may declare a minimum input of 60000 pixels per
side, a COCO file may list an image of that size: each would make the process allocate tens of GiB before
anything useful happens (and on Linux the kernel then kills it, or the whole machine swaps). Every reader and
command asks :func:`check_allocation` first, with the number of bytes it is about to allocate; above the
budget it stops with a one-line message naming the file, the size and the option that raises the budget.

The budget is ``runner --max-memory SIZE`` (e.g. ``--max-memory 64G``), else the ``RUNNER_MAX_MEMORY``
environment variable, else 80 % of the machine's physical memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from runner.errors import UserError

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_STATE: dict[str, int | None] = {"max_memory": None}
DEFAULT_FRACTION = 0.8
HINT = "pass `runner --max-memory SIZE <command> ...` (e.g. --max-memory 64G) if this machine has the memory"


def parse_size(text: str, *, name: str = "--max-memory") -> int:
    """``"16G"``, ``"512M"``, ``"2.5GiB"`` or a number of bytes -> bytes."""
    raw = str(text).strip().lower().replace("ib", "").replace("bytes", "")
    unit = raw[-1:] if raw[-1:] in _UNITS and not raw[-1:].isdigit() else ""
    number = raw[: len(raw) - len(unit)].strip()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise UserError(f"{name} must be a size such as 16G or 512M, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{name} must be a positive size such as 16G or 512M, got {text!r}")
    return int(value)


def physical_memory() -> int:
    """Bytes of physical memory of this machine (8 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def set_max_memory(value: str | int | None) -> None:
    """Set the budget for this process (``runner --max-memory``); None goes back to the default."""
    _STATE["max_memory"] = None if value is None else (value if isinstance(value, int) else parse_size(value))


def max_memory() -> int:
    """The memory budget in bytes (see the module docstring)."""
    if _STATE["max_memory"] is not None:
        return int(_STATE["max_memory"])
    env = os.environ.get("RUNNER_MAX_MEMORY")
    if env:
        return parse_size(env, name="RUNNER_MAX_MEMORY")
    return int(physical_memory() * DEFAULT_FRACTION)


def format_bytes(n: float) -> str:
    """``17179869184`` -> ``16.0 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def array_bytes(shape: Iterable[int], itemsize: int = 4) -> int:
    """Bytes of an array of ``shape`` (Python ints: no overflow for absurd headers)."""
    total = int(itemsize)
    for n in shape:
        total *= max(int(n), 0)
    return total


def check_allocation(
    nbytes: int, *, what: str, path: str | Path | None = None, hint: str | None = None
) -> None:
    """Raise a :class:`UserError` when ``nbytes`` exceeds the budget.

    Parameters
    ----------
    nbytes : the estimated allocation.
    what : what would be allocated, for the message (``a 100000 x 100000 uint8 image as float32``).
    path : the file or package that asks for it.
    hint : what else the user can do (default: raise ``--max-memory``).
    """
    budget = max_memory()
    if nbytes > budget:
        raise UserError(
            f"{what} needs about {format_bytes(nbytes)}, "
            f"more than the memory budget of {format_bytes(budget)}",
            path=path,
            hint=f"{hint}; or {HINT}" if hint else HINT,
        )


def check_shape(
    shape: Iterable[int],
    *,
    itemsize: int = 4,
    copies: float = 1.0,
    what: str,
    path: str | Path | None = None,
    hint: str | None = None,
) -> None:
    """:func:`check_allocation` for ``copies`` arrays of ``shape`` and ``itemsize`` bytes per element."""
    shape = tuple(int(n) for n in shape)
    nbytes = int(array_bytes(shape, itemsize) * copies)
    dims = " x ".join(str(n) for n in shape)
    check_allocation(nbytes, what=f"{what} ({dims})", path=path, hint=hint)
