"""runner.metrics: hand-computed cases, and StarDist / pycocotools / dense references on random images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from runner.errors import UserError
from runner.metrics import DEFAULT_THRESHOLDS, evaluate_image, summarize

SHARED = ("tp", "fp", "fn", "precision", "recall", "accuracy", "f1", "panoptic_quality", "mean_true_score")


def perturb(gt: np.ndarray, seed: int) -> np.ndarray:
    """A plausible prediction: shifted, dilated, eroded, split, missing and spurious objects."""
    rng = np.random.default_rng(seed)
    pred = gt.copy()
    ids = np.unique(gt)[1:]
    for i in rng.choice(ids, max(1, len(ids) // 3), replace=False):
        m = gt == i
        kind = rng.integers(5)
        pred[m] = 0
        if kind == 0:
            pred[ndi.binary_dilation(m, iterations=2) & (pred == 0)] = i
        elif kind == 1:
            pred[ndi.binary_erosion(m, iterations=2)] = i
        elif kind == 2:
            pred[np.roll(m, int(rng.integers(-4, 5)), axis=int(rng.integers(m.ndim)))] = i
        elif kind == 3:  # split along the first axis
            coords = np.nonzero(m)[0]
            half = m & (np.arange(m.shape[0]) >= np.median(coords)).reshape((-1,) + (1,) * (m.ndim - 1))
            pred[m] = i
            pred[half] = pred.max() + 1
        # kind 4: missing
    spot = tuple(int(rng.integers(3, s - 3)) for s in gt.shape)
    pred[tuple(slice(c - 2, c + 2) for c in spot)] = pred.max() + 7  # spurious
    return pred


def _square(shape, top_left, size, value, out=None):
    out = np.zeros(shape, np.uint32) if out is None else out
    out[tuple(slice(t, t + s) for t, s in zip(top_left, size, strict=True))] = value
    return out


# --------------------------------------------------------------------------------------------- hand-computed


def test_empty_prediction():
    gt = _square((30, 30), (2, 2), (5, 5), 1)
    _square((30, 30), (10, 10), (4, 6), 7, gt)
    m = evaluate_image(gt, np.zeros_like(gt))
    assert (m.n_true, m.n_pred) == (2, 0)
    for s in m.per_threshold:
        assert (s.tp, s.fp, s.fn) == (0, 0, 2)
        assert s.precision == s.recall == s.accuracy == s.f1 == s.panoptic_quality == 0
    assert m.aji == m.aji_plus == m.coco_map == m.foreground_iou == m.av_ap_50_95_05 == 0
    assert list(m.matches(0.5).unmatched_gt) == [1, 7]


def test_empty_ground_truth_and_both_empty():
    pred = _square((20, 20), (3, 3), (4, 4), 5)
    m = evaluate_image(np.zeros_like(pred), pred)
    assert (m.at(0.5).tp, m.at(0.5).fp, m.at(0.5).fn) == (0, 1, 0)
    assert m.coco_map == 0 and m.aji == 0
    assert list(m.matches(0.5).unmatched_pred) == [5]
    empty = evaluate_image(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    assert empty.n_true == empty.n_pred == 0 and empty.at(0.1).accuracy == 0


def test_one_gt_split_in_two_halves():
    gt = _square((20, 20), (5, 5), (10, 10), 3)
    pred = _square((20, 20), (5, 5), (10, 5), 1)
    _square((20, 20), (5, 10), (10, 5), 2, pred)
    m = evaluate_image(gt, pred, thresholds=(0.5, 0.6))
    s = m.at(0.5)
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)
    assert s.mean_matched_iou == pytest.approx(0.5)
    assert s.panoptic_quality == pytest.approx(0.5 / 1.5)
    assert m.at(0.6).tp == 0
    assert (m.n_splits, m.n_merges) == (1, 0)
    # AJI: the gt pairs with pred 1 (tie -> lowest id); pred 2 is unused: 50 / (100 + 50)
    assert m.aji == pytest.approx(50 / 150)
    assert m.aji_plus == pytest.approx(50 / 150)
    assert m.foreground_iou == 1.0


def test_one_prediction_merging_two_gt():
    gt = _square((20, 20), (5, 5), (10, 5), 1)
    _square((20, 20), (5, 10), (10, 5), 2, gt)
    pred = _square((20, 20), (5, 5), (10, 10), 9)
    m = evaluate_image(gt, pred)
    assert (m.at(0.5).tp, m.at(0.5).fn, m.at(0.5).fp) == (1, 1, 0)
    assert (m.n_splits, m.n_merges) == (0, 1)
    # AJI lets the merged prediction serve both objects: (50 + 50) / (100 + 100); AJI+ pairs it once
    assert m.aji == pytest.approx(0.5)
    assert m.aji_plus == pytest.approx(50 / 150)


def test_accuracy_and_avap_by_hand():
    gt = np.zeros((40, 40), np.uint32)
    pred = np.zeros((40, 40), np.uint32)
    _square(gt.shape, (0, 0), (10, 10), 1, gt)
    _square(pred.shape, (0, 0), (10, 8), 1, pred)  # IoU 0.8
    _square(gt.shape, (20, 20), (10, 10), 2, gt)
    _square(pred.shape, (20, 20), (10, 6), 2, pred)  # IoU 0.6
    _square(pred.shape, (32, 0), (3, 3), 3, pred)  # false positive
    m = evaluate_image(gt, pred)
    assert [m.at(t).tp for t in (0.5, 0.6, 0.7, 0.8, 0.9)] == [2, 2, 1, 1, 0]
    acc = {0.5: 2 / 3, 0.6: 2 / 3, 0.7: 1 / 4, 0.8: 1 / 4, 0.9: 0.0}
    assert m.av_ap_50_95_10 == pytest.approx(np.mean(list(acc.values())))
    acc05 = [2 / 3, 2 / 3, 2 / 3, 1 / 4, 1 / 4, 1 / 4, 1 / 4, 0, 0, 0]  # 0.5, 0.55, ..., 0.95
    assert m.av_ap_50_95_05 == pytest.approx(np.mean(acc05))
    assert m.at(0.6).mean_true_score == pytest.approx((0.8 + 0.6) / 2, rel=1e-6)
    pairs = m.matches(0.7)
    assert list(pairs.gt_ids) == [1] and list(pairs.pred_ids) == [1]
    assert pairs.scores[0] == pytest.approx(0.8)
    assert list(pairs.unmatched_gt) == [2] and list(pairs.unmatched_pred) == [2, 3]


def test_boundary_iou_by_hand():
    gt = _square((30, 30), (10, 10), (10, 10), 1)
    pred = _square((30, 30), (11, 11), (8, 8), 1)  # one pixel thinner all round: mask IoU 0.64
    assert evaluate_image(gt, pred).matches(0.5).scores[0] == pytest.approx(0.64)
    # width 1: gt's outer ring and pred's outer ring are disjoint
    assert evaluate_image(gt, pred, criterion="boundary_iou", boundary_width=1).at(0.1).tp == 0
    # width 2: gt rings 1-2 (64 px), pred rings = gt rings 2-3 (48 px), shared ring 2 (28 px) -> 28 / 84
    m = evaluate_image(gt, pred, criterion="boundary_iou", boundary_width=2, thresholds=(0.3,))
    assert m.matches(0.3).scores[0] == pytest.approx(28 / 84)
    assert evaluate_image(gt, gt, criterion="boundary_iou").at(0.9).tp == 1


def test_ior_and_iop():
    gt = _square((20, 20), (2, 2), (10, 10), 1)
    pred = _square((20, 20), (2, 2), (10, 5), 4)
    assert evaluate_image(gt, pred, criterion="ior").matches(0.5).scores[0] == pytest.approx(0.5)
    assert evaluate_image(gt, pred, criterion="iop", thresholds=(0.99,)).at(0.99).tp == 1
    assert evaluate_image(gt, pred, criterion="iot").criterion == "ior"  # StarDist's name
    with pytest.raises(UserError, match="criterion"):
        evaluate_image(gt, pred, criterion="dice")


def test_overlapping_stacks():
    yy, xx = np.mgrid[:40, :40]
    disk = lambda cy, cx, r: ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint32)  # noqa: E731
    gt = np.stack([disk(20, 15, 8), disk(20, 25, 8), np.zeros((40, 40), np.uint32)])  # two overlapping disks
    pred = np.stack([disk(20, 25, 8) * 5, disk(20, 16, 8) * 2])  # swapped order, one shifted by 1 px
    m = evaluate_image(gt, pred, overlapping=True)
    assert (m.n_true, m.n_pred) == (2, 2)  # the empty plane is not an object
    assert m.at(0.7).tp == 2
    pairs = m.matches(0.7)
    assert dict(zip(pairs.gt_ids.tolist(), pairs.pred_ids.tolist(), strict=True)) == {1: 2, 2: 1}
    assert m.foreground_iou > 0.9
    perfect = evaluate_image(gt, gt, overlapping=True)
    assert perfect.aji == perfect.aji_plus == perfect.coco_map == 1.0


def test_stack_equals_label_image_when_objects_do_not_overlap(blobs2d):
    from skimage.segmentation import relabel_sequential

    pred, _, _ = relabel_sequential(perturb(blobs2d, 3))
    stack = lambda lab: np.stack([(lab == i).astype(np.uint32) for i in range(1, lab.max() + 1)])  # noqa: E731
    a = evaluate_image(blobs2d, pred)
    b = evaluate_image(stack(blobs2d), stack(pred), overlapping=True)
    for sa, sb in zip(a.per_threshold, b.per_threshold, strict=True):
        assert sa == sb
    assert (a.aji, a.aji_plus, a.coco_map, a.n_splits) == pytest.approx(
        (b.aji, b.aji_plus, b.coco_map, b.n_splits)
    )


def test_overlapping_prediction_against_label_image_ground_truth(blobs2d):
    ids = np.unique(blobs2d)[1:]
    stack = np.stack([(blobs2d == i).astype(np.uint32) for i in ids[::-1]])  # planes in reverse id order
    m = evaluate_image(blobs2d, stack, overlapping=True)
    assert m.at(0.9).tp == len(ids) and m.aji == 1.0
    pairs = m.matches(0.9)
    assert list(pairs.gt_ids) == list(ids)  # the label image keeps its ids
    assert list(pairs.pred_ids) == list(len(ids) - np.arange(len(ids)))  # stack objects are plane + 1
    reverse = evaluate_image(stack, blobs2d, overlapping=True, criterion="boundary_iou")
    assert reverse.at(0.9).tp == len(ids)
    with pytest.raises(UserError, match="overlapping"):
        evaluate_image(blobs2d, stack[:, :10], overlapping=True)


def test_bad_input():
    a = np.zeros((10, 10), np.uint16)
    with pytest.raises(UserError, match="shape"):
        evaluate_image(a, np.zeros((10, 11), np.uint16))
    with pytest.raises(UserError, match="negative"):
        evaluate_image(a, np.full((10, 10), -1, np.int32))
    with pytest.raises(UserError, match="non-integer"):
        evaluate_image(a, np.full((10, 10), 0.5))
    with pytest.raises(UserError, match="thresholds"):
        evaluate_image(a, a, thresholds=(0.0, 0.5))
    two_ids = np.ones((10, 10), np.uint16)
    two_ids[5:] = 2
    with pytest.raises(UserError, match="several ids"):
        evaluate_image(np.stack([a, two_ids]), np.stack([a]), overlapping=True)


def test_huge_ids_are_renumbered_in_order(blobs2d):
    pred = perturb(blobs2d, 1)
    lut = (
        np.random.default_rng(0).permutation(np.arange(1, 5000))[: pred.max() + 1].astype(np.uint64) * 800_000
    )
    lut[0] = 0
    big = lut[pred].astype(np.uint32)  # ids up to ~4e9, not monotone in the original ids
    a, b = evaluate_image(blobs2d, pred), evaluate_image(blobs2d, big)
    assert [s.tp for s in a.per_threshold] == [s.tp for s in b.per_threshold]
    assert a.at(0.5).mean_matched_iou == b.at(0.5).mean_matched_iou
    assert set(b.matches(0.5).pred_ids.tolist()) == {int(lut[i]) for i in a.matches(0.5).pred_ids}


# --------------------------------------------------------------------------------------------- StarDist


@pytest.mark.parametrize("criterion", ["iou", "ior", "iop"])
def test_matches_stardist_exactly_2d(criterion):
    from stardist.matching import matching

    from runner.synthetic import random_blobs

    sd_name = {"ior": "iot"}.get(criterion, criterion)
    for seed in range(8):
        gt = random_blobs((96, 96), 18, radius=(4.0, 9.0), seed=seed)
        pred = perturb(gt, seed)
        ours = evaluate_image(gt, pred, criterion=criterion)
        ref = matching(gt, pred, thresh=DEFAULT_THRESHOLDS, criterion=sd_name)
        _assert_same(ours, ref)


def test_matches_stardist_exactly_3d_and_noise():
    from stardist.matching import matching

    from runner.synthetic import random_blobs

    for seed in range(3):
        gt = random_blobs((24, 40, 40), 10, radius=(4.0, 7.0), seed=seed)
        pred = perturb(gt, seed)
        _assert_same(evaluate_image(gt, pred), matching(gt, pred, thresh=DEFAULT_THRESHOLDS))
    rng = np.random.default_rng(0)
    for _ in range(30):  # blocky random labels: many partial overlaps, conflicts and exact ties
        gt = np.kron(rng.integers(0, 6, (6, 6)), np.ones((4, 4), int)).astype(np.uint16)
        pred = np.roll(np.kron(rng.integers(0, 6, (6, 6)), np.ones((4, 4), int)), int(rng.integers(-2, 3)), 1)
        _assert_same(
            evaluate_image(gt, pred.astype(np.uint16)), matching(gt, pred, thresh=DEFAULT_THRESHOLDS)
        )


def _assert_same(ours, ref):
    for t, r in zip(DEFAULT_THRESHOLDS, ref, strict=True):
        s = ours.at(t)
        for field in SHARED:
            assert abs(getattr(s, field) - getattr(r, field)) <= 1e-9, (t, field)
        assert abs(s.mean_matched_iou - r.mean_matched_score) <= 1e-9
        assert (s.n_true, s.n_pred) == (r.n_true, r.n_pred)


def test_float64_scores_stay_within_float32_rounding(blobs2d):
    pred = perturb(blobs2d, 5)
    a = evaluate_image(blobs2d, pred)
    b = evaluate_image(blobs2d, pred, score_dtype="float64")
    for sa, sb in zip(a.per_threshold, b.per_threshold, strict=True):
        assert sa.tp == sb.tp
        assert sa.mean_matched_iou == pytest.approx(sb.mean_matched_iou, abs=1e-6)


def test_summary_pools_like_stardist_matching_dataset():
    from stardist.matching import matching_dataset

    from runner.synthetic import random_blobs

    gts = [random_blobs((80, 80), 12, radius=(4.0, 8.0), seed=s) for s in range(4)]
    preds = [perturb(g, s) for s, g in enumerate(gts)]
    preds[2] = np.zeros_like(preds[2])  # an image with no prediction
    images = [evaluate_image(g, p, name=str(i)) for i, (g, p) in enumerate(zip(gts, preds, strict=True))]
    summary = summarize(images)
    assert set(summary) == {"n_images", "criterion", "pooled", "per_image_mean"}
    keys = {
        "av_ap_50_95_10",
        "av_ap_50_95_05",
        "aji",
        "aji_plus",
        "coco_map",
        "foreground_iou",
        "n_splits",
        "n_merges",
        "per_threshold",
    }
    assert set(summary["pooled"]) == keys and set(summary["per_image_mean"]) == keys
    row_keys = [
        "iou",
        "tp",
        "fp",
        "fn",
        "precision",
        "recall",
        "accuracy",
        "f1",
        "panoptic_quality",
        "mean_matched_iou",
    ]
    pooled_ref = matching_dataset(gts, preds, thresh=DEFAULT_THRESHOLDS, show_progress=False)
    mean_ref = matching_dataset(gts, preds, thresh=DEFAULT_THRESHOLDS, by_image=True, show_progress=False)
    for row, p_ref, m_ref, mean_row in zip(
        summary["pooled"]["per_threshold"],
        pooled_ref,
        mean_ref,
        summary["per_image_mean"]["per_threshold"],
        strict=True,
    ):
        assert list(row) == row_keys
        assert (row["tp"], row["fp"], row["fn"]) == (p_ref.tp, p_ref.fp, p_ref.fn)
        assert (mean_row["tp"], mean_row["fp"], mean_row["fn"]) == (p_ref.tp, p_ref.fp, p_ref.fn)
        for k in ("precision", "recall", "accuracy", "f1"):
            assert row[k] == pytest.approx(getattr(p_ref, k), abs=1e-12)
            assert mean_row[k] == pytest.approx(getattr(m_ref, k), abs=1e-12)
        assert row["panoptic_quality"] == pytest.approx(p_ref.panoptic_quality, abs=1e-6)
        assert row["mean_matched_iou"] == pytest.approx(p_ref.mean_matched_score, abs=1e-6)
        assert mean_row["panoptic_quality"] == pytest.approx(m_ref.panoptic_quality, abs=1e-6)
    aji = [im.aji_counts for im in images]
    assert summary["pooled"]["aji"] == pytest.approx(
        sum(c.intersection for c in aji) / sum(c.union for c in aji)
    )
    assert summary["per_image_mean"]["aji"] == pytest.approx(np.mean([im.aji for im in images]))


# --------------------------------------------------------------------------------------------- AJI references


def _dense_reference(gt, pred):
    """Straightforward AJI / AJI+ on dense masks (HoVer-Net's get_fast_aji / get_fast_aji_plus logic)."""
    from scipy.optimize import linear_sum_assignment

    g_ids, p_ids = np.unique(gt)[1:], np.unique(pred)[1:]
    inter = np.array([[np.sum((gt == g) & (pred == p)) for p in p_ids] for g in g_ids], float).reshape(
        len(g_ids), len(p_ids)
    )
    g_area = np.array([np.sum(gt == g) for g in g_ids])
    p_area = np.array([np.sum(pred == p) for p in p_ids])
    union = g_area[:, None] + p_area[None, :] - inter
    iou = inter / union
    best = iou.argmax(1)
    has = iou.max(1) > 0
    c = inter[has, best[has]].sum()
    u = union[has, best[has]].sum() + g_area[~has].sum() + np.delete(p_area, np.unique(best[has])).sum()
    r, k = linear_sum_assignment(-iou)
    ok = iou[r, k] > 0
    r, k = r[ok], k[ok]
    c2 = inter[r, k].sum()
    u2 = union[r, k].sum() + np.delete(g_area, r).sum() + np.delete(p_area, k).sum()
    return c / u, c2 / u2


def test_aji_and_aji_plus_match_a_dense_reference():
    from runner.synthetic import random_blobs

    for seed in range(5):
        gt = random_blobs((64, 64), 10, radius=(4.0, 8.0), seed=seed)
        pred = perturb(gt, seed + 10)
        m = evaluate_image(gt, pred)
        aji_ref, aji_plus_ref = _dense_reference(gt, pred)
        assert m.aji == pytest.approx(aji_ref, abs=1e-12)
        assert m.aji_plus == pytest.approx(aji_plus_ref, abs=1e-12)


# --------------------------------------------------------------------------------------------- pycocotools


def _pycocotools_map(gts, preds, scores, max_dets):
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for img_id, (gt, pred, sc) in enumerate(zip(gts, preds, scores, strict=True), start=1):
        images.append({"id": img_id, "height": gt.shape[0], "width": gt.shape[1]})
        for g in np.unique(gt)[1:]:
            rle = mask_utils.encode(np.asfortranarray((gt == g).astype(np.uint8)))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": list(mask_utils.toBbox(rle)),
                    "iscrowd": 0,
                }
            )
        for p, s in zip(np.unique(pred)[1:], sc, strict=True):
            rle = mask_utils.encode(np.asfortranarray((pred == p).astype(np.uint8)))
            dets.append({"image_id": img_id, "category_id": 1, "segmentation": rle, "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cell"}]}
        coco.createIndex()
        coco_dt = coco.loadRes(dets)
        ev = COCOeval(coco, coco_dt, "segm")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    # COCO's summary line AP@[.5:.95] with area "all" and the last maxDets (stats[0] hard-codes 100)
    precision = ev.eval["precision"][:, :, :, 0, -1]
    return float(np.mean(precision[precision > -1]))


