"""Errors that carry a message meant for the user.

A :class:`UserError` is bad input or a bad request: the CLI prints its message as one line and exits with
code 2, without a traceback (unless ``--debug``). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input the user can fix; the message names the file, what is wrong and what to do."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        parts = []
        if path is not None:
            parts.append(f"{path}:")
        parts.append(message)
        if hint:
            parts.append(f"({hint})")
        super().__init__(" ".join(parts))
        self.path = None if path is None else Path(path)
        self.hint = hint


class BatchError(Exception):
    """Some items of a batch failed while the others completed; the CLI exits with code 2."""

    exit_code = 2

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        lines = [f"{len(failures)} item(s) failed:"] + [f"  {k}: {v}" for k, v in failures.items()]
        super().__init__("\n".join(lines))
