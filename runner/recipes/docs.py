"""Field-by-field reference of the recipe schema, generated from the pydantic field descriptions.

``python -m runner.recipes.docs`` prints the Markdown tables; ``python -m runner.recipes.docs --write
model_specs/README.md`` replaces everything after the README's :data:`MARKER` line with them. A test checks
that
the README holds the current tables.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from runner.recipes.recipe import Recipe

MARKER = "<!-- generated below by: python -m runner.recipes.docs --write model_specs/README.md -->"


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    for junk in (
        "typing.",
        "runner.recipes.sections.",
        "runner.targets.codes.",
        "runner.models.config.",
        "runner.targets.gradient_anomaly.",
        "NoneType",
    ):
        text = text.replace(junk, "" if junk != "NoneType" else "None")
    return text.replace("|", "\\|")


def _default(field) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
        if isinstance(value, BaseModel):
            return "see below"
        return f"`{value!r}`" if value is not None else "`null`"
    if field.default_factory is not None:
        return "see below"
    return "**required**"


def sections(model: type[BaseModel] = Recipe, prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """``(key path, model)`` for the recipe and every nested section, depth first."""
    out = [(prefix or "(top level)", model)]
    for name, field in model.model_fields.items():
        for sub in _models_in(field.annotation):
            path = f"{prefix}.{name}" if prefix else name
            if len(_models_in(field.annotation)) > 1:
                path = f"{path} (name: {typing.get_args(sub.model_fields['name'].annotation)[0]})"
            out += sections(sub, path)
    return out


def fields_markdown() -> str:
    """One Markdown table per section: key, type, default, description."""
    lines: list[str] = []
    for path, model in sections():
        lines += [
            f"### `{path}`",
            "",
            (model.__doc__ or "").strip().splitlines()[0],
            "",
            "| key | type | default | description |",
            "|---|---|---|---|",
        ]
        for name, field in model.model_fields.items():
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
        lines.append("")
    return "\n".join(lines)


def update_readme(path) -> None:
    """Rewrite the generated part of a README (everything after :data:`MARKER`)."""
    from pathlib import Path

    from runner.io import write_text_atomic

    text = Path(path).read_text()
    if MARKER not in text:
        raise SystemExit(f"{path}: marker line not found: {MARKER}")
    head = text[: text.index(MARKER) + len(MARKER)]
    write_text_atomic(Path(path), head + "\n\n" + fields_markdown())


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        update_readme(sys.argv[2])
    else:
        print(fields_markdown())
