"""``runner predict`` end to end through the CLI: outputs, post-processing choice, evaluation, measurements,
several inputs, and bad input (exit 2, one-line error, nothing half-written; other images still complete)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from runner.cli import app
from runner.synthetic import random_blobs, render
from tests._packages import build_package

ZOO = Path(__file__).resolve().parents[1] / "zoo_packages" / "third_party" / "unet2d_nuclei_broad"
EXAMPLES = Path(__file__).resolve().parents[1] / "zoo_packages" / "examples" / "dsb2018"

RUNNER_CONFIG = {"targets": "BC", "postprocessing": {"name": "threshold_cc", "params": {"threshold": 0.5}}}


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    """A 2D package declaring its post-processor in config.runner."""
    return build_package(tmp_path_factory.mktemp("pkg") / "model", runner_config=RUNNER_CONFIG, make_zip=True)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A package without config.runner (like other people's packages)."""
    return build_package(tmp_path_factory.mktemp("bare") / "model")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, shape in enumerate([(70, 90), (64, 64), (101, 77)]):
        labels = random_blobs(shape, 6, radius=(5, 8), seed=i)
        tifffile.imwrite(folder / f"img{i}.tif", render(labels, seed=i).astype(np.uint8))
    return folder


def invoke(*args: str):
    result = CliRunner().invoke(app, ["predict", *map(str, args), "--quiet"])
    return result


def _stderr_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert lines, result.output
    return lines[0]


def test_predict_writes_instances_probabilities_measurements_config(pkg, images, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        pkg.zip,
        "--input",
        images,
        "--output",
        out,
        "--save-probabilities",
        "--measure",
        "--device",
        "cpu",
        "--tile",
        "48",
    )
    assert result.exit_code == 0, result.output
    assert "predicted 3 image(s) with onnx weights on cpu" in result.output
    names = sorted(p.name for p in (out / "instances").iterdir())
    assert names == ["img0.tif", "img1.tif", "img2.tif"]
    labels = tifffile.imread(out / "instances" / "img2.tif")
    prob = tifffile.imread(out / "probabilities" / "img2.tif")
    assert labels.shape == (101, 77) and prob.shape == (2, 101, 77)
    assert (out / "measurements" / "img0.csv").read_text().startswith("label,")
    config = json.loads((out / "run_config.json").read_text())
    assert config["postprocessing"]["name"] == "threshold_cc" and config["weights"] == "onnx"
    assert config["tiling"]["margin"] == [8, 8] and config["failures"] == {}


def test_predict_param_overrides_package_params(pkg, images, tmp_path):
    out = tmp_path / "out"
    result = invoke(pkg.folder, "-i", str(images / "img0.tif"), "-o", out, "--param", "threshold=0.9")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "run_config.json").read_text())
    assert config["postprocessing"]["params"]["threshold"] == 0.9


def test_no_postprocess_writes_raw_outputs_only(bare, images, tmp_path):
    out = tmp_path / "out"
    result = invoke(bare.folder, "-i", str(images / "img*.tif"), "-o", out, "--no-postprocess")
    assert result.exit_code == 0, result.output
    assert not (out / "instances").exists()
    assert len(list((out / "probabilities").glob("*.tif"))) == 3


