"""Remove objects by their measured properties (BiaPy's ``REMOVE_BY_PROPERTIES``).

Conditions are a list of groups; each group is a list of conditions that must *all* hold; an object is
removed when *any* group holds in full. Groups are checked in order and the report names the first one that
removed each object. Written forms that :func:`parse_conditions` accepts::

    "npixels lt 100 and circularity le 0.7"                   # one group
    ["area gt 5000", "npixels lt 100 and circularity le 0.7"] # two groups (the CLI's repeated --remove-if)
    "area gt 5000; npixels lt 100 and circularity le 0.7"     # the same, ';' (or ' or ') between groups
    [[("npixels", "lt", 100), ("circularity", "le", 0.7)]]    # tuples
    {"props": [["npixels", "circularity"]], "values": [[100, 0.7]], "signs": [["lt", "le"]]}  # BiaPy's keys

Operators: ``lt le gt ge eq ne`` or ``< <= > >= == !=``. Properties: see :data:`FILTER_PROPERTIES` (plus
``mean_intensity``/``min_intensity``/``max_intensity`` with an image); in 3D BiaPy's ``area`` and
``perimeter`` mean ``volume`` and ``surface_area``. A NaN property (the circularity of a one-pixel object)
satisfies no condition.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from runner.errors import UserError
from runner.measure.properties import ALIASES_3D, measure_labels
from runner.measure.table import PropertyTable

OPERATORS = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}
_SYMBOLS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "=": "eq", "!=": "ne"}
FILTER_PROPERTIES = (
    "npixels",
    "area",
    "volume",
    "diameter",
    "perimeter",
    "surface_area",
    "circularity",
    "elongation",
    "sphericity",
)
_ONLY_2D = {"circularity": "sphericity", "elongation": "sphericity"}
_ONLY_3D = {"volume": "area", "surface_area": "perimeter", "sphericity": "circularity"}
_INTENSITY = re.compile(r"^(mean|min|max)_intensity(_c\d+)?$")


@dataclass(frozen=True)
class Condition:
    """``prop op value``, e.g. ``Condition("npixels", "lt", 100.0)``."""

    prop: str
    op: str
    value: float

    def __str__(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.prop} {self.op} {value}"

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Element-wise truth of the condition for an array of property values (NaN -> False)."""
        with np.errstate(invalid="ignore"):
            return np.asarray(OPERATORS[self.op](np.asarray(values, np.float64), self.value), bool)


def _condition(prop, op, value, *, source: str) -> Condition:
    prop = str(prop).strip().lower()
    op = str(op).strip().lower()
    op = _SYMBOLS.get(op, op)
    if prop not in FILTER_PROPERTIES and not _INTENSITY.match(prop):
        raise UserError(
            f"unknown property {prop!r} in condition {source!r}",
            hint=f"use one of {', '.join(FILTER_PROPERTIES)}, mean_intensity, min_intensity, max_intensity",
        )
    if op not in OPERATORS:
        raise UserError(
            f"unknown operator {op!r} in condition {source!r}", hint="use lt, le, gt, ge, eq or ne"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"condition {source!r} needs a number, got {value!r}") from None
    if not np.isfinite(number):
        raise UserError(f"condition {source!r} needs a finite number, got {value!r}")
    return Condition(prop, op, number)


def _parse_one(item) -> Condition:
    if isinstance(item, Condition):
        return item
    if isinstance(item, str):
        text = item.strip()
        match = re.fullmatch(r"([A-Za-z_][A-Za-z_0-9]*)\s*(<=|>=|==|!=|<|>|=|[A-Za-z]+)\s*(\S+)", text)
        if not match:
            raise UserError(
                f"cannot read condition {item!r}",
                hint="write it as 'PROPERTY OP VALUE', e.g. 'npixels lt 100'",
            )
        return _condition(match.group(1), match.group(2), match.group(3), source=text)
    if isinstance(item, Sequence) and len(item) == 3:
        return _condition(*item, source=" ".join(map(str, item)))
    raise UserError(f"cannot read condition {item!r}", hint="use 'npixels lt 100' or ('npixels', 'lt', 100)")


def _parse_group(group) -> list[Condition]:
    if isinstance(group, str):
        parts = [p for p in re.split(r"\s+and\s+|\s*&\s*|\s*,\s*", group.strip(), flags=re.I) if p.strip()]
        if not parts:
            raise UserError(f"empty condition group {group!r}")
        return [_parse_one(p) for p in parts]
    if isinstance(group, Condition):
        return [group]
    if (
        isinstance(group, Sequence)
        and len(group) == 3
        and isinstance(group[0], str)
        and not _looks_like_text(group)
    ):
        return [_parse_one(group)]
    items = list(group)
    if not items:
        raise UserError("empty condition group", hint="each group needs at least one condition")
    return [_parse_one(c) for c in items]


