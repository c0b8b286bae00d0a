"""`runner postprocess`: label TIFFs from prediction folders, --list, debug maps, raw images, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from stardist.matching import matching
from typer.testing import CliRunner

from runner.cli import app
from runner.io import write_tiff
from runner.synthetic import random_blobs, render
from runner.targets import TargetOptions, make_targets

cli = CliRunner()


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


@pytest.fixture
def preds2d(tmp_path):
    """Two BCD predictions (cyx) and their ground truth."""
    folder = tmp_path / "preds"
    folder.mkdir()
    truth = {}
    for i in range(2):
        gt = random_blobs((96, 96), 10, radius=(6.0, 10.0), seed=10 + i)
        write_tiff(folder / f"img{i}.tif", make_targets(gt, "BCD"), axes="cyx")
        truth[f"img{i}"] = gt
    return folder, truth


def test_postprocess_writes_labels_and_config(preds2d, tmp_path):
    folder, truth = preds2d
    out = tmp_path / "out"
    res = run(
        "postprocess",
        folder,
        "--method",
        "watershed_bcd",
        "--param",
        "th_distance=auto",
        "--filter",
        "remove_small:min_size=20",
        "--filter",
        "fill_holes",
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    for name, gt in truth.items():
        labels = tifffile.imread(out / f"{name}.tif")
        assert labels.shape == gt.shape
        assert matching(gt, labels, thresh=0.5).accuracy == 1.0
    config = json.loads((out / "postprocess.json").read_text())
    assert config["method"] == "watershed_bcd" and config["params"]["th_distance"] == "auto"
    assert [f["name"] for f in config["filters"]] == ["remove_small", "fill_holes"]


def test_postprocess_debug_maps(preds2d, tmp_path):
    folder, truth = preds2d
    res = run(
        "postprocess", folder, "-m", "watershed_bcd", "--debug-dir", tmp_path / "dbg", "-o", tmp_path / "o"
    )
    assert res.exit_code == 0, res.output
    for key in ("seeds", "foreground", "surface"):
        arr = tifffile.imread(tmp_path / "dbg" / key / "img0.tif")
        assert arr.shape == truth["img0"].shape
    fg = tifffile.imread(tmp_path / "dbg" / "foreground" / "img0.tif")
    assert np.array_equal(fg > 0, truth["img0"] > 0)


def test_postprocess_3d_resolution_from_flag(tmp_path):
    gt = random_blobs((20, 48, 48), 6, radius=(6.0, 8.0), seed=3)
    res_zyx = (2.0, 1.0, 1.0)
    (tmp_path / "p").mkdir()
    write_tiff(
        tmp_path / "p" / "vol.tif", make_targets(gt, "BC", TargetOptions(resolution=res_zyx)), axes="czyx"
    )
    res = run(
        "postprocess",
        tmp_path / "p",
        "-m",
        "watershed_bc",
        "--resolution",
        "2,1,1",
        "-f",
        "z_median:size=3",
        "-o",
        tmp_path / "o",
    )
    assert res.exit_code == 0, res.output
    with tifffile.TiffFile(tmp_path / "o" / "vol.tif") as tif:
        labels = tif.asarray()
        assert 'PhysicalSizeZ="2.0"' in tif.ome_metadata
    assert matching(gt, labels, thresh=0.5).accuracy == 1.0


def test_postprocess_classical_on_raw_images(tmp_path):
    gt = random_blobs((128, 128), 12, radius=(6.0, 10.0), touching=False, seed=2)
    (tmp_path / "raw").mkdir()
    write_tiff(tmp_path / "raw" / "a.tif", render(gt, seed=2), axes="yx")
    res = run(
        "postprocess", tmp_path / "raw", "--method", "classical", "-p", "split=none", "-o", tmp_path / "o"
    )
    assert res.exit_code == 0, res.output
    assert matching(gt, tifffile.imread(tmp_path / "o" / "a.tif"), thresh=0.5).accuracy >= 0.9


def test_postprocess_list():
    res = run("postprocess", "--list")
    assert res.exit_code == 0
    for name in (
        "watershed_bcd",
        "watershed_dv2",
        "fg_watershed",
        "threshold_cc",
        "classical",
        "voronoi",
        "repair_large",
        "th_distance",
        "min_seed_size",
    ):
        assert name in res.output
    assert "[0, 1] or auto" in res.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-m", "no_such_method"], "unknown post-processor 'no_such_method'"),
        (["-m", "watershed_bc"], "needs the 2 channels BC, but the prediction has 3"),
        (["-m", "watershed_bcd", "-p", "th_bianry=0.5"], "th_bianry: unknown param"),
        (["-m", "watershed_bcd", "-p", "th_binary=2"], "th_binary: must be <= 1.0"),
        (["-m", "watershed_bcd", "-p", "th_binary"], "--param expects key=value"),
        (["-m", "watershed_bcd", "-f", "no_such_filter"], "unknown filter 'no_such_filter'"),
        (["-m", "watershed_bcd", "-f", "remove_small:min_size=-1"], "min_size"),
        (["-m", "watershed_bcd", "--resolution", "1,1,1"], "--resolution has 3 values but the image is 2D"),
        (["-m", "watershed_bcd", "-f", "z_median"], "3D labels"),
    ],
)
def test_postprocess_bad_input(preds2d, tmp_path, args, match):
    folder, _ = preds2d
    out = tmp_path / "bad"
    res = run("postprocess", folder, *args, "--out", out)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and __import__("re").search(match, lines[0]), res.output
    assert not out.exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging folder left behind


def test_postprocess_nan_prediction(tmp_path):
    (tmp_path / "p").mkdir()
    pred = np.zeros((3, 16, 16), np.float32)
    pred[0, 3, 3] = np.nan
    write_tiff(tmp_path / "p" / "nan.tif", pred, axes="cyx")
    res = run("postprocess", tmp_path / "p", "-m", "watershed_bcd", "-o", tmp_path / "o")
    assert res.exit_code == 2 and "NaN" in res.output
    assert not (tmp_path / "o").exists()


def test_postprocess_missing_arguments(tmp_path):
    res = run("postprocess", tmp_path, "--method", "watershed_bcd")
    assert res.exit_code == 2 and "missing --out" in res.output
    res = run("postprocess", tmp_path / "nowhere", "--method", "watershed_bcd", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "no such file or folder" in res.output