def test_foreign_package_needs_a_postprocessor(bare, images, tmp_path):
    out = tmp_path / "out"
    result = invoke(bare.folder, "-i", images, "-o", out)
    assert result.exit_code == 2
    assert "declares no instance post-processor" in _stderr_line(result) and "--postprocess" in result.output
    assert not out.exists()
    result = invoke(
        bare.folder, "-i", images, "-o", out, "--postprocess", "fg_watershed", "--param", "channel=1"
    )
    assert result.exit_code == 0, result.output
    assert len(list((out / "instances").glob("*.tif"))) == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--postprocess", "no_such_method"], "no_such_method"),
        (["--param", "threshold=2"], "threshold"),
        (["--weights", "keras_hdf5"], "no 'keras_hdf5' weights"),
        (["--weights", "pytorch_state_dict"], "pytorch_state_dict"),
        (["--device", "tpu"], "unknown device"),
        (["--tile", "abc"], "--tile"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(pkg, images, tmp_path, args, message):
    out = tmp_path / "out"
    result = invoke(pkg.folder, "-i", images, "-o", out, *args)
    assert result.exit_code == 2, result.output
    assert message in _stderr_line(result)
    assert not out.exists()


def test_missing_package_and_inputs(pkg, tmp_path):
    result = invoke(tmp_path / "nope.zip", "-i", tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "model package not found" in _stderr_line(result)
    result = invoke(pkg.folder, "-i", tmp_path / "missing", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "input not found" in _stderr_line(result)
    assert not (tmp_path / "out").exists()


def test_one_bad_image_does_not_stop_the_batch(pkg, images, tmp_path):
    (images / "broken.tif").write_bytes(b"II*\0 this is not a tiff")
    tifffile.imwrite(images / "volume.tif", np.zeros((5, 40, 40), np.uint8), metadata={"axes": "ZYX"})
    colour = np.zeros((40, 40, 3), np.uint8)
    colour[..., 0] = 50  # a real colour image (grey saved as RGB would be taken as one channel)
    tifffile.imwrite(images / "rgb.tif", colour, photometric="rgb")
    out = tmp_path / "out"
    result = invoke(pkg.folder, "-i", images, "-o", out)
    assert result.exit_code == 2
    assert "3 item(s) failed" in result.output
    assert "broken.tif" in result.output and "cannot read image" in result.output
    assert "takes 2D images (axes bcyx" in result.output
    assert "3 channels, more than the 1" in result.output
    written = sorted(p.name for p in (out / "instances").iterdir())
    assert written == ["img0.tif", "img1.tif", "img2.tif"]
    config = json.loads((out / "run_config.json").read_text())
    assert set(config["failures"]) == {"broken", "volume", "rgb"}


def test_two_input_package_with_named_inputs(tmp_path, images):
    two = build_package(tmp_path / "two", n_inputs=2, runner_config=RUNNER_CONFIG)
    aux = tmp_path / "aux"
    aux.mkdir()
    for p in images.iterdir():
        tifffile.imwrite(aux / p.name, tifffile.imread(p)[::-1].copy())
    out = tmp_path / "out"
    result = invoke(two.folder, "-i", f"raw={images}", "-i", f"aux={aux}", "-o", out)
    assert result.exit_code == 0, result.output
    assert len(list((out / "instances").glob("*.tif"))) == 3
    result = invoke(two.folder, "-i", f"raw={images}", "-o", tmp_path / "out2")
    assert result.exit_code == 2 and "no images given for input(s) aux" in _stderr_line(result)
    result = invoke(two.folder, "-i", f"mask={images}", "-i", f"aux={aux}", "-o", tmp_path / "out2")
    assert result.exit_code == 2 and "no input 'mask'" in _stderr_line(result)


def test_zoo_model_with_fg_watershed_and_ground_truth(tmp_path):
    out = tmp_path / "out"
    result = invoke(
        ZOO,
        "-i",
        EXAMPLES / "x",
        "-o",
        out,
        "--postprocess",
        "fg_watershed",
        "--gt",
        EXAMPLES / "y",
        "--overlays",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 6
    at50 = next(r for r in summary["pooled"]["per_threshold"] if abs(r["iou"] - 0.5) < 1e-9)
    assert at50["f1"] > 0.3  # a real model on real nuclei: far better than chance
    assert (out / "metrics_per_image.csv").exists() and "metrics (6 image(s)" in result.output
    # overlays: image | outlines coloured by match (green matched, blue false positive, red missed)
    pngs = sorted((out / "overlays").glob("*.png"))
    assert len(pngs) == 6
    import imageio.v3 as iio

    rgb = iio.imread(pngs[0])[..., :3].astype(int)
    green = (rgb[..., 1] > 180) & (rgb[..., 0] < 100) & (rgb[..., 2] < 120)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    assert green.sum() > 50 and red.sum() > 0


def test_gt_must_match_images(pkg, images, tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    tifffile.imwrite(gt / "img0.tif", np.zeros((70, 90), np.uint16))
    result = invoke(pkg.folder, "-i", images, "-o", tmp_path / "out", "--gt", gt)
    assert result.exit_code == 2 and "have no ground truth" in _stderr_line(result)
    assert not (tmp_path / "out").exists()


def test_greyscale_saved_as_rgba_png_runs_on_a_one_channel_model(tmp_path):
    """DSB2018's PNGs are greyscale stored as RGBA: taken as one channel, the same instances as the TIFF."""
    import imageio.v3 as iio

    tif = sorted((EXAMPLES / "x").glob("*.tif"))[0]
    grey = tifffile.imread(tif)
    (tmp_path / "png").mkdir()
    iio.imwrite(tmp_path / "png" / "img.png", np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
    colour = np.dstack([grey, grey // 2, grey, np.full_like(grey, 255)])
    iio.imwrite(tmp_path / "colour.png", colour)
    runner = CliRunner()
    common = ["--postprocess", "threshold_cc", "-q", "--device", "cpu"]
    a = runner.invoke(
        app, ["predict", str(ZOO), "--input", str(tif), "--output", str(tmp_path / "a"), *common]
    )
    b = runner.invoke(
        app, ["predict", str(ZOO), "--input", str(tmp_path / "png"), "--output", str(tmp_path / "b"), *common]
    )
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "a" / "instances" / f"{tif.stem}.tif"),
        tifffile.imread(tmp_path / "b" / "instances" / "img.tif"),
    )
    c = runner.invoke(
        app,
        [
            "predict",
            str(ZOO),
            "--input",
            str(tmp_path / "colour.png"),
            "--output",
            str(tmp_path / "c"),
            *common,
        ],
    )
    assert c.exit_code == 2 and "4 channels" in c.output
