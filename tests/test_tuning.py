"""Threshold tuning: the coordinate search finds good params and records every trial."""

from __future__ import annotations

import numpy as np
import pytest

from runner.errors import UserError
from runner.synthetic import random_blobs
from runner.targets import make_targets
from runner.tuning import coordinate_search, search_space, tune


@pytest.fixture(scope="module")
def noisy_bcd():
    rng = np.random.default_rng(0)
    gts = [random_blobs((96, 96), 15, radius=(6, 10), seed=s) for s in range(3)]
    preds = [
        np.clip(make_targets(g, "BCD") + rng.normal(0, 0.2, (3, 96, 96)), 0, 1).astype(np.float32)
        for g in gts
    ]
    return preds, gts


def test_coordinate_search_finds_the_peak_and_caches():
    calls = []

    def evaluate(p):
        calls.append(dict(p))
        return {"m": -((p["a"] - 0.3) ** 2) - (p["b"] - 0.7) ** 2}

    trials = coordinate_search(
        evaluate, {"a": 0.9, "b": 0.1}, {"a": [0.1, 0.3, 0.5, 0.9], "b": [0.1, 0.7]}, metric="m"
    )
    best = max(trials, key=lambda t: t.score)
    assert best.params == {"a": 0.3, "b": 0.7}
    keys = [tuple(sorted(c.items())) for c in calls]
    assert len(keys) == len(set(keys))  # every combination evaluated once
    assert trials[0].params == {"a": 0.9, "b": 0.1}


def test_tune_recovers_from_bad_thresholds(noisy_bcd):
    preds, gts = noisy_bcd
    result = tune(
        preds, gts, "watershed_bcd", {"th_distance": 0.95, "th_binary": 0.95}, metric="av_ap", workers=1
    )
    assert result.default_score < 0.5
    assert result.best_score > 0.85
    assert result.best_score == max(t.score for t in result.trials)
    assert result.best_params["th_distance"] < 0.95
    assert {"accuracy@0.5", "av_ap"} <= set(result.trials[0].scores)
    # the best params reproduce the best score
    again = tune(
        preds,
        gts,
        "watershed_bcd",
        result.best_params,
        metric="av_ap",
        grid={"th_distance": [result.best_params["th_distance"]]},
        rounds=1,
        workers=1,
    )
    assert again.default_score == pytest.approx(result.best_score)


def test_tune_in_worker_processes_matches_serial(noisy_bcd):
    preds, gts = noisy_bcd
    grid = {"th_distance": [0.3, 0.6], "th_contour": [0.3], "th_binary": [0.5], "th_foreground": [0.5]}
    serial = tune(preds, gts, "watershed_bcd", metric="accuracy@0.5", grid=grid, workers=1)
    forked = tune(preds, gts, "watershed_bcd", metric="accuracy@0.5", grid=grid, workers=2)
    assert [t.score for t in serial.trials] == [t.score for t in forked.trials]


def test_tune_on_any_field_at_iou(noisy_bcd):
    from runner.metrics import evaluate_image, summarize
    from runner.postprocessing import run_postprocessor

    preds, gts = noisy_bcd
    grid = {"th_distance": [0.3, 0.6], "th_contour": [0.3], "th_binary": [0.5], "th_foreground": [0.5]}
    result = tune(preds, gts, "watershed_bcd", metric="f1@0.7", grid=grid, workers=1)
    assert all(set(t.scores) == {"f1@0.7"} for t in result.trials)
    scored = [
        evaluate_image(g, run_postprocessor("watershed_bcd", p, result.best_params), thresholds=(0.7,))
        for p, g in zip(preds, gts, strict=True)
    ]
    assert result.best_score == summarize(scored)["pooled"]["per_threshold"][0]["f1"]


def test_bad_requests():
    from runner.postprocessing import get_postprocessor

    model = get_postprocessor("fg_watershed").params_model
    with pytest.raises(UserError, match="unknown parameter"):
        search_space("fg_watershed", model, overrides={"nope": [1]})
    pred, gt = [np.zeros((1, 8, 8), np.float32)], [np.zeros((8, 8), np.uint32)]
    with pytest.raises(UserError, match="metric"):
        tune(pred, gt, "fg_watershed", metric="f2")
    with pytest.raises(UserError):
        tune(pred, gt, "fg_watershed", grid={"threshold": [2.0]})  # out of range: refused before searching
