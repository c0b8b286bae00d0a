"""runner.metrics.report.write_evaluation and the `runner evaluate` command, including bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import UserError
from runner.io import write_labels, write_tiff
from runner.metrics import evaluate_image, summarize
from runner.metrics.report import write_evaluation
from runner.synthetic import random_blobs

cli = CliRunner()


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


def _assert_user_error(res, *needles):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    line = res.output.strip().splitlines()[-1].split("\r")[-1]
    assert line.startswith("error:")
    for needle in needles:
        assert needle in line


def _pair(seed: int, shape=(64, 64), n=10):
    gt = random_blobs(shape, n, radius=(4.0, 8.0), seed=seed)
    pred = np.roll(gt, 1, axis=-1)
    pred[pred == 2] = 0  # a false negative
    pred[2:6, 2:6] = 99 if len(shape) == 2 else 0  # a false positive in 2D
    return gt, pred


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_write_evaluation_files_and_associations(tmp_path):
    pairs = [(f"im{i}", *_pair(i)) for i in range(3)]
    out = tmp_path / "eval"
    result = write_evaluation(iter(pairs), out, thresholds=(0.5, 0.75))
    expected = summarize([evaluate_image(g, p, thresholds=(0.5, 0.75), name=n) for n, g, p in pairs])
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(expected))
    assert result.summary["n_images"] == 3
    per_image = _rows(out / "metrics_per_image.csv")
    assert [r["image"] for r in per_image] == ["im0", "im1", "im2"]
    assert {"accuracy@0.5", "tp@0.75", "aji", "coco_map"} <= set(per_image[0])
    assert len(_rows(out / "metrics_per_threshold.csv")) == 6
    assert (out / "charts" / "accuracy_vs_iou.png").stat().st_size > 1000

    name, gt, pred = pairs[0]
    m = result.images[0]
    rows = _rows(out / "associations" / "im0" / "iou_0.5.csv")
    s = m.at(0.5)
    assert [r["status"] for r in rows].count("tp") == s.tp
    assert [r["status"] for r in rows].count("fn") == s.fn
    assert [r["status"] for r in rows].count("fp") == s.fp
    assert {"gt_id": "2", "pred_id": "", "iou": "", "status": "fn"} in rows
    rgb = np.asarray(Image.open(out / "associations" / "im0" / "iou_0.5.png"))
    assert rgb.shape == (*gt.shape, 3)
    assert rgb.max() == 255 and set(np.unique(rgb)) <= {0, 127, 255}  # outlines at half intensity
    rgb = rgb > 0
    only_fn = (gt == 2) & (pred == 0)
    assert (rgb[only_fn] == [True, False, False]).all()
    assert (rgb[(pred == 99) & (gt == 0)] == [False, False, True]).all()
    tp_pred = np.isin(pred, m.matches(0.5).pred_ids)
    assert rgb[tp_pred][:, 1].all()
    assert not rgb[(gt == 0) & (pred == 0)].any()


def test_write_evaluation_accepts_ready_metrics_and_3d(tmp_path):
    gt, pred = _pair(5, shape=(16, 40, 40), n=6)
    m = evaluate_image(gt, pred, thresholds=(0.5,), name="vol")
    write_evaluation([("vol", m)], tmp_path / "a", thresholds=(0.5,))
    assert (tmp_path / "a" / "associations" / "vol" / "iou_0.5.csv").exists()
    assert not list((tmp_path / "a" / "associations" / "vol").glob("*.tif"))  # no arrays, no colour image
    write_evaluation([("vol", gt, pred)], tmp_path / "b", thresholds=(0.5,))
    rgb = tifffile.imread(tmp_path / "b" / "associations" / "vol" / "iou_0.5.tif")
    assert rgb.shape == (16, 40, 40, 3)


def test_write_evaluation_rejects_unknown_options(tmp_path):
    from pydantic import ValidationError

    gt, pred = _pair(1)
    with pytest.raises(ValidationError, match="criterio"):
        write_evaluation([("a", gt, pred)], tmp_path / "eval", criterio="iou")
    assert not (tmp_path / "eval").exists()


def test_write_evaluation_writes_nothing_on_error(tmp_path):
    gt, pred = _pair(1)
    items = [("ok", gt, pred), ("bad", gt, pred[:, :50])]
    with pytest.raises(UserError, match="bad"):
        write_evaluation(items, tmp_path / "eval")
    assert not (tmp_path / "eval").exists()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for i in range(3):
        gt, pred = _pair(i)
        write_labels(tmp_path / "gt" / f"img{i}_mask.tif", gt)
        write_labels(tmp_path / "pred" / f"img{i}.tif", pred)
    return tmp_path


def test_cli_evaluate(folders):
    out = folders / "eval"
    res = run(
        "evaluate",
        "--pred",
        folders / "pred",
        "--gt",
        folders / "gt",
        "--out",
        out,
        "--thresholds",
        "0.5,0.75",
        "--association-thresholds",
        "0.5",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 3
    assert [r["iou"] for r in summary["pooled"]["per_threshold"]] == [0.5, 0.75]
    assert len(_rows(out / "metrics_per_image.csv")) == 3
    assert (out / "charts" / "accuracy_vs_iou.png").exists()
    assert sorted(p.name for p in (out / "associations" / "img1").iterdir()) == ["iou_0.5.csv", "iou_0.5.png"]
    assert "accuracy@0.5" in res.output


def test_cli_evaluate_overlapping_and_no_associations(tmp_path):
    from runner.synthetic import random_worms

    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    worms = random_worms((64, 64), 5, seed=1)
    write_tiff(tmp_path / "gt" / "w.tif", worms.astype(np.uint16), axes="zyx")
    write_tiff(tmp_path / "pred" / "w.tif", worms[::-1].astype(np.uint16), axes="zyx")
    res = run(
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--gt",
        tmp_path / "gt",
        "--out",
        tmp_path / "e",
        "--overlapping",
        "--no-associations",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["pooled"]["per_threshold"][-1]["accuracy"] == 1.0
    assert not (tmp_path / "e" / "associations").exists()
    # a label-image ground truth against an overlapping prediction
    blobs = random_blobs((64, 64), 6, radius=(4.0, 8.0), seed=2)
    write_labels(tmp_path / "gt" / "w.tif", blobs)
    planes = np.stack([(blobs == i) * 3 for i in range(1, blobs.max() + 1)]).astype(np.uint16)
    write_tiff(tmp_path / "pred" / "w.tif", planes, axes="zyx")
    res = run(
        "evaluate",
        "--pred",
        tmp_path / "pred",
        "--gt",
        tmp_path / "gt",
        "--out",
        tmp_path / "f",
        "--overlapping",
        "--thresholds",
        "0.9",
    )
    assert res.exit_code == 0, res.output
    rgb = np.asarray(Image.open(tmp_path / "f" / "associations" / "w" / "iou_0.9.png"))
    assert (rgb[blobs > 0] > 0).tolist() == [[False, True, False]] * int((blobs > 0).sum())


def test_cli_evaluate_shape_mismatch(folders):
    write_labels(folders / "pred" / "img1.tif", np.ones((32, 32), np.uint16))
    res = run("evaluate", "--pred", folders / "pred", "--gt", folders / "gt", "--out", folders / "eval")
    _assert_user_error(res, "img1.tif", "shape")
    assert not (folders / "eval").exists()


def test_cli_evaluate_missing_pair(folders):
    (folders / "gt" / "img2_mask.tif").unlink()
    res = run("evaluate", "--pred", folders / "pred", "--gt", folders / "gt", "--out", folders / "eval")
    _assert_user_error(res, "img2.tif", "without ground truth")
    assert not (folders / "eval").exists()


@pytest.mark.parametrize(
    "bad, needle",
    [(np.full((64, 64), 0.5, np.float32), "non-integer"), (np.full((64, 64), -1, np.int16), "negative")],
)
def test_cli_evaluate_bad_labels(folders, bad, needle):
    tifffile.imwrite(folders / "pred" / "img0.tif", bad)
    res = run("evaluate", "--pred", folders / "pred", "--gt", folders / "gt", "--out", folders / "eval")
    _assert_user_error(res, "img0.tif", needle)
    assert not (folders / "eval").exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--criterion", "dice"], "criterion"),
        (["--thresholds", "0.5,x"], "--thresholds"),
        (["--thresholds", "0,0.5"], "(0, 1]"),
        (["--association-thresholds", "0.35"], "association"),
    ],
)
def test_cli_evaluate_bad_options(folders, extra, needle):
    res = run(
        "evaluate", "--pred", folders / "pred", "--gt", folders / "gt", "--out", folders / "eval", *extra
    )
    _assert_user_error(res, needle)
    assert not (folders / "eval").exists()
