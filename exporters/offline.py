"""Running bioimageio.spec/core validation without the network.

bioimageio.spec checks every ``github_user`` it does not already know with a GitHub API request whenever io
checks are on, and ``bioimageio test`` always turns them on; offline that request raises and the test
crashes. :func:`known_github_users` adds the given names to the spec's own cache of verified users for the
duration of a block (exactly what a successful online check would have done), so tests run offline. Names
are then *not verified*; :func:`check_package` says so in its report. URL checks only warn when offline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator


def _known_set() -> set[str] | None:
    try:
        from bioimageio.spec._internal import constants
    except ImportError:  # pragma: no cover - a future spec moved it; then the online check runs
        return None
    known = getattr(constants, "KNOWN_GITHUB_USERS", None)
    return known if isinstance(known, set) else None


@contextlib.contextmanager
def known_github_users(names: Iterable[str | None]) -> Iterator[list[str]]:
    """Treat ``names`` as verified GitHub users inside the block; yields those that were not known before."""
    known = _known_set()
    added: list[str] = []
    if known is not None:
        for name in names:
            if name and name.lower() not in known:
                known.add(name.lower())
                added.append(name)
    try:
        yield added
    finally:
        if known is not None:
            for name in added:
                known.discard(name.lower())


def github_users_of(rdf: dict) -> list[str]:
    """Every ``github_user`` named in an rdf mapping (authors, maintainers, uploader, weight authors)."""
    people: list = []
    for key in ("authors", "maintainers"):
        people += list(rdf.get(key) or [])
    if isinstance(rdf.get("uploader"), dict):
        people.append(rdf["uploader"])
    for entry in (rdf.get("weights") or {}).values():
        if isinstance(entry, dict):
            people += list(entry.get("authors") or [])
    names = [p.get("github_user") for p in people if isinstance(p, dict)]
    return sorted({str(n) for n in names if n})
