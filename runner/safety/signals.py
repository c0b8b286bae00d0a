"""SIGTERM handled like Ctrl-C: the stack unwinds, ``finally`` blocks and temp-folder cleanups run, exit 143.

Without a handler SIGTERM (what ``kill``, ``timeout`` and job schedulers send) ends the process at once and
leaves unpacked packages and staging folders behind. :func:`install_sigterm` turns it into a
:class:`Terminated` exception (a ``KeyboardInterrupt``, so code that cleans up on Ctrl-C cleans up here too);
the CLI reports it and exits with 143 (128 + 15), as shells expect.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

EXIT_SIGTERM = 128 + signal.SIGTERM
EXIT_SIGINT = 128 + signal.SIGINT


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def install_sigterm() -> None:
    """Raise :class:`Terminated` on SIGTERM (main thread only; elsewhere signals cannot be handled)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def exit_code(exc: BaseException) -> int:
    """143 for :class:`Terminated`, 130 for another ``KeyboardInterrupt``."""
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
