"""Fidelity through the CLI (issue 12): a package runs as its author ran it.

Each reproduction of the issue, as a user calls it: test inputs written as TIFF files, ``runner predict``, the
TIFFs it wrote compared with the package's test outputs (and with bioimageio.core's whole-sample prediction
where core runs the package); ``runner test`` on packages it can and cannot reproduce.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.io import read_image, write_image
from tests import _fidelity_packages as fp

ZOO = Path(__file__).resolve().parents[1] / "zoo_packages" / "third_party" / "unet2d_nuclei_broad"
SHARED_ZOO = Path("/work/shared/zoo/unet2d_nuclei_broad")


def _cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _predict(pkg: Path, out: Path, *inputs: str, extra: tuple = ()) -> tuple[str, dict]:
    args = ["predict", pkg, *[a for i in inputs for a in ("--input", i)], "-o", out]
    code, text = _cli(*args, "--no-postprocess", "--quiet", "--device", "cpu", *extra)
    assert code == 0, text
    return text, json.loads((out / "run_config.json").read_text())


def _tif(path: Path, npy: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.load(npy)[0])  # (1, C, Y, X) test tensor -> (C, Y, X) image
    return path


def _expected(npy: Path) -> np.ndarray:
    return np.load(npy)[0]


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    return {
        "torchem": fp.torchem_like(root / "torchem"),
        "fixed": fp.fixed_with_halo(root / "fixed"),
        "two": fp.two_in_two_out(root / "two"),
        "v04": fp.v04_fixed_with_halo(root / "v04"),
    }


def _core_whole_sample(pkg: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """bioimageio.core's whole-sample prediction (no tiling) of the package on ``inputs`` (model layout)."""
    from bioimageio.core import Tensor, create_prediction_pipeline, predict
    from bioimageio.spec import load_description
    from loguru import logger

    logger.disable("bioimageio")
    descr = load_description(pkg, perform_io_checks=False, format_version="discover")
    pipeline = create_prediction_pipeline(descr, weights_format="torchscript")
    dims = ("batch", "channel", "y", "x")
    sample = predict(model=pipeline, inputs={k: Tensor.from_numpy(v, dims=dims) for k, v in inputs.items()})
    return {str(k): np.asarray(t.data.values[0]) for k, t in sample.members.items()}


def test_instance_norm_unet_runs_one_pass_and_says_it_is_global(packages, tmp_path):
    """torch-em-like U-Net (instance norm, output at half resolution, no halo) on an image that fits."""
    pkg = packages["torchem"]
    image = _tif(tmp_path / "img.tif", pkg / "in.npy")
    text, config = _predict(pkg, tmp_path / "out", str(image))
    got = read_image(tmp_path / "out" / "probabilities" / "img.tif").data
    expected = _expected(pkg / "out.npy")
    assert got.shape == expected.shape == (2, 48, 48)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    core = _core_whole_sample(pkg, {"raw": np.load(pkg / "in.npy")})["foreground"]
    np.testing.assert_allclose(got, core, atol=1e-4)
    assert "ran as one pass of 96x96" in text and "whole input (it has instance normalisation)" in text
    tiling = config["tiling"]
    assert tiling["mode"] == "one pass" and tiling["global_ops"] and tiling["n_tiles"] == 1
    assert config["notes"] and "whole input" in config["notes"][0]


def test_instance_norm_unet_tiles_only_past_the_memory_budget(packages, tmp_path):
    """An image that does not fit runs as the fewest, largest tiles that fit, and the terminal says why."""
    pkg = packages["torchem"]
    image = tmp_path / "big.tif"
    write_image(image, np.random.default_rng(1).normal(20, 5, (1, 200, 180)).astype(np.float32))
    text, config = _predict(pkg, tmp_path / "out", str(image), extra=("--memory-mb", "20"))
    tiling = config["tiling"]
    assert tiling["mode"] == "tiles" and tiling["n_tiles"] > 1 and "memory budget" in tiling["why"]
    assert "memory budget" in text and read_image(
        tmp_path / "out" / "probabilities" / "big.tif"
    ).data.shape == (
        2,
        100,
        90,
    )
    # an odd-sized image that fits: one pass padded to the size rule, output cropped to the image
    odd = tmp_path / "odd.tif"
    write_image(odd, np.random.default_rng(2).normal(20, 5, (1, 70, 83)).astype(np.float32))
    text, config = _predict(pkg, tmp_path / "out2", str(odd))
    assert config["tiling"]["mode"] == "one pass" and config["tiling"]["tile"] == [80, 96]
    assert read_image(tmp_path / "out2" / "probabilities" / "odd.tif").data.shape == (2, 35, 41)


def test_fixed_size_model_with_halo_on_an_image_of_that_size(packages, tmp_path):
    """512x512 fixed, halo 32, 512x512 image: one pass, the test output exactly (no mirrored band)."""
    pkg = packages["fixed"]
    image = _tif(tmp_path / "img.tif", pkg / "in.npy")
    text, config = _predict(pkg, tmp_path / "out", str(image))
    got = read_image(tmp_path / "out" / "probabilities" / "img.tif").data
    np.testing.assert_allclose(got, _expected(pkg / "out.npy"), atol=1e-5)
    assert config["tiling"]["mode"] == "one pass" and config["tiling"]["halo_source"] == "package halo"
    assert "one pass of 512x512" in text and "border image" in text
    # --border pad extends the image by the halo first: 576 > 512, so tiles, and the terminal says why
    text, config = _predict(pkg, tmp_path / "pad", str(image), extra=("--border", "pad"))
    assert config["tiling"]["mode"] == "tiles" and "fixed input size" in config["tiling"]["why"]
    padded = read_image(tmp_path / "pad" / "probabilities" / "img.tif").data
    inner = (slice(None), slice(40, -40), slice(40, -40))  # away from the border the two policies agree
    np.testing.assert_allclose(padded[inner], got[inner], atol=1e-5)
    assert np.abs(padded - got).max() > 1e-3  # at the border they do not


