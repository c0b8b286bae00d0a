"""``runner evaluate``: score predicted label images against ground truth (matching, AJI, COCO mAP, ...)."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli._app import command
from runner.parsing import parse_floats


def read_pair(gt_path: Path, pred_path: Path, *, overlapping: bool):
    """Read and check one ground-truth / prediction pair (label images or overlapping stacks)."""
    from runner.errors import UserError
    from runner.io import as_label_array, read_array, read_labels

    if overlapping:
        # stacks (N, (Z,) Y, X); a file with one dimension less than the other is a plain label image
        gt, _ = read_array(gt_path)
        pred, _ = read_array(pred_path)
        gt, pred = as_label_array(gt, where=gt_path), as_label_array(pred, where=pred_path)
        g = gt.shape[1:] if gt.ndim >= pred.ndim else gt.shape
        p = pred.shape[1:] if pred.ndim >= gt.ndim else pred.shape
        if g != p or len(g) not in (2, 3) or max(gt.ndim, pred.ndim) != len(g) + 1:
            raise UserError(
                f"prediction {pred.shape} does not match ground truth {gt.shape} ({gt_path.name}) as "
                "overlapping stacks",
                path=pred_path,
                hint="stacks are (N, (Z,) Y, X) with equal planes; one side may be a label image of a plane",
            )
        return gt, pred
    gt = read_labels(gt_path).data
    pred = read_labels(pred_path).data
    if gt.shape != pred.shape:
        raise UserError(
            f"prediction has shape {pred.shape} but its ground truth {gt_path.name} has shape {gt.shape}",
            path=pred_path,
            hint="predict on the same images the ground truth labels",
        )
    return gt, pred


@command("evaluate")
def evaluate_cmd(
    pred: Path = typer.Option(..., "--pred", "-p", help="Folder (or one file) of predicted label images."),
    gt: Path = typer.Option(
        ...,
        "--gt",
        "-g",
        help="Folder (or one file) of ground-truth label images, paired with "
        "the predictions by file name (_mask, _gt, _pred ... suffixes ignored).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (created; files of the same name replaced)."
    ),
    thresholds: str = typer.Option(
        None, "--thresholds", "-t", help="Matching thresholds, e.g. 0.5,0.75 (default 0.1,0.2,...,0.9)."
    ),
    criterion: str = typer.Option(
        "iou",
        "--criterion",
        help="Matching criterion: iou (mask IoU), ior (over the "
        "ground truth), iop (over the prediction), boundary_iou (Cheng et al. 2021).",
    ),
    overlapping: bool = typer.Option(
        False,
        "--overlapping",
        help="Files are overlapping-instance stacks (N,(Z,)Y,X), one object per plane.",
    ),
    boundary_width: float = typer.Option(
        2.0, "--boundary-width", min=1.0, help="Band width in pixels for boundary_iou."
    ),
    associations: bool = typer.Option(
        True,
        "--associations/--no-associations",
        help="Write per-image matched pairs (CSV) and colour images (TP green, FN red, FP blue).",
    ),
    association_thresholds: str = typer.Option(
        None,
        "--association-thresholds",
        help="Only these thresholds for the associations, e.g. 0.5 (default: all).",
    ),
    coco_max_dets: int = typer.Option(
        None,
        "--coco-max-dets",
        min=1,
        help="COCO's detection cap per image (pycocotools uses 100); default: no cap.",
    ),
) -> None:
    """Score predicted instance labels against ground truth.

    Per threshold: TP, FP, FN, precision, recall, accuracy = TP/(TP+FP+FN) (the DSB2018 "AP"), F1, panoptic
    quality, mean matched IoU - matched as StarDist does (identical numbers). Per image and pooled: avAP over
    IoU 0.5:0.1:0.9 and 0.5:0.05:0.95, AJI, AJI+, COCO mask mAP, foreground IoU, split/merge counts. COCO mAP
    has no 100-detection cap by default, because nuclei images hold hundreds of objects (--coco-max-dets 100
    gives COCO's own number). Writes metrics_per_image.csv, metrics_per_threshold.csv, summary.json,
    charts/accuracy_vs_iou.png and associations/.

    Example: runner evaluate --pred results/instances --gt data/dsb2018/test/y --out results/eval
    """
    from tqdm import tqdm

    from runner.errors import UserError
    from runner.io.dataset import label_files, pair_label_files
    from runner.metrics import DEFAULT_THRESHOLDS, get_criterion
    from runner.metrics.evaluate import check_thresholds
    from runner.metrics.report import write_evaluation

    thr = check_thresholds(parse_floats(thresholds, name="--thresholds") or DEFAULT_THRESHOLDS)
    assoc = parse_floats(association_thresholds, name="--association-thresholds")
    if assoc and {round(t, 9) for t in assoc} - {round(t, 9) for t in thr}:
        raise UserError(
            f"--association-thresholds {association_thresholds} are not all among the thresholds",
            hint=f"choose from {','.join(f'{t:g}' for t in thr)}",
        )
    get_criterion(criterion)
    pairs = pair_label_files(
        label_files(pred, "prediction"), label_files(gt, "ground-truth"), pred_dir=pred, gt_dir=gt
    )

    def items():
        for name, gt_path, pred_path in tqdm(pairs, desc="evaluate", unit="img"):
            g, p = read_pair(gt_path, pred_path, overlapping=overlapping)
            yield name, g, p

    result = write_evaluation(
        items(),
        out,
        thresholds=thr,
        associations=associations,
        association_thresholds=assoc,
        criterion=criterion,
        overlapping=overlapping,
        boundary_width=boundary_width,
        coco_max_dets=coco_max_dets,
    )
    pooled = result.summary["pooled"]
    rows = pooled["per_threshold"]
    best = next((r for r in rows if abs(r["iou"] - 0.5) < 1e-9), rows[0])
    typer.echo(
        f"evaluated {result.summary['n_images']} image(s) with {criterion}: accuracy@{best['iou']:g} "
        f"{best['accuracy']:.4f}, F1 {best['f1']:.4f}, avAP50-95 {pooled['av_ap_50_95_05']:.4f}, "
        f"AJI {pooled['aji']:.4f} (pooled); wrote {out}"
    )
