"""Metric names in one place: report keys derived from the dataclasses, one ``parse_metric`` everywhere."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

import runner.metrics
from runner.metrics import MATCHING_FIELDS, ThresholdStats, evaluate_image, parse_metric, summarize
from runner.metrics.names import PER_IMAGE_COLUMNS, SUMMARY_FIELDS, THRESHOLD_FIELDS
from runner.synthetic import random_blobs


def test_public_names_all_import():
    assert all(hasattr(runner.metrics, name) for name in runner.metrics.__all__)


def test_report_keys_come_from_the_dataclass():
    stats = [f.name for f in fields(ThresholdStats)]
    assert list(THRESHOLD_FIELDS) == [n for n in stats if n != "sum_matched_iou"]
    assert set(SUMMARY_FIELDS) <= set(stats) and set(MATCHING_FIELDS) <= set(SUMMARY_FIELDS)
    gt = random_blobs((64, 64), 8, radius=(4, 7), seed=1)
    m = evaluate_image(gt, np.roll(gt, 1, axis=0), thresholds=(0.5, 0.7))
    row = m.as_row()
    per_threshold = [k for k in row if k.endswith("@0.5")]
    assert per_threshold == [f"{k}@0.5" for k in PER_IMAGE_COLUMNS] and per_threshold[0] == "accuracy@0.5"
    assert list(summarize([m])["pooled"]["per_threshold"][1]) == list(SUMMARY_FIELDS)


@pytest.mark.parametrize(
    ("name", "field", "thresholds"),
    [
        ("accuracy@0.5", "accuracy", (0.5,)),
        ("f1@.75", "f1", (0.75,)),
        ("av_ap", "av_ap", (0.5, 0.6, 0.7, 0.8, 0.9)),
    ],
)
def test_parse_metric(name, field, thresholds):
    metric = parse_metric(name)
    assert metric.field == field and metric.thresholds == thresholds and metric.higher_is_better


@pytest.mark.parametrize("name", ["accuracy@high", "sq@0.5", "f1", "loss@0.5", "accuracy@1.5"])
def test_parse_metric_refuses(name):
    with pytest.raises(ValueError, match="unknown metric .* must be FIELD@IOU"):
        parse_metric(name)


def test_loss_only_where_allowed():
    assert not parse_metric("loss", allow=("loss",)).higher_is_better
    with pytest.raises(ValueError, match="or 'av_ap'"):
        parse_metric("loss", allow=("av_ap",))
