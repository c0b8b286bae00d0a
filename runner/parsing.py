"""Parsing of compact text values (CLI options, filter steps, widget fields): ``1,2,3`` tuples and
``key=value`` params. Shared by the CLI, the post-processing filters and the napari widget."""

from __future__ import annotations

from runner.errors import UserError


def parse_floats(
    text: str | None, *, name: str, length: tuple[int, ...] | None = None
) -> tuple[float, ...] | None:
    """``"2,0.5,0.5"`` -> ``(2.0, 0.5, 0.5)``."""
    if text is None or text == "":
        return None
    try:
        values = tuple(float(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UserError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if length and len(values) not in length:
        raise UserError(f"{name} needs {' or '.join(map(str, length))} values, got {len(values)} ({text!r})")
    return values


def parse_ints(
    text: str | None, *, name: str, length: tuple[int, ...] | None = None
) -> tuple[int, ...] | None:
    """``"25,25"`` -> ``(25, 25)``."""
    values = parse_floats(text, name=name, length=length)
    if values is None:
        return None
    if any(v != int(v) for v in values):
        raise UserError(f"{name} must be whole numbers, got {text!r}")
    return tuple(int(v) for v in values)


def parse_value(text: str):
    """Interpret a CLI value: numbers, booleans, ``none``, comma lists; else the string itself."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    if "," in text:
        return [parse_value(t) for t in text.split(",") if t.strip()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None) -> dict:
    """``["threshold=0.5", "min_size=auto"]`` -> ``{"threshold": 0.5, "min_size": "auto"}``."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--param expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key:
            raise UserError(f"--param expects key=value, got {item!r}")
        out[key] = parse_value(value)
    return out