def test_two_inputs_two_outputs_single_files_pair_whatever_their_names(packages, tmp_path):
    pkg = packages["two"]
    a = _tif(tmp_path / "a" / "cells.tif", pkg / "a.npy")
    b = _tif(tmp_path / "b" / "cells_mask_channel.tif", pkg / "b.npy")
    _, config = _predict(pkg, tmp_path / "out", f"raw={a}", f"mask={b}")
    assert config["tiling"]["mode"] == "one pass"
    for oid in ("fg", "dist"):
        got = read_image(tmp_path / "out" / "probabilities" / oid / "cells.tif").data
        np.testing.assert_allclose(got, _expected(pkg / f"{oid}.npy"), atol=1e-5)
    core = _core_whole_sample(pkg, {"raw": np.load(pkg / "a.npy"), "mask": np.load(pkg / "b.npy")})
    got = read_image(tmp_path / "out" / "probabilities" / "dist" / "cells.tif").data
    np.testing.assert_allclose(got, core["dist"], atol=1e-5)
    # folders still pair by file name
    code, text = _cli(
        "predict", pkg, "-i", f"raw={a.parent}", "-i", f"mask={b.parent}", "-o", tmp_path / "o2"
    )
    assert code == 2 and "without a partner" in text


def test_v04_fixed_shape_with_output_halo_runs_natively(packages, tmp_path):
    """bioimageio.spec's 0.4 -> 0.5 converter refuses a fixed output shape with a halo; runner reads the
    0.4 description itself and reproduces the test output and bioimageio.core's prediction."""
    from bioimageio.spec import InvalidDescr, load_description

    pkg = packages["v04"]
    assert isinstance(load_description(pkg, perform_io_checks=False, format_version="latest"), InvalidDescr)
    image = _tif(tmp_path / "img.tif", pkg / "in.npy")
    _, config = _predict(pkg, tmp_path / "out", str(image))
    got = read_image(tmp_path / "out" / "probabilities" / "img.tif").data
    np.testing.assert_allclose(got, _expected(pkg / "out.npy"), atol=1e-5)
    assert config["package"]["format_version"].startswith("0.4") and config["tiling"]["mode"] == "one pass"
    core = _core_whole_sample(pkg, {"raw": np.load(pkg / "in.npy")})["prob"]
    np.testing.assert_allclose(got, core, atol=1e-5)
    # a larger image: tiles with the 0.4 halo as margin
    big = tmp_path / "big.tif"
    write_image(big, np.random.default_rng(3).normal(20, 5, (1, 150, 100)).astype(np.float32))
    _, config = _predict(pkg, tmp_path / "big", str(big))
    assert config["tiling"]["mode"] == "tiles" and config["tiling"]["halo"] == [8, 8]
    code, text = _cli("test", pkg, "--only", "runner")
    assert code == 0, text


def test_runner_test_names_the_worst_difference_and_where(tmp_path):
    pkg = fp.two_in_two_out(tmp_path / "bad", bad_at=(5, 7))
    code, text = _cli("test", pkg, "--only", "runner", "--weights", "torchscript")
    assert code == 1, text
    assert "output dist" in text and "max |diff| 1 at b=0, c=0, y=5, x=7" in text
    assert "result: FAILED" in text


def test_tensorflow_only_package_is_one_line(tmp_path):
    from tests._packages import build_keras_only

    folder = build_keras_only(tmp_path / "keras")
    image = tmp_path / "img.tif"
    write_image(image, np.zeros((1, 32, 32), np.float32))
    code, text = _cli("predict", folder, "-i", image, "-o", tmp_path / "out", "--no-postprocess")
    assert code == 2
    line = text.strip()
    assert "\n" not in line and "only keras_hdf5 weights" in line and "runner runs onnx, torchscript" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not SHARED_ZOO.exists() and not ZOO.exists(), reason="unet2d_nuclei_broad not here")
def test_zoo_unet2d_nuclei_broad_through_the_cli(tmp_path):
    zoo = SHARED_ZOO if SHARED_ZOO.exists() else ZOO
    test_in = next(p for p in zoo.glob("*.npy") if "input" in p.name)
    test_out = next(p for p in zoo.glob("*.npy") if "output" in p.name)
    image = _tif(tmp_path / "img.tif", test_in)
    _, config = _predict(zoo, tmp_path / "out", str(image), extra=("--weights", "onnx"))
    got = read_image(tmp_path / "out" / "probabilities" / "img.tif").data
    np.testing.assert_allclose(got, _expected(test_out), atol=1e-4)
    assert config["tiling"]["mode"] == "one pass"
    code, text = _cli("test", zoo, "--only", "runner", "--weights", "onnx")
    assert code == 0, text
