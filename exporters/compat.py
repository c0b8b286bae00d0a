"""Writing the rdf in the form every tool reads: ``format_version: 0.5.4`` with plain-string covers/docs.

bioimageio.spec >= 0.5.11 writes ``covers``/``documentation`` as ``{source, sha256}`` objects, which releases
before 0.5.11 (pinned by ilastik) reject, and deepImageJ/QuPath read ``documentation`` as a string. The
description is built and validated with the current classes, dumped, then rewritten in the 0.5.4 form (the
fields it uses all exist in 0.5.4) and validated again from that form before it is written.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.errors import UserError

COMPAT_FORMAT_VERSION = "0.5.4"
RDF_NAME = "rdf.yaml"


def _source(value) -> str:
    return str(value["source"]) if isinstance(value, dict) else str(value)


def compatible_content(descr) -> dict:
    """The description as a mapping in the 0.5.4 form (string covers/documentation, explicit axis ids)."""
    from bioimageio.spec import dump_description

    data: dict[str, Any] = copy.deepcopy(dump_description(descr))
    data["format_version"] = COMPAT_FORMAT_VERSION
    if "covers" in data:
        # covers bioimageio.spec generated into a temporary folder (a description without its own) are not
        # part of the package: a published rdf refers only to files inside it
        data["covers"] = [_source(c) for c in data["covers"] if not Path(_source(c)).is_absolute()]
    if data.get("documentation") is not None:
        data["documentation"] = _source(data["documentation"])
    for tensor in [*data.get("inputs", []), *data.get("outputs", [])]:
        for axis in tensor.get("axes", []):
            if "id" not in axis:
                axis["id"] = {"batch": "batch", "channel": "channel"}.get(axis["type"], axis.get("id"))
    return data


def validate_content(content: dict, folder: Path, *, github_users: Sequence[str] = ()) -> object:
    """Build the description from ``content`` (as read from the rdf) with io checks; the ``ModelDescr``.

    Raises :class:`UserError` with the first problems when the content does not validate.
    """
    from bioimageio.spec import InvalidDescr, ValidationContext, build_description

    from exporters.offline import known_github_users

    with known_github_users(github_users):
        descr = build_description(
            copy.deepcopy(content), context=ValidationContext(root=folder, perform_io_checks=True)
        )
    if isinstance(descr, InvalidDescr):
        raise UserError(f"the {COMPAT_FORMAT_VERSION} description does not validate: {summary_errors(descr)}")
    return descr


def summary_errors(descr, limit: int = 4) -> str:
    """The first errors of a description's validation summary, as one line."""
    out = []
    for detail in descr.validation_summary.details:
        for err in detail.errors:
            loc = ".".join(str(p) for p in err.loc)
            out.append(f"{loc}: {err.msg}" if loc else err.msg)
    return "; ".join(out[:limit]) or "invalid"


def dump_yaml(content: dict) -> str:
    """YAML text of a description mapping (keys in the spec's order)."""
    import yaml

    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def write_compatible_rdf(descr, folder: Path, *, github_users: Sequence[str] = ()) -> Path:
    """Write ``rdf.yaml`` in the 0.5.4 form into ``folder`` after checking that form validates."""
    from runner.io import write_text_atomic

    content = compatible_content(descr)
    validate_content(content, folder, github_users=github_users)
    path = folder / RDF_NAME
    write_text_atomic(path, dump_yaml(content))
    return path
