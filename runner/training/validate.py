"""Validation rounds: loss and instance metric (post-process, then match) on whole validation images."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from runner.metrics.names import parse_metric
from runner.recipes import Recipe
from runner.training.data import Sample
from runner.training.inference import activate, predict_logits
from runner.training.losses import InstanceLoss


@dataclass
class ValResult:
    """One validation round."""

    loss: float
    metric: float
    """Value of ``recipe.validation.metric`` (the loss itself when the metric is 'loss')."""
    metric_name: str
    n_images: int
    seconds: float
    scores: dict[str, float] = field(default_factory=dict)
    """Every matching field at the metric's IoU (accuracy, f1, precision, recall, ...) when computed."""


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric ``name`` is better."""
    return parse_metric(name, allow=("loss",)).higher_is_better


def validate(
    model: torch.nn.Module,
    samples: list[Sample],
    recipe: Recipe,
    loss_fn: InstanceLoss,
    *,
    device: torch.device,
    halo: tuple[int, ...] | None = None,
    autocast: bool = False,
) -> ValResult:
    """Predict every validation image whole (or tiled), and compute the mean loss and the metric."""
    from runner.models import size_rule

    start = time.perf_counter()
    rule = size_rule(recipe.model, recipe.dims)
    metric = parse_metric(recipe.validation.metric, allow=("loss",))
    metric_field, iou = metric.field, metric.iou
    losses, stats = [], []
    n_code = recipe.n_code_channels
    for s in samples:
        logits = predict_logits(
            model,
            s.image,
            rule=rule,
            device=device,
            tile=recipe.validation.tile,
            halo=halo,
            autocast=autocast,
        )
        losses.append(_loss(loss_fn, logits, with_targets(s, recipe)))
        if iou is not None:
            pred = _postprocess(recipe, activate(model, logits)[:n_code])
            stats.append(_evaluate(s.labels, pred, iou))
    loss = float(np.mean(losses)) if losses else float("nan")
    scores: dict[str, float] = {}
    if iou is None:
        value = loss
    else:
        scores = _pooled(stats)
        value = float(scores[metric_field])
    return ValResult(
        loss=loss,
        metric=value,
        metric_name=recipe.validation.metric,
        n_images=len(samples),
        seconds=time.perf_counter() - start,
        scores=scores,
    )


def with_targets(s: Sample, recipe: Recipe) -> Sample:
    """``s`` with its whole-image targets (made from the labels when they are made per crop, PatchPerPix)."""
    if s.targets.shape[0]:
        return s
    import dataclasses

    from runner.training.data import sample_targets

    return dataclasses.replace(s, targets=sample_targets(s, recipe))


def _loss(loss_fn: InstanceLoss, logits: np.ndarray, s: Sample) -> float:
    with torch.no_grad():
        t = torch.from_numpy(s.targets.astype(np.float32))[None]
        mask = torch.ones((1, *s.shape))
        w = None if s.weights is None else torch.from_numpy(s.weights.astype(np.float32))[None]
        c = None if s.classes is None else torch.from_numpy(s.classes.astype(np.int64))[None]
        return float(loss_fn(torch.from_numpy(logits)[None], t, mask, w, c).total)


def _postprocess(recipe: Recipe, prediction: np.ndarray) -> np.ndarray:
    from runner.postprocessing import run_postprocessor

    pp = recipe.postprocessing
    return run_postprocessor(pp.name, prediction, pp.params, resolution=recipe.targets.options.resolution)


def _evaluate(gt: np.ndarray, pred: np.ndarray, iou: float):
    from runner.metrics import evaluate_image

    return evaluate_image(gt, pred, thresholds=(iou,))


def _pooled(stats: list) -> dict[str, float]:
    from runner.metrics import summarize

    row = summarize(stats)["pooled"]["per_threshold"][0]
    return {k: float(v) for k, v in row.items() if isinstance(v, int | float)}
