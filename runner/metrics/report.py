"""Write an evaluation to disk: what ``runner evaluate`` writes, reusable from ``runner predict --gt``.

Layout of the output folder::

    metrics_per_image.csv       one row per image: n_true, n_pred, avAP, AJI, AJI+, COCO mAP, foreground IoU,
                                splits, merges, then <metric>@<threshold> columns
    metrics_per_threshold.csv   one row per (image, threshold) with every per-threshold statistic
    summary.json                n_images, criterion, pooled and per_image_mean (see runner.metrics.summary)
    charts/accuracy_vs_iou.png  pooled accuracy, precision, recall, F1 and PQ against the threshold
    associations/<image>/<criterion>_<t>.csv
                                matched pairs (gt_id, pred_id, score, "tp") and unmatched ids ("fn" rows
                                with a gt_id, "fp" rows with a pred_id)
    associations/<image>/<criterion>_<t>.png  (.tif, an ImageJ RGB stack, for 3D)
                                the matching in colour: true positives green (predicted pixels), false
                                negatives red (ground-truth pixels), false positives blue (predicted pixels);
                                where they overlap the colours mix; object outlines are darker

Use :func:`write_evaluation` for a whole batch (all files appear at once, or none on error), or
:class:`EvaluationWriter` to evaluate images one by one into a folder you stage yourself::

    from runner.metrics.report import write_evaluation
    result = write_evaluation([(name, gt, pred), ...], out_dir, thresholds=(0.5, 0.75), associations=True)
    result.summary["pooled"]["per_threshold"][0]["accuracy"]

Items may be ``(name, gt, pred)`` (evaluated here, with the keyword options of
:func:`~runner.metrics.evaluate_image`), ``(name, ImageMetrics)`` (already evaluated; associations get CSVs
but no colour image) or ``(name, ImageMetrics, gt, pred)``. A generator of items keeps memory bounded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.errors import UserError
from runner.metrics.evaluate import (
    DEFAULT_THRESHOLDS,
    EvaluationOptions,
    ImageMetrics,
    evaluate_image,
    threshold_key,
)
from runner.metrics.names import THRESHOLD_FIELDS
from runner.metrics.summary import summarize


@dataclass
class Evaluation:
    """What :func:`write_evaluation` / :meth:`EvaluationWriter.finish` return."""

    summary: dict
    images: list[ImageMetrics] = field(repr=False)
    folder: Path


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    return keep.strip(".") or "image"


class EvaluationWriter:
    """Evaluate images one at a time and write the report files into ``folder`` (not staged: the caller
    stages).

    Parameters
    ----------
    folder : path
        Output folder (created).
    thresholds : sequence of float
        Matching thresholds reported everywhere.
    associations : bool
        Write the per-image association CSVs and colour images.
    association_thresholds : sequence of float, optional
        Thresholds for the associations (default: all of ``thresholds``).
    **options
        The other fields of :class:`~runner.metrics.evaluate.EvaluationOptions` (``criterion``,
        ``overlapping``, ``boundary_width``, ``coco_max_dets``, ...), validated.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        associations: bool = True,
        association_thresholds: Sequence[float] | None = None,
        **options,
    ):
        self.folder = Path(folder)
        self.settings = EvaluationOptions(thresholds=tuple(float(t) for t in thresholds), **options)
        self.thresholds = self.settings.thresholds
        self.associations = associations
        self.association_thresholds = tuple(association_thresholds or self.thresholds)
        self.images: list[ImageMetrics] = []
        self._names: set[str] = set()
        missing = {threshold_key(t) for t in self.association_thresholds} - {
            threshold_key(t) for t in self.thresholds
        }
        if associations and missing:
            raise UserError(f"association thresholds {sorted(missing)} are not among the thresholds")
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(
        self,
        name: str,
        gt: np.ndarray | None = None,
        pred: np.ndarray | None = None,
        *,
        metrics: ImageMetrics | None = None,
    ) -> ImageMetrics:
        """Evaluate ``pred`` against ``gt`` (or take ready ``metrics``) and write its associations."""
        name = str(name)
        if name in self._names:
            raise UserError(f"two images are named {name!r}", hint="image names must be unique")
        if metrics is None:
            if gt is None or pred is None:
                raise ValueError("give gt and pred, or metrics")
            metrics = evaluate_image(gt, pred, name=name, **self.settings.model_dump())
        elif metrics.name is None:
            metrics.name = name
        self._names.add(name)
        if self.associations:
            self._write_associations(name, metrics, gt, pred)
        self.images.append(metrics)
        return metrics

    def _write_associations(self, name: str, metrics: ImageMetrics, gt, pred) -> None:
        from runner.io import write_text_atomic

        folder = self.folder / "associations" / _safe_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        overlapping = self.settings.overlapping
        for t in self.association_thresholds:
            m = metrics.matches(t)
            stem = f"{metrics.criterion}_{t:g}"
            rows = [
                {"gt_id": int(g), "pred_id": int(p), metrics.criterion: float(s), "status": "tp"}
                for g, p, s in zip(m.gt_ids, m.pred_ids, m.scores, strict=True)
            ]
            rows += [
                {"gt_id": int(g), "pred_id": "", metrics.criterion: "", "status": "fn"}
                for g in m.unmatched_gt
            ]
            rows += [
                {"gt_id": "", "pred_id": int(p), metrics.criterion: "", "status": "fp"}
                for p in m.unmatched_pred
            ]
            header = {"gt_id": "", "pred_id": "", metrics.criterion: "", "status": ""}
            write_text_atomic(folder / f"{stem}.csv", _csv_text(rows) or ",".join(header) + "\n")
            if gt is not None and pred is not None:
                write_association_image(folder / stem, gt, pred, m, overlapping=overlapping)

    def finish(self) -> Evaluation:
        """Write ``metrics_per_image.csv``, ``metrics_per_threshold.csv``, ``summary.json`` and the chart."""
        from runner.io import write_text_atomic

        if not self.images:
            raise UserError("no images were evaluated")
        summary = summarize(self.images)
        write_text_atomic(self.folder / "metrics_per_image.csv", _csv_text([m.as_row() for m in self.images]))
        long_rows = [
            {"image": m.name, **{k: getattr(s, k) for k in THRESHOLD_FIELDS}}
            for m in self.images
            for s in m.per_threshold
        ]
        write_text_atomic(self.folder / "metrics_per_threshold.csv", _csv_text(long_rows))
        write_text_atomic(self.folder / "summary.json", json.dumps(summary, indent=2) + "\n")
        (self.folder / "charts").mkdir(exist_ok=True)
        plot_accuracy_vs_iou(self.folder / "charts" / "accuracy_vs_iou.png", summary, self.images)
        return Evaluation(summary=summary, images=self.images, folder=self.folder)


