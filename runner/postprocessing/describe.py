"""Listing of the post-processors and filters with their params (``runner postprocess --list``)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from pydantic import BaseModel

from runner.postprocessing.params import field_range


@dataclass(frozen=True)
class ParamDoc:
    """One param as shown to users."""

    name: str
    default: str
    allowed: str
    doc: str


def _allowed(model: type[BaseModel], name: str) -> str:
    info = model.model_fields[name]
    literals = _literals(info.annotation)
    lo, hi = field_range(model, name)
    parts = []
    if lo is not None or hi is not None:
        parts.append(f"[{'-inf' if lo is None else _num(lo)}, {'inf' if hi is None else _num(hi)}]")
    elif _has_number(info.annotation):
        parts.append("number")
    if literals:
        parts.append(" | ".join(str(v) for v in literals))
    if _is_bool(info.annotation):
        parts = ["true | false"]
    if _is_list(info.annotation):
        parts.append("list (a,b,...)")
    if _has_str(info.annotation) and not literals:
        parts.append("text")
    if _is_optional(info.annotation):
        parts.append("none")
    return " or ".join(parts) if parts else "-"


def _num(v: float) -> str:
    return f"{v:g}"


def _args(tp) -> tuple:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _args(typing.get_args(tp)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out: tuple = ()
        for a in typing.get_args(tp):
            out += _args(a)
        return out
    return (tp,)


def _literals(tp) -> list:
    out: list = []
    for a in _args(tp):
        if typing.get_origin(a) is typing.Literal:
            out.extend(typing.get_args(a))
    return out


def _has_number(tp) -> bool:
    return any(a in (int, float) for a in _args(tp))


def _has_str(tp) -> bool:
    return any(a is str for a in _args(tp))


def _is_bool(tp) -> bool:
    return _args(tp) == (bool,)


def _is_list(tp) -> bool:
    return any(typing.get_origin(a) is list for a in _args(tp))


def _is_optional(tp) -> bool:
    return any(a is type(None) for a in _args(tp))


def param_docs(model: type[BaseModel]) -> list[ParamDoc]:
    """Name, default, allowed values and description of every field of ``model``."""
    out = []
    for name, info in model.model_fields.items():
        default = "(required)" if info.is_required() else repr(info.default)
        out.append(ParamDoc(name, default, _allowed(model, name), info.description or ""))
    return out


def _block(name: str, tag: str, description: str, model: type[BaseModel]) -> list[str]:
    lines = [f"  {name}{tag}", f"      {description}"]
    for p in param_docs(model):
        lines.append(f"      {p.name:<19} default {p.default:<10} {p.allowed:<28} {p.doc}")
    return lines


def format_listing() -> str:
    """Every post-processor and filter with its params, as printed by ``runner postprocess --list``."""
    from runner.postprocessing.filters.filtering import list_filters
    from runner.postprocessing.registry import list_postprocessors

    lines = ["Post-processors (--method NAME, --param key=value):"]
    for pp in list_postprocessors():
        bits = []
        if pp.code:
            bits.append(f"channels {pp.code}")
        elif pp.n_channels:
            bits.append(f"{pp.n_channels} channel(s)")
        if pp.input == "image":
            bits.append("raw image input")
        if pp.overlapping:
            bits.append("may return an overlapping stack")
        tag = f"  [{'; '.join(bits)}]" if bits else ""
        lines += _block(pp.name, tag, pp.description, pp.params_model)
    lines += ["", "Filters (--filter NAME or NAME:key=value,key=value; applied in the order given):"]
    for flt in list_filters():
        tag = f"  [needs {flt.needs}]" if flt.needs else ""
        lines += _block(flt.name, tag, flt.description, flt.params_model)
    return "\n".join(lines)