def test_coco_map_matches_pycocotools():
    from runner.synthetic import random_blobs

    rng = np.random.default_rng(0)
    gts = [random_blobs((96, 96), 16, radius=(4.0, 8.0), seed=s) for s in range(3)]
    preds = [perturb(g, s + 20) for s, g in enumerate(gts)]
    scores = [rng.permutation(len(np.unique(p)) - 1) / 100 + 0.01 + i / 1000 for i, p in enumerate(preds)]
    images = [evaluate_image(g, p, confidence=s) for g, p, s in zip(gts, preds, scores, strict=True)]
    for i in range(3):
        assert images[i].coco_map == pytest.approx(
            _pycocotools_map([gts[i]], [preds[i]], [scores[i]], 10_000), abs=1e-12
        )
    pooled = summarize(images)["pooled"]["coco_map"]
    assert pooled == pytest.approx(_pycocotools_map(gts, preds, scores, 10_000), abs=1e-12)


def test_coco_detection_cap():
    """With > 100 objects COCO's cap of 100 detections changes the number; ours has none by default."""
    from runner.synthetic import random_blobs

    gt = random_blobs((200, 200), 140, radius=(4.0, 6.0), seed=3)
    pred = perturb(gt, 4)
    scores = np.random.default_rng(1).permutation(len(np.unique(pred)) - 1) + 1.0
    capped = evaluate_image(gt, pred, confidence=scores, coco_max_dets=100).coco_map
    free = evaluate_image(gt, pred, confidence=scores).coco_map
    assert capped == pytest.approx(_pycocotools_map([gt], [pred], [scores], 100), abs=1e-12)
    assert free == pytest.approx(_pycocotools_map([gt], [pred], [scores], 100_000), abs=1e-12)
    assert free > capped


def test_tied_detections_do_not_depend_on_id_order(blobs2d):
    pred = perturb(blobs2d, 2)
    ids = np.unique(pred)[1:]
    lut = np.zeros(pred.max() + 1, np.uint32)
    lut[ids] = np.random.default_rng(0).permutation(len(ids)) + 1
    assert evaluate_image(blobs2d, pred).coco_map == pytest.approx(
        evaluate_image(blobs2d, lut[pred]).coco_map
    )