def write_evaluation(
    items: Iterable,
    out_dir: str | Path,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    associations: bool = True,
    association_thresholds: Sequence[float] | None = None,
    **options,
) -> Evaluation:
    """Evaluate a batch and write every report file into ``out_dir`` at once (nothing is written on error).

    ``items``: ``(name, gt, pred)``, ``(name, ImageMetrics)`` or ``(name, ImageMetrics, gt, pred)`` tuples
    (see the module docstring); ``options`` go to :func:`~runner.metrics.evaluate_image`.
    """
    from runner.io import staged_dir

    with staged_dir(out_dir) as stage:
        writer = EvaluationWriter(
            stage,
            thresholds=thresholds,
            associations=associations,
            association_thresholds=association_thresholds,
            **options,
        )
        for item in items:
            if len(item) == 2 and isinstance(item[1], ImageMetrics):
                writer.add(item[0], metrics=item[1])
            elif len(item) == 4 and isinstance(item[1], ImageMetrics):
                writer.add(item[0], item[2], item[3], metrics=item[1])
            elif len(item) == 3:
                writer.add(item[0], item[1], item[2])
            else:
                raise ValueError(
                    "items must be (name, gt, pred), (name, ImageMetrics) or (name, ImageMetrics, gt, pred)"
                )
        result = writer.finish()
    result.folder = Path(out_dir)
    return result


