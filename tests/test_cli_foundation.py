"""The runner CLI: help, `runner targets`, `runner synth`, `runner coco-to-labels`; bad input -> exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from runner.cli import app

cli = CliRunner()


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


def test_help_lists_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "--help"], capture_output=True, text=True, check=True
    )
    for name in ("targets", "synth", "coco-to-labels"):
        assert name in proc.stdout


def test_targets_writes_channels_previews_and_weights(dataset2d, tmp_path):
    out = tmp_path / "t"
    res = run("targets", dataset2d, "--code", "BCD", "--out", out, "--ga")
    assert res.exit_code == 0, res.output
    for split, n in (("train", 4), ("val", 2)):
        tifs = sorted((out / split).glob("*.tif"))
        assert len(tifs) == n
        arr = tifffile.imread(tifs[0])
        assert arr.shape == (3, 96, 96) and arr.dtype == np.float32
        labels = tifffile.imread(dataset2d / split / "y" / tifs[0].name)
        np.testing.assert_array_equal(arr[0] + arr[1] > 0, labels > 0)
        assert len(list((out / split / "preview").glob("*.png"))) == n
        assert len(list((out / split / "weights").glob("*.tif"))) == n
    meta = json.loads((out / "targets.json").read_text())
    assert [c["name"] for c in meta["channels"]] == ["B", "C", "D"]


def test_targets_3d(dataset3d, tmp_path):
    res = run("targets", dataset3d / "train", "--code", "BCDv2", "--out", tmp_path / "t3", "--no-preview")
    assert res.exit_code == 0, res.output
    arr = tifffile.imread(sorted((tmp_path / "t3").glob("*.tif"))[0])
    assert arr.shape == (3, 32, 64, 64)


def _assert_user_error(res, *needles):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    text = res.output.strip().splitlines()[-1].split("\r")[-1]  # after any progress bar
    assert text.startswith("error:")
    for needle in needles:
        assert needle in text


@pytest.fixture
def split(tmp_path):
    root = tmp_path / "split"
    (root / "x").mkdir(parents=True)
    (root / "y").mkdir()
    for name in ("a", "b"):
        tifffile.imwrite(root / "x" / f"{name}.tif", np.zeros((32, 32), np.uint8))
        lab = np.zeros((32, 32), np.uint16)
        lab[5:15, 5:15] = 1
        tifffile.imwrite(root / "y" / f"{name}.tif", lab)
    return root


@pytest.mark.parametrize(
    "breakage,needles",
    [
        ("unpaired", ["c.tif", "without labels"]),
        ("shape", ["b.tif", "shape"]),
        ("float", ["b.tif", "non-integer"]),
        ("corrupt", ["b.tif", "cannot read"]),
        ("code", ["unknown target code"]),
    ],
)
def test_targets_bad_input_writes_nothing(split, tmp_path, breakage, needles):
    code = "BCD"
    if breakage == "unpaired":
        tifffile.imwrite(split / "x" / "c.tif", np.zeros((32, 32), np.uint8))
    elif breakage == "shape":
        tifffile.imwrite(split / "y" / "b.tif", np.zeros((30, 32), np.uint16))
    elif breakage == "float":
        tifffile.imwrite(split / "y" / "b.tif", np.full((32, 32), 0.3, np.float32))
    elif breakage == "corrupt":
        (split / "y" / "b.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    elif breakage == "code":
        code = "BQ"
    out = tmp_path / "out"
    res = run("targets", split, "--code", code, "--out", out)
    _assert_user_error(res, *needles)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["split"]


def test_targets_empty_folder(tmp_path):
    (tmp_path / "e" / "x").mkdir(parents=True)
    (tmp_path / "e" / "y").mkdir()
    _assert_user_error(run("targets", tmp_path / "e", "--out", tmp_path / "o"), "no images")
    _assert_user_error(run("targets", tmp_path / "nothing", "--out", tmp_path / "o"), "not found")


def test_synth_and_coco(tmp_path):
    res = run("synth", tmp_path / "syn", "--ndim", "2", "--n-train", "2", "--n-val", "1", "--shape", "64,64")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "syn" / "train" / "x").glob("*.tif"))) == 2
    doc = {
        "images": [{"id": 1, "file_name": "one.png", "height": 20, "width": 20}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[8, 8, 16, 8, 16, 16, 8, 16]]},
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    res = run("coco-to-labels", tmp_path / "c.json", "--out", tmp_path / "y", "--stack")
    assert res.exit_code == 0, res.output
    stack = tifffile.imread(tmp_path / "y" / "one.tif")
    assert stack.shape == (2, 20, 20) and ((stack > 0).sum(0) == 2).sum() == 4
    (tmp_path / "bad.json").write_text("{not json")
    _assert_user_error(run("coco-to-labels", tmp_path / "bad.json", "--out", tmp_path / "z"), "bad.json")
