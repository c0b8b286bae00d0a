"""The packages shipped in ``zoo_packages/``: they load, pass ``runner test``, carry tuned post-processing,
and segment data they were not tuned on about as well as their README says."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo_packages"
EXAMPLES = ZOO / "examples" / "dsb2018"
PACKAGE_2D = ZOO / "unet2d_bcd_nuclei_dsb2018.zip"
PACKAGE_3D = ZOO / "unet3d_bcd_nuclei_synthetic.zip"
cli = CliRunner()


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


def _accuracy(folder: Path, iou: float = 0.5) -> float:
    summary = json.loads((folder / "summary.json").read_text())
    return next(r["accuracy"] for r in summary["pooled"]["per_threshold"] if abs(r["iou"] - iou) < 1e-9)


def test_demo_uses_a_shipped_package():
    makefile = (ROOT / "Makefile").read_text()
    model = re.search(r"^DEMO_MODEL \?= (\S+)", makefile, re.M).group(1)
    assert (ROOT / model).is_file()


@pytest.mark.parametrize("package", [PACKAGE_2D, PACKAGE_3D], ids=["2d", "3d"])
def test_shipped_package_passes_runner_test(package):
    res = run("test", package)
    assert res.exit_code == 0, res.output
    assert "result: PASSED" in res.output


@pytest.mark.parametrize("package", [PACKAGE_2D, PACKAGE_3D], ids=["2d", "3d"])
def test_shipped_package_is_tuned_and_documented(package):
    from runner.inference import load_package

    pkg = load_package(package)
    try:
        cfg = pkg.runner_config
        assert cfg.targets and pkg.postprocessing is not None
        tuned = cfg.tuned_on
        assert tuned.score >= tuned.default_score and tuned.metric == "accuracy@0.5"
        assert cfg.validation.n_images == len(tuned.images) > 0
        assert set(pkg.weight_formats) >= {"torchscript", "onnx", "pytorch_state_dict"}
    finally:
        pkg.close()


def test_2d_package_on_the_example_images(tmp_path):
    """The six bundled images (part of the tuning split): the demo's numbers, with TTA from the package."""
    out = tmp_path / "out"
    res = run("predict", PACKAGE_2D, "--input", EXAMPLES / "x", "--gt", EXAMPLES / "y", "--output", out, "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run_config.json").read_text())["options"]["tta"] is True
    assert _accuracy(out) > 0.75


def test_3d_package_on_fresh_synthetic_volumes(tmp_path):
    """Volumes from another seed than training and tuning: the 3D path end to end on unseen data."""
    from runner.synthetic import make_dataset

    make_dataset(tmp_path / "data", ndim=3, n_train=1, n_val=2, seed=101)
    val = tmp_path / "data" / "val"
    out = tmp_path / "out"
    res = run("predict", PACKAGE_3D, "--input", val / "x", "--gt", val / "y", "--output", out, "-q")
    assert res.exit_code == 0, res.output
    assert _accuracy(out) > 0.8


def test_zoo_readme_lists_every_package():
    text = (ZOO / "README.md").read_text()
    for package in ZOO.glob("*.zip"):
        assert package.name in text
    for package in (PACKAGE_2D, PACKAGE_3D):
        with zipfile.ZipFile(package) as zf:
            rdf = yaml.safe_load(zf.read("rdf.yaml"))
            assert "# Validation" in zf.read("README.md").decode()
        assert rdf["format_version"] == "0.5.4"
