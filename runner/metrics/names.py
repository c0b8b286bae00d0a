"""Metric names in one place: the keys of every report, derived from :class:`ThresholdStats`, and
:func:`parse_metric` for the names a user gives (recipes' ``validation.metric``, ``runner tune --metric``).

A per-threshold statistic is a field of :class:`~runner.metrics.matching.ThresholdStats`; its ``metadata``
says what it is (``count``, ``ratio``, ``threshold`` or ``internal``) and whether ``summary.json`` reports it.
A new statistic is one new field there; every report picks it up from the lists below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from runner.metrics.matching import ThresholdStats

HEADLINE = "accuracy"
"""TP / (TP + FP + FN), the DSB2018 / PatchPerPix "AP": first column of the per-image table."""


def _fields(*, role: str | None = None, summary: bool | None = None) -> tuple[str, ...]:
    return tuple(
        f.name
        for f in fields(ThresholdStats)
        if (role is None or f.metadata.get("role") == role)
        and (summary is None or bool(f.metadata.get("summary")) == summary)
    )


COUNT_FIELDS = _fields(role="count")
"""``tp, fp, fn``: summed over images in every summary."""
RATIO_FIELDS = _fields(role="ratio")
"""Every per-threshold ratio (precision ... mean_true_score)."""
THRESHOLD_FIELDS = tuple(
    n for n in (f.name for f in fields(ThresholdStats)) if n not in _fields(role="internal")
)
"""Columns of ``metrics_per_threshold.csv``."""
SUMMARY_FIELDS = _fields(summary=True)
"""Keys of a ``summary.json`` per-threshold row."""
MATCHING_FIELDS = _fields(role="ratio", summary=True)
"""The FIELDs of a ``FIELD@IOU`` metric (also averaged per image in ``summary.json``)."""
PER_IMAGE_COLUMNS = (HEADLINE, *(n for n in RATIO_FIELDS if n != HEADLINE), *COUNT_FIELDS)
"""Per-threshold columns of ``metrics_per_image.csv`` (as ``FIELD@IOU``), headline first."""

AV_AP = "av_ap"
AV_AP_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
"""``av_ap``: the mean accuracy over these IoU thresholds ([0.5:0.1:0.9])."""
LOSS = "loss"

_FIELD_AT_IOU = re.compile(r"^(?P<field>[a-z_0-9]+)@(?P<iou>0?\.\d+|1(\.0*)?)$")


def metric_name(field: str, iou: float) -> str:
    """``"accuracy@0.5"``: the key of ``field`` at threshold ``iou`` in reports and configs."""
    return f"{field}@{iou:g}"


@dataclass(frozen=True)
class Metric:
    """A parsed metric name: ``FIELD@IOU``, ``av_ap`` or ``loss``."""

    name: str
    """As given (``accuracy@0.5``)."""
    field: str
    """A :data:`MATCHING_FIELDS` name, ``av_ap`` or ``loss``."""
    iou: float | None = None
    """The threshold of ``FIELD@IOU``; None for ``av_ap`` and ``loss``."""

    @property
    def thresholds(self) -> tuple[float, ...]:
        """IoU thresholds to evaluate for this metric (none for the loss)."""
        if self.field == AV_AP:
            return AV_AP_THRESHOLDS
        return () if self.iou is None else (self.iou,)

    @property
    def higher_is_better(self) -> bool:
        return self.field != LOSS

    def from_rows(self, rows: Sequence[Mapping[str, Any]]) -> float:
        """The value from ``summary.json`` per-threshold rows that include :attr:`thresholds`."""
        by_iou = {round(float(r["iou"]), 6): r for r in rows}
        if self.field == AV_AP:
            return float(np.mean([by_iou[round(t, 6)]["accuracy"] for t in AV_AP_THRESHOLDS]))
        if self.iou is None:
            raise ValueError("the loss is not computed from matching rows")
        return float(by_iou[round(self.iou, 6)][self.field])


def parse_metric(name: str, *, allow: Sequence[str] = (AV_AP, LOSS)) -> Metric:
    """``"f1@0.7"`` -> ``Metric("f1@0.7", "f1", 0.7)``; ``"av_ap"`` and ``"loss"`` when in ``allow``.

    Raises
    ------
    ValueError
        One line naming the accepted forms.
    """
    if name in allow and name in (AV_AP, LOSS):
        return Metric(name, name)
    m = _FIELD_AT_IOU.match(name)
    if m and m["field"] in MATCHING_FIELDS:
        return Metric(name, m["field"], float(m["iou"]))
    others = "".join(f" or {a!r}" for a in allow)
    raise ValueError(
        f"unknown metric {name!r}: metric must be FIELD@IOU (FIELD in {', '.join(MATCHING_FIELDS)}, "
        f"e.g. accuracy@0.5){others}"
    )
