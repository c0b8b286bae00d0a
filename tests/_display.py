"""An X display for napari tests: Qt's offscreen platform draws napari's OpenGL canvas through GLX, which
needs one. A headless machine gets a private Xvfb (Debian's ``xvfb``, installed by ``.ci/run``); without it
the tests that need a canvas skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

_KEPT: list[str] = []  # the display of an Xvfb kept alive for this process's QApplication


@contextmanager
def x_display() -> Iterator[str | None]:
    """``DISPLAY`` while inside: the existing one, else a fresh Xvfb (None when there is neither)."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if _KEPT:
        # an Xvfb this process started earlier still serves a live QApplication: reuse it (Qt cannot move)
        os.environ["DISPLAY"] = _KEPT[0]
        try:
            yield _KEPT[0]
        finally:
            os.environ.pop("DISPLAY", None)
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        yield None
        return
    read, write = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_end_with_parent,
    )
    os.close(write)
    try:
        with os.fdopen(read) as fh:
            number = fh.readline().strip()
        if not number:
            yield None
            return
        os.environ["DISPLAY"] = f":{number}"
        yield os.environ["DISPLAY"]
    finally:
        os.environ.pop("DISPLAY", None)
        # while a QApplication may hold a connection, the server must outlive it: Xlib ends the whole process
        # when its display goes away ("XIO: fatal IO error"); _end_with_parent stops it when pytest exits
        if not _qt_connected():
            proc.terminate()
            proc.wait(timeout=10)
        elif number:
            _KEPT.append(f":{number}")


def _qt_connected() -> bool:
    """Whether a QApplication exists (and so may hold a connection to the display)."""
    import sys

    if "qtpy" not in sys.modules:
        return False
    from qtpy.QtWidgets import QApplication

    return QApplication.instance() is not None


def _end_with_parent() -> None:
    """In the child before exec: have Linux send SIGTERM when the parent process ends (PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
