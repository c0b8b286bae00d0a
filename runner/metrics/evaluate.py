"""Evaluate one predicted label image against its ground truth: :func:`evaluate_image` ->
:class:`ImageMetrics`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runner.errors import UserError
from runner.metrics.aji import PixelCounts, aji, aji_plus, foreground_iou, splits_and_merges
from runner.metrics.coco import CocoRecord, coco_map, coco_record
from runner.metrics.criteria import boundary_band, get_criterion
from runner.metrics.matching import PairScores, ThresholdStats, match, threshold_stats
from runner.metrics.overlap import Overlap, band_overlap, is_stack, label_overlap, stack_overlap

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
AVAP_10: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
"""Thresholds of ``av_ap_50_95_10``: [0.5:0.1:0.9]."""
AVAP_05: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""Thresholds of ``av_ap_50_95_05``: [0.5:0.05:0.95]."""


class EvaluationOptions(BaseModel):
    """How images are evaluated: the keyword options of :func:`evaluate_image` as a validated model."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    thresholds: tuple[float, ...] = Field(
        default=DEFAULT_THRESHOLDS, description="Matching thresholds in (0, 1]."
    )
    criterion: str = Field(default="iou", description="Matching criterion: iou, ior, iop or boundary_iou.")
    overlapping: bool = Field(
        default=False,
        description="Inputs are overlapping stacks (N, (Z,) Y, X), one object per "
        "plane (one side may be a label image).",
    )
    boundary_width: float = Field(default=2.0, ge=1.0, description="Band width in pixels for boundary_iou.")
    coco_max_dets: int | None = Field(
        default=None, ge=1, description="COCO detection cap per image (pycocotools: 100); None keeps all."
    )
    split_fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Fraction of an object that must lie inside another to count towards a split or merge.",
    )
    score_dtype: Literal["float32", "float64"] = Field(
        default="float32",
        description="Precision of the scores: float32 reproduces stardist.matching exactly.",
    )

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v):
        if not v or any(not (0 < t <= 1) for t in v):
            raise ValueError(f"thresholds must be non-empty and lie in (0, 1], got {list(v)}")
        return v

    @field_validator("criterion")
    @classmethod
    def _criterion(cls, v):
        return get_criterion(v).name


@dataclass
class Matches:
    """The matching of one image at one threshold, with original ids."""

    threshold: float
    gt_ids: np.ndarray
    """``(tp,)`` ids of the matched ground-truth objects (increasing)."""
    pred_ids: np.ndarray
    """``(tp,)`` ids of their predictions."""
    scores: np.ndarray
    """``(tp,)`` float64 criterion score (IoU by default) of each matched pair."""
    unmatched_gt: np.ndarray
    """Ids of the false negatives."""
    unmatched_pred: np.ndarray
    """Ids of the false positives."""


_MEAN = {"summary": "mean"}
"""An image-level metric averaged over images in ``per_image_mean``."""
_TOTAL = {"summary": "total"}
"""An image-level count summed over images."""


@dataclass
class ImageMetrics:
    """All metrics of one image. ``per_threshold`` follows the requested thresholds."""

    name: str | None
    criterion: str
    per_threshold: list[ThresholdStats]
    av_ap_50_95_10: float = field(metadata=_MEAN)
    """Mean accuracy (DSB "AP") over IoU 0.5, 0.6, ..., 0.9."""
    av_ap_50_95_05: float = field(metadata=_MEAN)
    """Mean accuracy over IoU 0.5, 0.55, ..., 0.95."""
    aji: float = field(metadata=_MEAN)
    aji_plus: float = field(metadata=_MEAN)
    coco_map: float = field(metadata=_MEAN)
    """COCO mask mAP@[.5:.95] (no detection cap unless asked)."""
    foreground_iou: float = field(metadata=_MEAN)
    n_splits: int = field(metadata=_TOTAL)
    n_merges: int = field(metadata=_TOTAL)
    n_true: int
    n_pred: int
    all_thresholds: dict[float, ThresholdStats] = field(repr=False, default_factory=dict)
    """Stats at every threshold computed (the requested ones and those of the avAP means)."""
    aji_counts: PixelCounts | None = field(repr=False, default=None)
    aji_plus_counts: PixelCounts | None = field(repr=False, default=None)
    foreground_counts: PixelCounts | None = field(repr=False, default=None)
    coco: CocoRecord | None = field(repr=False, default=None)
    gt_ids: np.ndarray | None = field(repr=False, default=None)
    pred_ids: np.ndarray | None = field(repr=False, default=None)
    _tp: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False, default_factory=dict)

    @property
    def thresholds(self) -> list[float]:
        return [s.iou for s in self.per_threshold]

    def at(self, threshold: float) -> ThresholdStats:
        """The stats at ``threshold`` (any of :attr:`all_thresholds`)."""
        try:
            return self.all_thresholds[threshold_key(threshold)]
        except KeyError:
            raise KeyError(
                f"threshold {threshold} was not evaluated; available: {sorted(self.all_thresholds)}"
            ) from None

    def matches(self, threshold: float) -> Matches:
        """Matched pairs ``(gt id, pred id, score)`` and unmatched ids at ``threshold``."""
        key = threshold_key(threshold)
        if key not in self._tp:
            raise KeyError(f"no matches kept for threshold {threshold}; available: {sorted(self._tp)}")
        rows, cols, scores = self._tp[key]
        gt_ids, pred_ids = self.gt_ids, self.pred_ids
        assert gt_ids is not None and pred_ids is not None, "the ids are kept with the matches"
        gt_left = np.ones(len(gt_ids), bool)
        gt_left[rows] = False
        pred_left = np.ones(len(pred_ids), bool)
        pred_left[cols] = False
        return Matches(
            threshold,
            gt_ids[rows],
            pred_ids[cols],
            scores,
            gt_ids[gt_left],
            pred_ids[pred_left],
        )

    def as_row(self) -> dict:
        """Flat ``{column: value}`` for ``metrics_per_image.csv`` (per-threshold columns as ``name@t``)."""
        from runner.metrics.names import PER_IMAGE_COLUMNS, metric_name

        row = {"image": self.name, "n_true": self.n_true, "n_pred": self.n_pred}
        row.update({key: getattr(self, key) for key in IMAGE_FIELDS})
        for s in self.per_threshold:
            row.update({metric_name(key, s.iou): getattr(s, key) for key in PER_IMAGE_COLUMNS})
        return row


IMAGE_FIELDS = tuple(f.name for f in fields(ImageMetrics) if f.metadata.get("summary"))
"""Image-level metrics (``av_ap_50_95_10`` ... ``n_merges``) in every table and summary."""
MEAN_IMAGE_FIELDS = tuple(f.name for f in fields(ImageMetrics) if f.metadata.get("summary") == "mean")


def threshold_key(threshold: float) -> float:
    return round(float(threshold), 9)


def check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(t) for t in thresholds)
    if not values:
        raise UserError("give at least one threshold")
    bad = [t for t in values if not (0 < t <= 1)]
    if bad:
        raise UserError(f"thresholds must lie in (0, 1], got {bad}")
    return values


def _as_labels(array, what: str, name: str | None) -> np.ndarray:
    from runner.io import as_label_array

    return np.ascontiguousarray(as_label_array(array, where=name or what))


def evaluate_image(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    criterion: str = "iou",
    overlapping: bool = False,
    boundary_width: float = 2.0,
    confidence: np.ndarray | None = None,
    coco_max_dets: int | None = None,
    split_fraction: float = 0.5,
    score_dtype: Literal["float32", "float64"] = "float32",
    name: str | None = None,
) -> ImageMetrics:
    """All instance-segmentation metrics of one image.

    Parameters
    ----------
    gt, pred : (Y, X) or (Z, Y, X) ndarray of uint
        Label images (0 = background), or with ``overlapping=True`` stacks ``(N, (Z,) Y, X)`` holding one
        object per plane (the id of an object is its plane number + 1). Shapes must agree (except N). With
        ``overlapping=True`` one side may be a plain label image of the plane shape (e.g. an overlapping
        prediction scored against label-image ground truth).
    thresholds : sequence of float
        Matching thresholds in (0, 1] reported in ``per_threshold``.
    criterion : str
        ``iou`` (default), ``ior`` (over the ground truth), ``iop`` (over the prediction) or ``boundary_iou``;
        see :mod:`runner.metrics.criteria`. AJI, AJI+, foreground IoU and split/merge counts always use the
        masks.
    boundary_width : float
        Band width in pixels for ``boundary_iou``.
    confidence : (n_pred,) ndarray, optional
        Confidence of each predicted object (increasing id order) for COCO mAP; all equal when None.
    coco_max_dets : int, optional
        COCO's detection cap (100 in pycocotools); None (default) keeps every detection.
    split_fraction : float
        Fraction of a predicted (ground-truth) object that must lie inside a ground-truth (predicted) object
        to count towards a split (merge).
    score_dtype : {"float32", "float64"}
        Precision in which scores are thresholded and summed. ``float32`` reproduces
        ``stardist.matching.matching`` exactly; ``float64`` thresholds the exact ratios (they differ by <
        1e-7).
    name : str, optional
        Image name, used in reports and error messages.
    """
    thresholds = check_thresholds(thresholds)
    crit = get_criterion(criterion)
    if score_dtype not in ("float32", "float64"):
        raise ValueError("score_dtype must be 'float32' or 'float64'")
    if not 0 < split_fraction <= 1:
        raise UserError(f"split_fraction must lie in (0, 1], got {split_fraction}")
    gt = _as_labels(gt, "ground truth", name)
    pred = _as_labels(pred, "prediction", name)
    _check_shapes(gt, pred, overlapping, name)
    ov = stack_overlap(gt, pred) if overlapping else label_overlap(gt, pred)
    scored = _criterion_overlap(ov, gt, pred, crit, boundary_width, overlapping)
    score = crit.score(scored)
    pairs = PairScores(
        scored.rows, scored.cols, score, score.astype(np.dtype(score_dtype)), ov.n_true, ov.n_pred
    )
    computed = {threshold_key(t): t for t in (*AVAP_05, *thresholds)}  # the user's value wins for equal keys
    stats: dict[float, ThresholdStats] = {}
    kept: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for key, t in sorted(computed.items()):
        tp_pairs = match(pairs, t)
        stats[key] = threshold_stats(pairs, tp_pairs, t)
        kept[key] = (pairs.rows[tp_pairs], pairs.cols[tp_pairs], pairs.score[tp_pairs])
    if confidence is not None and len(confidence) != ov.n_pred:
        raise UserError(f"{len(confidence)} confidences given for {ov.n_pred} predicted objects", path=name)
    record = coco_record(
        scored.rows, scored.cols, score, ov.n_true, ov.n_pred, confidence=confidence, max_dets=coco_max_dets
    )
    aji_c, ajip_c, fg_c = aji(ov), aji_plus(ov), foreground_iou(ov)
    n_splits, n_merges = splits_and_merges(ov, fraction=split_fraction)
    return ImageMetrics(
        name=name,
        criterion=crit.name,
        per_threshold=[stats[threshold_key(t)] for t in thresholds],
        av_ap_50_95_10=float(np.mean([stats[threshold_key(t)].accuracy for t in AVAP_10])),
        av_ap_50_95_05=float(np.mean([stats[threshold_key(t)].accuracy for t in AVAP_05])),
        aji=aji_c.value,
        aji_plus=ajip_c.value,
        coco_map=coco_map([record]),
        foreground_iou=fg_c.value,
        n_splits=n_splits,
        n_merges=n_merges,
        n_true=ov.n_true,
        n_pred=ov.n_pred,
        all_thresholds=stats,
        aji_counts=aji_c,
        aji_plus_counts=ajip_c,
        foreground_counts=fg_c,
        coco=record,
        gt_ids=ov.gt_ids,
        pred_ids=ov.pred_ids,
        _tp=kept,
    )


def _check_shapes(gt: np.ndarray, pred: np.ndarray, overlapping: bool, name: str | None) -> None:
    if overlapping:
        g = gt.shape[1:] if is_stack(gt, pred) else gt.shape
        p = pred.shape[1:] if is_stack(pred, gt) else pred.shape
        if g != p or len(g) not in (2, 3) or max(gt.ndim, pred.ndim) != len(g) + 1:
            raise UserError(
                f"overlapping stacks must be (N, (Z,) Y, X) with equal planes (or one side a label image of "
                f"the plane shape); ground truth {gt.shape}, prediction {pred.shape}",
                path=name,
            )
    elif gt.shape != pred.shape or gt.ndim not in (2, 3):
        raise UserError(
            f"prediction has shape {pred.shape} but its ground truth has shape {gt.shape}",
            path=name,
            hint="both must be (Y, X) or (Z, Y, X) label images of the same size",
        )


def _criterion_overlap(ov: Overlap, gt, pred, crit, width: float, overlapping: bool) -> Overlap:
    if not crit.boundary:
        return ov
    if overlapping:

        def bands_of(arr, other):
            if not is_stack(arr, other):
                return boundary_band(arr, width)
            return np.stack([boundary_band(p, width) for p in arr]) if len(arr) else arr

        bands = stack_overlap(bands_of(gt, pred), bands_of(pred, gt))
        # empty planes were skipped in both; every object keeps a non-empty band, so ids line up
        return Overlap(
            ov.gt_ids,
            ov.pred_ids,
            bands.gt_sizes,
            bands.pred_sizes,
            bands.rows,
            bands.cols,
            bands.inter,
            bands.fg_intersection,
            bands.fg_union,
        )
    return band_overlap(boundary_band(gt, width), boundary_band(pred, width), ov)
