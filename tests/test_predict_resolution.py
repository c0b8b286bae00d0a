"""``runner predict`` with voxel sizes, through the CLI: an input whose voxel size (``--resolution`` or TIFF
metadata) differs from the package's ``config.runner.voxel_size`` is predicted at the package's voxel size and
its labels come back on the input grid; bad ``--resolution`` values exit 2 with one line and write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from typer.testing import CliRunner

from runner.cli import app
from runner.io import write_tiff
from runner.synthetic import random_blobs, render
from tests._packages import build_package

VOXEL = [1.0, 0.5, 0.5]
CONFIG_3D = {
    "targets": "BC",
    "postprocessing": {"name": "threshold_cc", "params": {"threshold": 0.5}},
    "voxel_size": VOXEL,
}
CONFIG_2D = {"targets": "BC", "postprocessing": {"name": "threshold_cc", "params": {"threshold": 0.5}}}


@pytest.fixture(scope="module")
def pkg3d(tmp_path_factory):
    return build_package(tmp_path_factory.mktemp("pkg3d") / "model", ndim=3, runner_config=CONFIG_3D)


@pytest.fixture(scope="module")
def pkg2d(tmp_path_factory):
    return build_package(tmp_path_factory.mktemp("pkg2d") / "model", runner_config=CONFIG_2D)


def _volume(shape=(24, 48, 40), seed=0) -> np.ndarray:
    labels = random_blobs(shape, 8, radius=(5, 8), seed=seed)
    return np.clip(render(labels, seed=seed) * 200, 0, 255).astype(np.uint8)


def predict(pkg, inputs, out, *extra):
    args = ["predict", str(pkg.folder), "--input", str(inputs), "--output", str(out), "--quiet", *extra]
    return CliRunner().invoke(app, [*map(str, args), "--device", "cpu"])


def _labels(out, name):
    return tifffile.imread(out / "instances" / f"{name}.tif")


def test_other_voxel_size_predicts_on_the_package_grid_and_maps_back(pkg3d, tmp_path):
    vol = _volume()
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "vol.tif", vol)
    res = predict(pkg3d, tmp_path / "in", tmp_path / "out", "--resolution", "0.5,0.25,0.25")
    assert res.exit_code == 0, res.output
    labels = _labels(tmp_path / "out", "vol")
    assert labels.shape == vol.shape
    config = json.loads((tmp_path / "out" / "run_config.json").read_text())
    assert config["rescaled"]["vol"] == {"voxel_size": VOXEL, "shape": [12, 24, 20]}

    # the same as predicting the volume resampled by hand at the package's voxel size, then upsampled
    small = ndi.zoom(vol.astype(np.float32), 0.5, order=1, mode="nearest", grid_mode=True)
    (tmp_path / "small").mkdir()
    tifffile.imwrite(tmp_path / "small" / "vol.tif", small)
    res = predict(pkg3d, tmp_path / "small", tmp_path / "out_small")
    assert res.exit_code == 0, res.output
    ref = _labels(tmp_path / "out_small", "vol")
    assert ref.shape == (12, 24, 20)
    assert labels.max() > 0
    np.testing.assert_array_equal(labels, np.repeat(np.repeat(np.repeat(ref, 2, 0), 2, 1), 2, 2))


def test_voxel_size_from_tiff_metadata_and_equal_size_unchanged(pkg3d, tmp_path):
    vol = _volume(shape=(20, 36, 44), seed=1)
    (tmp_path / "meta").mkdir()
    write_tiff(tmp_path / "meta" / "v.tif", vol, axes="zyx", resolution=(1.5, 0.75, 0.75))
    res = predict(pkg3d, tmp_path / "meta", tmp_path / "out")
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "out" / "run_config.json").read_text())
    assert config["rescaled"]["v"]["shape"] == [30, 54, 66]
    assert _labels(tmp_path / "out", "v").shape == vol.shape

    (tmp_path / "plain").mkdir()
    tifffile.imwrite(tmp_path / "plain" / "v.tif", vol)
    same = predict(pkg3d, tmp_path / "plain", tmp_path / "same", "--resolution", "1,0.5,0.5")
    plain = predict(pkg3d, tmp_path / "plain", tmp_path / "plain_out")
    assert same.exit_code == plain.exit_code == 0, same.output + plain.output
    assert json.loads((tmp_path / "same" / "run_config.json").read_text())["rescaled"] == {}
    np.testing.assert_array_equal(_labels(tmp_path / "same", "v"), _labels(tmp_path / "plain_out", "v"))


@pytest.mark.parametrize(
    "which, value, needle",
    [
        ("3d", "1,1", "--resolution has 2 values but the model is 3D"),
        ("3d", "0,0.5,0.5", "--resolution values must be positive"),
        ("3d", "1,-0.5,0.5", "--resolution values must be positive"),
        ("3d", "1000,500,500", "by more than 8x"),
        ("2d", "0.5,0.5", "package cannot rescale"),
    ],
)
def test_bad_resolution_exits_2_with_one_line(pkg3d, pkg2d, tmp_path, which, value, needle):
    (tmp_path / "in").mkdir()
    shape = (24, 32, 32) if which == "3d" else (48, 48)
    tifffile.imwrite(tmp_path / "in" / "x.tif", np.zeros(shape, np.uint8) + 7)
    pkg = pkg3d if which == "3d" else pkg2d
    res = predict(pkg, tmp_path / "in", tmp_path / "out", "--resolution", value)
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], res.output
    assert not (tmp_path / "out" / "instances").exists()
