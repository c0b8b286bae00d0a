"""Validation metrics of the exported package, for its README and ``config.runner``.

The package being built is run the way ``runner predict`` runs it (:class:`runner.inference.Predictor`:
the rdf's preprocessing on the whole image, tiles with the package's halo, the fastest weight format), each
output is turned into instances by the recipe's post-processor with its params, and matched against the
labels with :mod:`runner.metrics`; the numbers are pooled over the images (TP, FP, FN summed first). So
``runner predict PACKAGE --input VAL/x --gt VAL/y`` reproduces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HEADLINE = (
    ("accuracy", 0.5, "accuracy@0.5 (TP/(TP+FP+FN), DSB2018 'AP')"),
    ("f1", 0.5, "F1@0.5"),
    ("precision", 0.5, "precision@0.5"),
    ("recall", 0.5, "recall@0.5"),
    ("panoptic_quality", 0.5, "panoptic quality@0.5"),
    ("mean_matched_iou", 0.5, "mean IoU of matched objects@0.5"),
    ("accuracy", 0.75, "accuracy@0.75"),
)
THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)
"""IoU thresholds scored for the README (0.5:0.1:0.9, and 0.75 for the headline)."""
TABLE_ROWS = (("accuracy", "accuracy (AP_dsb)"), ("f1", "F1"), ("panoptic_quality", "panoptic quality"))


@dataclass
class ValidationReport:
    """Metrics of the network + post-processor on the run's validation images."""

    n_images: int
    names: list[str]
    source: str
    role: str
    """``validation`` or ``training`` (a run trained without validation images)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Headline numbers keyed like ``accuracy@0.5``, plus ``av_ap_50_95``, ``aji``, ``n_gt``, ``n_pred``."""
    labels: dict[str, str] = field(default_factory=dict)
    """Human-readable name of each metric key."""
    per_threshold: list[dict] = field(default_factory=list)
    """Pooled rows of ``summary.json`` (``iou, tp, fp, fn, precision, recall, accuracy, f1, ...``)."""
    seconds: float = 0.0
    weights: str = ""
    """Weight format the metrics were computed with."""


def evaluate_package(
    package, recipe, data, *, max_images: int | None = None, progress: bool = False
) -> ValidationReport:
    """Predict, post-process and score the images of ``data`` (:class:`exporters.samples.RunData`).

    Parameters
    ----------
    package : package folder (rdf + weights) being built.
    recipe : the run's :class:`runner.recipes.Recipe` (post-processor, resolution, axes).
    data : the run's validation pairs.
    max_images : score at most this many (the first in name order); None = all.
    """
    import time

    from tqdm import tqdm

    from runner.inference import Predictor, load_package
    from runner.io import read_image, read_labels
    from runner.metrics import evaluate_image, summarize
    from runner.postprocessing import run_pipeline

    start = time.perf_counter()
    pp = recipe.postprocessing
    resolution = recipe.targets.options.resolution
    n_code = recipe.n_code_channels
    pairs = data.pairs[:max_images] if max_images else data.pairs
    pkg = load_package(package)
    weights = next(f for f in ("onnx", "torchscript", "pytorch_state_dict") if f in pkg.weight_formats)
    scored = []
    with Predictor(pkg, device="cpu", weights=weights, trust_code=True) as predictor:
        for pair in tqdm(pairs, desc="validation metrics", unit="img", disable=not progress, leave=False):
            image = read_image(pair.image, axes=recipe.data.axes)
            gt = read_labels(pair.labels, spatial_shape=image.data.shape[1:]).data
            out = next(iter(predictor.predict(image.data, where=pair.image).values()))
            labels = run_pipeline(out[:n_code], pp.name, pp.params, resolution=resolution)
            scored.append(evaluate_image(gt, labels, thresholds=THRESHOLDS, name=pair.name))
    pkg.close()
    report = report_from_summary(
        summarize(scored), names=[p.name for p in pairs], source=data.source, role=data.role
    )
    report.seconds = time.perf_counter() - start
    report.weights = weights
    return report


def report_from_summary(summary: dict, *, names: list[str], source: str, role: str) -> ValidationReport:
    """A :class:`ValidationReport` from a ``summary.json`` mapping scored at :data:`THRESHOLDS`."""
    from runner.metrics import metric_name

    pooled = summary["pooled"]
    rows = {float(r["iou"]): r for r in pooled["per_threshold"]}
    metrics: dict[str, float] = {}
    labels: dict[str, str] = {}
    for key, iou, text in HEADLINE:
        metrics[metric_name(key, iou)] = float(rows[iou][key])
        labels[metric_name(key, iou)] = text
    metrics["av_ap_50_90"] = float(pooled["av_ap_50_95_10"])
    labels["av_ap_50_90"] = "mean accuracy over IoU 0.5:0.1:0.9"
    metrics["av_ap_50_95"] = float(pooled["av_ap_50_95_05"])
    labels["av_ap_50_95"] = "mean accuracy over IoU 0.50:0.05:0.95"
    metrics["aji"] = float(pooled["aji"])
    labels["aji"] = "aggregated Jaccard index (AJI)"
    metrics["n_true"] = float(rows[0.5]["tp"] + rows[0.5]["fn"])
    metrics["n_predicted"] = float(rows[0.5]["tp"] + rows[0.5]["fp"])
    labels["n_true"], labels["n_predicted"] = "objects in the labels", "predicted objects"
    metrics = {k: (float(v) if np.isfinite(v) else float("nan")) for k, v in metrics.items()}
    return ValidationReport(
        n_images=len(names),
        names=list(names),
        source=source,
        role=role,
        metrics=metrics,
        labels=labels,
        per_threshold=[dict(r) for r in pooled["per_threshold"]],
    )
