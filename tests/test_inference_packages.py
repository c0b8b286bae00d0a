"""Package loading and safety (zip entries, size limit, sha256, missing files, TensorFlow-only), and the
vendored zoo model unet2d_nuclei_broad (fixed 512x512, halo 32) on its test tensor, 256x256 and 700x1100
images."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from runner.errors import UserError
from runner.inference import Predictor, load_package, reproduce_test_outputs
from runner.inference.safety import IntegrityError, safe_extract
from tests._packages import build_keras_only, build_package

ZOO = Path(__file__).resolve().parents[1] / "zoo_packages" / "third_party" / "unet2d_nuclei_broad"
EXAMPLES = Path(__file__).resolve().parents[1] / "zoo_packages" / "examples" / "dsb2018"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_package(tmp_path_factory.mktemp("tiny") / "tiny", make_zip=True)


# ------------------------------------------------------------------------------------------------ safety


def _zip_with(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


@pytest.mark.parametrize(
    "name,match",
    [
        ("../evil.txt", "outside the package"),
        ("a/../../evil.txt", "outside"),
        ("/etc/evil.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
    ],
)
def test_zip_with_unsafe_entry_is_refused(tmp_path, name, match):
    archive = _zip_with(tmp_path / "bad.zip", {"rdf.yaml": b"type: model\n", name: b"x"})
    with pytest.raises(UserError, match=match):
        load_package(archive)
    assert not (tmp_path / "evil.txt").exists()


def test_zip_bomb_is_refused(tmp_path, tiny):
    with pytest.raises(UserError, match="expand to .* more than the limit"):
        load_package(tiny.zip, max_unpacked_bytes=10_000)
    archive = _zip_with(tmp_path / "big.zip", {"rdf.yaml": b"x" * 5000})
    with pytest.raises(UserError, match="limit"):
        safe_extract(archive, tmp_path / "out", max_bytes=1000)


def test_corrupt_zip_and_missing_package(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="not a readable zip"):
        load_package(bad)
    with pytest.raises(UserError, match="model package not found"):
        load_package(tmp_path / "nope.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no bioimageio.yaml or rdf.yaml"):
        load_package(tmp_path / "empty")


def test_sha256_mismatch_is_refused_without_fallback(tmp_path, tiny):
    copy = tmp_path / "tampered"
    shutil.copytree(tiny.folder, copy)
    with open(copy / "weights.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError, match="sha256 mismatch .* onnx weights"):
        Predictor(copy, device="cpu")  # onnx is tried first; no silent fallback to torchscript
    (copy / "weights.torchscript").unlink()
    with pytest.raises(UserError, match="torchscript weights is missing"):
        Predictor(copy, device="cpu", weights="torchscript")


def test_tensorflow_only_package_names_its_formats(tmp_path):
    folder = build_keras_only(tmp_path / "keras")
    with pytest.raises(UserError, match="only keras_hdf5 weights.*TensorFlow/Keras are not supported"):
        Predictor(folder, device="cpu")


def test_invalid_description(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "rdf.yaml").write_text("type: model\nformat_version: 0.5.4\nname: x\n")
    with pytest.raises(UserError, match="invalid bioimage.io description"):
        load_package(tmp_path / "pkg")


def test_package_dataclass(tiny):
    pkg = load_package(tiny.rdf)
    assert pkg.inputs[0].axes_string == "bcyx" and pkg.outputs[0].n_channels == 2
    assert pkg.halo == {"prediction": {"y": 8, "x": 8}}
    assert pkg.inputs[0].axis("y").rule.describe() == "24+n*8"
    assert pkg.postprocessing is None and pkg.runner_config is None


def test_runner_config_block(tmp_path):
    cfg = {"targets": "BC", "postprocessing": {"name": "watershed_bc", "params": {"th_binary": 0.4}}}
    pkg = load_package(build_package(tmp_path / "cfg", runner_config=cfg).folder)
    assert pkg.targets == "BC"
    assert pkg.postprocessing.name == "watershed_bc" and pkg.postprocessing.params == {"th_binary": 0.4}


# ------------------------------------------------------------------------------------- the vendored zoo model


@pytest.fixture(scope="module")
def zoo():
    with Predictor(ZOO, device="cpu", weights="onnx") as predictor:
        yield predictor


def _read(name_index: int):
    from runner.io import read_image, read_labels

    image = sorted((EXAMPLES / "x").glob("*.tif"))[name_index]
    return read_image(image).data, read_labels(EXAMPLES / "y" / image.name).data


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("weights", ["onnx", "torchscript"])
def test_zoo_reproduces_its_test_output(weights):
    (result,) = reproduce_test_outputs(ZOO, weights=weights)
    assert result.ok and result.max_abs_diff < 1e-4


def test_zoo_fixed_size_model_on_256_image(zoo):
    image, gt = _read(2)
    assert image.shape == (1, 256, 256)
    prob = zoo.predict(image)["probability"]
    assert prob.shape == (1, 256, 256) and zoo.last_run.n_tiles == 1
    assert 0 <= prob.min() and prob.max() <= 1
    assert _iou(prob[0] > 0.5, gt > 0) > 0.6


def test_zoo_fixed_size_model_on_700x1100_image(zoo):
    image, gt = _read(0)  # 360 x 360, mirrored out to 700 x 1100
    big = np.pad(image, [(0, 0), (0, 700 - 360), (0, 1100 - 360)], mode="symmetric")
    prob = zoo.predict(big)["probability"]
    assert (
        prob.shape == (1, 700, 1100) and zoo.last_run.n_tiles == 6 and zoo.last_run.tile_shape == (512, 512)
    )
    assert _iou(prob[0, :360, :360] > 0.5, gt > 0) > 0.8
    # the mirrored copy is segmented like the original
    assert _iou(prob[0, :360, 360:720][:, ::-1] > 0.5, gt > 0) > 0.8


def test_zoo_single_tile_equals_direct_forward_in_the_interior(zoo):
    """A 448x448 image fits one 512 tile (halo 32): same as the network on the padded, normalised image."""
    image, _ = _read(0)
    crop = np.pad(image, [(0, 0), (0, 88), (0, 88)], mode="symmetric")  # 360 -> 448
    ours = zoo.predict(crop)["probability"]
    assert zoo.last_run.n_tiles == 1
    x = ((crop - crop.mean()) / (crop.std() + 1e-6)).astype(np.float32)
    padded = np.pad(x, [(0, 0), (32, 32), (32, 32)], mode="symmetric")
    logits = zoo.canonical_forward([padded[None]])[0][0]
    direct = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(ours, direct[:, 32:-32, 32:-32], atol=1e-4)
