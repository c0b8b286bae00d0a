"""`runner measure`: CSVs per image, property filtering, resolution, bad input (exit 2, nothing written)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from runner.cli import app
from runner.io import write_labels, write_tiff
from runner.measure import measure_labels
from runner.synthetic import random_blobs, render

cli = CliRunner()


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "y").mkdir()
    (tmp_path / "x").mkdir()
    for i in range(2):
        labels = random_blobs((80, 80), 12, radius=(3.0, 9.0), seed=i)
        write_labels(tmp_path / "y" / f"cell{i}_mask.tif", labels)
        write_tiff(tmp_path / "x" / f"cell{i}.tif", render(labels, seed=i), axes="yx")
    return tmp_path


def test_measure_folder_with_images_and_filter(folder):
    out = folder / "m"
    res = run(
        "measure",
        folder / "y",
        "--image",
        folder / "x",
        "--out",
        out,
        "--remove-if",
        "npixels lt 120",
        "--remove-if",
        "circularity lt 0.85 and npixels lt 200",
    )
    assert res.exit_code == 0, res.output
    labels = tifffile.imread(folder / "y" / "cell0_mask.tif")
    table = measure_labels(labels)
    rows = _rows(out / "cell0_mask.csv")
    assert [int(r["label"]) for r in rows] == list(table["label"])
    assert {"mean_intensity", "circularity", "condition_1", "condition_2", "removed", "removed_by"} <= set(
        rows[0]
    )
    removed = (table["npixels"] < 120) | ((table["circularity"] < 0.85) & (table["npixels"] < 200))
    assert [r["removed"] == "true" for r in rows] == list(removed)
    assert removed.any() and not removed.all()
    kept = tifffile.imread(out / "filtered" / "cell0_mask.tif")
    assert set(np.unique(kept)) - {0} == set(table["label"][~removed].tolist())
    assert json.loads((out / "conditions.json").read_text()) == {
        "condition_1": "npixels lt 120",
        "condition_2": "circularity lt 0.85 and npixels lt 200",
    }
    combined = _rows(out / "all_objects.csv")
    assert len(combined) == len(rows) + len(_rows(out / "cell1_mask.csv"))
    assert combined[0]["image"] == "cell0_mask"


def test_measure_one_3d_file_with_resolution(tmp_path):
    labels = random_blobs((20, 40, 40), 5, radius=(4.0, 7.0), seed=3)
    write_labels(tmp_path / "vol.tif", labels)
    res = run("measure", tmp_path / "vol.tif", "--resolution", "2,0.5,0.5", "--out", tmp_path / "m")
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "m" / "vol.csv")
    assert float(rows[0]["volume"]) == pytest.approx(int(rows[0]["npixels"]) * 0.5)
    assert {"surface_area", "sphericity", "centroid_z"} <= set(rows[0])


def test_measure_mixed_2d_and_3d_folder(tmp_path):
    write_labels(tmp_path / "a.tif", random_blobs((30, 30), 3, seed=1))
    write_labels(tmp_path / "b.tif", random_blobs((10, 30, 30), 3, radius=(3.0, 5.0), seed=1))
    res = run("measure", tmp_path, "--out", tmp_path / "m")
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "m" / "all_objects.csv")
    assert {r["image"] for r in rows} == {"a", "b"}
    assert all(r["volume"] == "" for r in rows if r["image"] == "a")
    assert all(r["circularity"] == "" for r in rows if r["image"] == "b")


def test_measure_non_integer_labels(tmp_path):
    tifffile.imwrite(tmp_path / "prob.tif", np.full((20, 20), 0.3, np.float32))
    res = run("measure", tmp_path / "prob.tif", "--out", tmp_path / "m")
    assert res.exit_code == 2
    assert "prob.tif" in res.output and "non-integer" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "condition, needle",
    [("roundness lt 3", "unknown property"), ("npixels about 3", "operator"), ("sphericity lt 0.5", "3D")],
)
def test_measure_bad_condition(folder, condition, needle):
    res = run("measure", folder / "y", "--out", folder / "m", "--remove-if", condition)
    assert res.exit_code == 2, res.output
    assert needle in res.output.strip().splitlines()[-1]
    assert not (folder / "m").exists()


def test_measure_image_shape_mismatch(folder):
    write_tiff(folder / "x" / "cell1.tif", np.zeros((50, 50), np.float32), axes="yx")
    res = run("measure", folder / "y", "--image", folder / "x", "--out", folder / "m")
    assert res.exit_code == 2, res.output
    assert "cell1_mask.tif" in res.output
    assert not (folder / "m").exists()