def association_rgb(gt: np.ndarray, pred: np.ndarray, matches, *, overlapping: bool = False) -> np.ndarray:
    """``(*spatial, 3)`` uint8: true positives green, false negatives red, false positives blue (see
    module)."""

    from runner.metrics.overlap import is_stack

    def mask(labels, other, ids):
        if overlapping and is_stack(labels, other):
            planes = np.asarray(ids, np.int64) - 1  # ids of stacks are plane numbers + 1
            return labels[planes].any(axis=0) if len(planes) else np.zeros(labels.shape[1:], bool)
        return np.isin(labels, np.asarray(ids, labels.dtype)) if len(ids) else np.zeros(labels.shape, bool)

    red = mask(gt, pred, matches.unmatched_gt)
    rgb = np.zeros((*red.shape, 3), np.uint8)
    rgb[..., 0] = 255 * red
    rgb[..., 1] = 255 * mask(pred, gt, matches.pred_ids)
    rgb[..., 2] = 255 * mask(pred, gt, matches.unmatched_pred)
    from skimage.segmentation import find_boundaries

    edges = np.zeros(red.shape, bool)  # darker outlines keep touching objects apart
    for labels, other in ((gt, pred), (pred, gt)):
        if not (overlapping and is_stack(labels, other)):
            edges |= find_boundaries(labels, mode="inner")
    rgb[edges] //= 2
    return rgb


def write_association_image(
    path_stem: Path, gt: np.ndarray, pred: np.ndarray, matches, *, overlapping: bool = False
) -> Path:
    """Write :func:`association_rgb` as ``<stem>.png`` (2D) or ``<stem>.tif`` (3D: an ImageJ RGB stack)."""
    from runner.io import atomic_path

    rgb = association_rgb(np.asarray(gt), np.asarray(pred), matches, overlapping=overlapping)
    if rgb.ndim == 3:
        from PIL import Image

        path = Path(f"{path_stem}.png")
        with atomic_path(path) as tmp:
            Image.fromarray(rgb, mode="RGB").save(tmp, format="PNG")
        return path
    import tifffile

    path = Path(f"{path_stem}.tif")
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp, rgb, imagej=True, photometric="rgb", metadata={"axes": "ZYXS"}, compression="zlib"
        )
    return path


def plot_accuracy_vs_iou(path: Path, summary: dict, images: list[ImageMetrics]) -> Path:
    """Pooled accuracy (bold), precision, recall, F1 and PQ against the threshold; thin lines per image."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from runner.io import atomic_path

    pooled = summary["pooled"]["per_threshold"]
    x = [row["iou"] for row in pooled]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if len(images) <= 200:
        for im in images:
            ax.plot(x, [s.accuracy for s in im.per_threshold], color="0.8", lw=0.7, zorder=1)
    styles = {
        "accuracy": ("k", 2.4),
        "precision": ("tab:blue", 1.2),
        "recall": ("tab:orange", 1.2),
        "f1": ("tab:green", 1.2),
        "panoptic_quality": ("tab:purple", 1.2),
    }
    for key, (color, lw) in styles.items():
        ax.plot(x, [row[key] for row in pooled], marker="o", ms=3, color=color, lw=lw, label=key, zorder=2)
    crit = summary.get("criterion", "iou")
    ax.set_xlabel(f"{crit} threshold")
    ax.set_ylabel("score (pooled over images)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    p = summary["pooled"]
    ax.set_title(
        f"{summary['n_images']} image(s): avAP50-95 {p['av_ap_50_95_05']:.3f}, AJI {p['aji']:.3f}, "
        f"COCO mAP {p['coco_map']:.3f}",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
