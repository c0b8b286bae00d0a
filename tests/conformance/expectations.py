"""Known runner failures of conformance cases, each with the reason (kept in one place so the tests mark them
``xfail(strict=True)`` and the table script reports them; remove an entry as soon as the case passes)."""

from __future__ import annotations

from pathlib import Path

ZOO_PACKAGE = Path(__file__).resolve().parents[2] / "zoo_packages" / "third_party" / "unet2d_nuclei_broad"
"""The vendored third-party package (the same files as ../shared/zoo/unet2d_nuclei_broad)."""

KNOWN_FAILURES: dict[str, str] = {}
"""Case id -> why ``runner predict`` does not yet reproduce it (all weight formats, all devices). Empty since
the one-pass fix (main 2e57b75): every case reproduces core and its test output on the CPU."""

ZOO_FAILURE: str | None = None
"""Why the vendored third-party package does not reproduce its test output (None: it does)."""