def _looks_like_text(group) -> bool:
    return all(isinstance(g, str) and len(g.split()) >= 3 for g in group)


def parse_conditions(conditions) -> list[list[Condition]]:
    """Read removal conditions into groups of :class:`Condition` (see the module docstring for the forms).

    Raises
    ------
    UserError
        Unknown property or operator, a value that is not a number, or an empty group.
    """
    if conditions is None:
        return []
    if isinstance(conditions, Mapping):
        try:
            props, values, signs = conditions["props"], conditions["values"], conditions["signs"]
        except KeyError:
            raise UserError("a condition mapping needs the keys props, values and signs") from None
        if not (len(props) == len(values) == len(signs)):
            raise UserError("props, values and signs must be lists of the same length")
        return [
            [_condition(p, s, v, source=f"{p} {s} {v}") for p, v, s in zip(ps, vs, ss, strict=True)]
            for ps, vs, ss in zip(props, values, signs, strict=True)
        ]
    if isinstance(conditions, str):
        groups = [g for g in re.split(r"\s*;\s*|\s+or\s+", conditions.strip(), flags=re.I) if g.strip()]
        return [_parse_group(g) for g in groups]
    return [_parse_group(g) for g in conditions]


def _column_for(prop: str, ndim: int) -> str:
    if ndim == 3:
        if prop in _ONLY_2D:
            raise UserError(
                f"{prop} is only defined for 2D objects", hint=f"use {_ONLY_2D[prop]} for 3D labels"
            )
        return ALIASES_3D.get(prop, prop)
    if prop in _ONLY_3D:
        raise UserError(f"{prop} is only defined for 3D objects", hint=f"use {_ONLY_3D[prop]} for 2D labels")
    return prop


def apply_conditions(table: PropertyTable, groups: list[list[Condition]], *, ndim: int) -> PropertyTable:
    """Add ``condition_<k>`` (group k holds in full), ``removed`` and ``removed_by`` (first group that holds,
    0 when kept) columns to a copy of ``table``."""
    out = table.select(slice(None))
    removed_by = np.zeros(len(table), np.int64)
    for k, group in enumerate(groups, start=1):
        holds = np.ones(len(table), bool)
        for cond in group:
            column = _column_for(cond.prop, ndim)
            if column not in table:
                raise UserError(
                    f"property {cond.prop} is not available", hint="intensity properties need --image"
                )
            holds &= cond.holds(table[column])
        out.add(f"condition_{k}", holds)
        removed_by[(removed_by == 0) & holds] = k
    out.add("removed", removed_by > 0)
    out.add("removed_by", removed_by)
    return out


def remove_by_properties(
    labels: np.ndarray,
    conditions,
    *,
    resolution: Sequence[float] | None = None,
    image: np.ndarray | None = None,
    properties: Sequence[str] | None = None,
) -> tuple[np.ndarray, PropertyTable]:
    """Remove the objects that satisfy any group of ``conditions``.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) ndarray of unsigned int
        Instance labels (0 = background).
    conditions
        Anything :func:`parse_conditions` accepts, or its result.
    resolution : sequence of float, optional
        Pixel spacing ``(z,) y, x`` for the physical properties.
    image : (C, (Z,) Y, X) ndarray, optional
        Needed for intensity conditions.
    properties : sequence of str, optional
        Extra properties to measure for the report (only those used by the conditions otherwise).

    Returns
    -------
    kept : ndarray, same shape and dtype as ``labels``
        The labels with removed objects set to 0 (ids of the others unchanged).
    report : PropertyTable
        One row per object of the input: its properties, ``condition_<k>`` (bool), ``removed`` and
        ``removed_by``.
    """
    labels = np.asarray(labels)
    groups = conditions if _is_parsed(conditions) else parse_conditions(conditions)
    used = {_column_for(c.prop, labels.ndim) for g in groups for c in g}
    wanted = {"intensity" if _INTENSITY.match(p) else p for p in used} | set(properties or ())
    table = measure_labels(labels, image=image, resolution=resolution, properties=sorted(wanted))
    report = apply_conditions(table, groups, ndim=labels.ndim)
    gone = report["label"][report["removed"]]
    if len(gone) == 0:
        return labels.copy(), report
    import fastremap

    kept = fastremap.mask(np.ascontiguousarray(labels), gone.tolist(), in_place=False)
    return kept, report


def _is_parsed(conditions) -> bool:
    return isinstance(conditions, list) and all(
        isinstance(g, list) and all(isinstance(c, Condition) for c in g) for g in conditions
    )
