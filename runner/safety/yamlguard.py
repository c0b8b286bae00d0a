"""YAML from strangers: size and alias-expansion limits checked on the event stream, before anything expands.

A YAML alias (``*a``) repeats the node its anchor (``&a``) names; nine levels of ten aliases each make a
file of under 1 kB that expands to a billion nodes ("billion laughs"). PyYAML's composer shares the aliased
node, but everything downstream (``copy.deepcopy``, pydantic, ``json.dumps``) expands it. The check here
walks the parser's events (which never expand anything), weighs every anchor by the size of its subtree and
counts what the document would expand to; a file over :data:`MAX_NODES` expanded nodes, over
:data:`MAX_YAML_BYTES` or nested deeper than :data:`MAX_DEPTH` is refused before it is composed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.errors import UserError

MAX_YAML_BYTES = 16 * 1024**2
"""Largest YAML text read (16 MiB; a bioimage.io rdf is a few tens of kB)."""
MAX_NODES = 1_000_000
"""Largest number of nodes a document may expand to, aliases counted with their full subtree."""
MAX_DEPTH = 200
"""Deepest nesting of mappings and sequences."""


def check_yaml_text(text: str, *, path: str | Path | None = None, what: str = "YAML file") -> None:
    """Raise a :class:`UserError` when ``text`` would expand past the limits (see the module docstring).

    Parameters
    ----------
    text : the YAML document(s).
    path : the file, named in the message.
    what : what the file is, for the message (``model description``, ``recipe``).
    """
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise UserError(
            f"the {what} is {len(text)} bytes, more than the limit of {MAX_YAML_BYTES}",
            path=path,
            hint="a description or recipe is a few kB; is this the right file?",
        )
    weights: dict[str, int] = {}
    stack: list[list[Any]] = []  # [anchor, expanded size] of the open collections
    total = 0
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append([event.anchor, 1])
                if len(stack) > MAX_DEPTH:
                    raise UserError(
                        f"the {what} nests deeper than {MAX_DEPTH} levels",
                        path=path,
                        hint="is it a valid file?",
                    )
                continue
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, size = stack.pop()
                if anchor is not None:
                    weights[anchor] = size
                if stack:
                    stack[-1][1] += size
                continue
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in weights:
                    raise UserError(
                        f"the {what} has a recursive or undefined YAML alias *{event.anchor}",
                        path=path,
                        hint="write the values out instead of aliasing them",
                    )
                size = weights[event.anchor]
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    weights[event.anchor] = 1
            else:
                continue
            total += size
            if stack:
                stack[-1][1] += size
            if total > MAX_NODES or (stack and stack[-1][1] > MAX_NODES):
                raise UserError(
                    f"the {what} expands to more than {MAX_NODES} nodes through YAML aliases "
                    "(&anchor/*alias); refusing to read it",
                    path=path,
                    hint="a YAML 'billion laughs' bomb? write the values out instead of aliasing them",
                )
    except yaml.YAMLError as exc:
        raise UserError(f"the {what} is {_yaml_problem(exc)}", path=path) from None


def _yaml_problem(exc: Exception) -> str:
    """``not valid YAML at line 3, column 5: mapping values are not allowed here`` (one line)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"not valid YAML{where}: {str(problem)[:200]}"


def read_yaml_text(path: str | Path, *, what: str = "YAML file") -> str:
    """Read a YAML file's text after checking its size on disk and its expansion (:func:`check_yaml_text`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise UserError(
                f"the {what} is {size} bytes, more than the limit of {MAX_YAML_BYTES}",
                path=path,
                hint="a description or recipe is a few kB; is this the right file?",
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"the {what} is not UTF-8 text", path=path) from None
    except OSError as exc:
        raise UserError(f"cannot read the {what} ({exc.strerror or exc})", path=path) from None
    check_yaml_text(text, path=path, what=what)
    return text


def load_yaml(source: str | Path, *, text: str | None = None, what: str = "YAML file") -> Any:
    """``yaml.safe_load`` of a file (or of ``text`` read from ``source``) within the limits."""
    import yaml

    if text is None:
        text = read_yaml_text(source, what=what)
    else:
        check_yaml_text(text, path=source, what=what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"the {what} is {_yaml_problem(exc)}", path=source) from None
