"""Reading and writing recipe YAML files; validation errors become one-line :class:`UserError` messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.errors import UserError
from runner.recipes.recipe import Recipe


def _walk(model: type[BaseModel], loc: tuple) -> tuple[list[str], type[BaseModel] | None]:
    """Follow an error location through the models: the readable key path and the model holding the last key.

    Discriminated-union tags (e.g. ``cosine`` in ``schedule.cosine.warmup``) are dropped from the path.
    """
    path: list[str] = []
    current: Any = model
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(part, int):
            path.append(str(part))
            continue
        fields = current.model_fields if current is not None else {}
        if part in fields:
            path.append(part)
            if not last:
                current = _member(fields[part].annotation, loc[i + 1])
        elif last:
            path.append(part)  # the unknown key itself
        # else: a union tag, already resolved by _member
    return path, current


def _member(annotation: Any, tag: Any) -> Any:
    """The pydantic model inside ``annotation``; for a union, the member whose ``name`` default is ``tag``."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [m for m in (_member(a, None) for a in typing.get_args(annotation)) if m is not None]
    for m in members:
        name = m.model_fields.get("name")
        args = typing.get_args(name.annotation) if name is not None else ()
        if tag is not None and tag in args:
            return m
    return members[0] if members else None


def format_validation_error(exc: ValidationError, *, model: type[BaseModel] = Recipe, limit: int = 4) -> str:
    """``key.path: problem`` for each error, joined by '; ' (unknown keys list the allowed ones)."""
    parts = []
    for err in exc.errors()[:limit]:
        path, holder = _walk(model, tuple(err.get("loc", ())))
        where = ".".join(path)
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            allowed = list(holder.model_fields) if holder is not None else []
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            parts.append(f"{where}: unknown key{hint}")
        elif kind == "missing":
            parts.append(f"{where}: required key missing")
        else:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            parts.append(f"{where}: {msg}{shown}" if where else msg)
    extra = len(exc.errors()) - limit
    if extra > 0:
        parts.append(f"and {extra} more problem(s)")
    return "; ".join(parts)


def recipe_from_dict(data: dict, *, source: str | Path | None = None) -> Recipe:
    """Validate a recipe given as a dict; ``source`` names the file in error messages."""
    if not isinstance(data, dict):
        raise UserError(f"a recipe must be a YAML mapping, got {type(data).__name__}", path=source)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise UserError(
            f"invalid recipe: {format_validation_error(exc)}",
            path=source,
            hint="see model_specs/README.md for every key",
        ) from None


def load_recipe(path: str | Path, *, overrides: dict | None = None) -> Recipe:
    """Read and validate a recipe YAML file.

    Parameters
    ----------
    path : recipe file (``model_specs/*.yaml``).
    overrides : nested dict merged over the file's content before validation, e.g.
        ``{"training": {"iterations": 20}}``.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(
            "recipe file not found",
            path=path,
            hint="give a YAML file such as model_specs/unet2d_bcd_nuclei.yaml",
        )
    from runner.safety import read_yaml_text

    try:
        data = yaml.safe_load(read_yaml_text(path, what="recipe"))  # alias bombs refused before parsing
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"not valid YAML{where}: {problem}", path=path) from None
    except UnicodeDecodeError:
        raise UserError("not a text file", path=path) from None
    if data is None:
        raise UserError("recipe file is empty", path=path)
    if overrides and isinstance(data, dict):
        data = merge(data, overrides)
    return recipe_from_dict(data, source=path)


def merge(base: dict, override: dict) -> dict:
    """Recursive dict merge (``override`` wins); inputs are not modified."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def recipe_to_dict(recipe: Recipe) -> dict:
    """Plain JSON-able dict of the resolved recipe (every default filled in)."""
    return recipe.model_dump(mode="json")


def recipe_to_yaml(recipe: Recipe) -> str:
    """YAML text of the resolved recipe, keys in declaration order."""
    import yaml

    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=False, width=110)


def save_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe as YAML (atomically)."""
    from runner.io import write_text_atomic

    write_text_atomic(Path(path), recipe_to_yaml(recipe))
    return Path(path)
