"""Generated conformance packages, built once per test session."""

from __future__ import annotations

import pytest

from tests.conformance.build import Built, build
from tests.conformance.cases import Case


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """Case -> its generated package (built once per session)."""
    cache: dict[str, Built] = {}
    root = tmp_path_factory.mktemp("conformance")

    def get(case: Case) -> Built:
        if case.id not in cache:
            cache[case.id] = build(case, root / case.id)
        return cache[case.id]

    return get
