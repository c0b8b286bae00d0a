"""Moved to :mod:`runner.safety` (the one gate every command calls); kept so old imports keep working."""

from runner.safety.archive import (
    DEFAULT_MAX_UNPACKED_BYTES,
    MAX_ENTRIES,
    IntegrityError,
    max_unpacked_bytes,
    safe_extract,
    sha256_of,
    verify_sha256,
)

__all__ = [
    "DEFAULT_MAX_UNPACKED_BYTES",
    "MAX_ENTRIES",
    "IntegrityError",
    "max_unpacked_bytes",
    "safe_extract",
    "sha256_of",
    "verify_sha256",
]
