"""Exporting tiny trained 2D/3D runs: package content, bioimageio.core's test, format agreement, TorchScript
without our code, the 0.5.4 rdf form, and the offline package check."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app
from runner.contracts import RunnerConfig, dump_runner_config, parse_runner_config
from tests._export_fixtures import make_run


@pytest.fixture(scope="session")
def run2d(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("export2d"), 2)


@pytest.fixture(scope="session")
def run3d(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("export3d"), 3)


@pytest.fixture(scope="session")
def pkg2d(run2d, tmp_path_factory):
    """A 2D zip package exported through the CLI."""
    out = tmp_path_factory.mktemp("pkg2d") / "tiny2d.zip"
    result = CliRunner().invoke(app, ["export", str(run2d[0]), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "checks passed" in result.output
    return out


@pytest.fixture(scope="session")
def pkg3d(run3d, tmp_path_factory):
    """A 3D package written as a folder, through the Python API."""
    from exporters.build import export_package

    out = tmp_path_factory.mktemp("pkg3d") / "tiny3d_package"
    result = export_package(run3d[0], out, checkpoint="last")
    assert result.report.passed
    return out


def _unpack(pkg: Path, tmp_path: Path) -> Path:
    if pkg.is_dir():
        return pkg
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(pkg) as zf:
        zf.extractall(folder)
    return folder


def _rdf(folder: Path) -> dict:
    return yaml.safe_load((folder / "rdf.yaml").read_text())


@pytest.mark.parametrize("which", ["pkg2d", "pkg3d"])
def test_package_layout_and_rdf(which, request, tmp_path):
    pkg = request.getfixturevalue(which)
    folder = _unpack(pkg, tmp_path)
    rdf = _rdf(folder)
    ndim = 2 if which == "pkg2d" else 3
    for name in (
        "README.md",
        "cover.png",
        "test_input.npy",
        "test_output.npy",
        "sample_input.tif",
        "sample_output.tif",
        "weights.onnx",
        "weights_torchscript.pt",
        "weights_state_dict.pt",
        "unet.py",
    ):
        assert (folder / name).is_file(), name
    # the 0.5.4 form older spec releases read
    assert rdf["format_version"] == "0.5.4"
    assert rdf["covers"] == ["cover.png"] and rdf["documentation"] == "README.md"
    # explicit axis ids; parameterized input; output sized by reference with a halo
    space = ["z", "y", "x"][-ndim:]
    inp, out = rdf["inputs"][0], rdf["outputs"][0]
    assert [a["id"] for a in inp["axes"]] == ["batch", "channel", *space]
    assert [a["id"] for a in out["axes"]] == ["batch", "channel", *space]
    rc = rdf["config"]["runner"]
    parsed = parse_runner_config(rc)  # what predict/tune/test read back: the same, fully typed
    assert dump_runner_config(parsed) == rc and parsed.format == RunnerConfig.current_format()
    assert parsed.training.iteration == 20 and parsed.postprocessing.name == "watershed_bcd"
    for a_in, a_out, halo, rule in zip(
        inp["axes"][2:], out["axes"][2:], rc["halo"], rc["size_rule"]["step"], strict=True
    ):
        assert a_in["size"]["step"] == rule and a_in["size"]["min"] - 2 * halo >= 1
        assert a_out["size"] == {"tensor_id": "raw", "axis_id": a_in["id"]}
        assert a_out["halo"] == halo > 0
    assert all(
        2 * h + 1 >= rf for h, rf in zip(rc["halo"], rc["receptive_field"], strict=True)
    )  # covers the field
    assert [p["id"] for p in inp["preprocessing"] if p["id"] != "ensure_dtype"] == ["scale_range"]
    assert out["axes"][1]["channel_names"] == ["B", "C", "D"]
    assert [d.get("range") for d in out["data"]] == [[0.0, 1.0], [0.0, 1.0], None]
    # one weights entry without parent, the others derived from it
    weights = rdf["weights"]
    assert sorted(weights) == ["onnx", "pytorch_state_dict", "torchscript"]
    assert [k for k, v in weights.items() if not v.get("parent")] == ["pytorch_state_dict"]
    assert weights["onnx"]["opset_version"] <= 18
    assert weights["pytorch_state_dict"]["architecture"]["callable"] == "UNet"
    # config blocks
    assert rc["targets"]["code"] == "BCD" and rc["postprocessing"]["name"] == "watershed_bcd"
    assert rc["recipe"]["name"] == f"tiny{ndim}d_bcd"
    assert set(rc["validation"]["metrics"]) >= {"accuracy@0.5", "f1@0.5", "aji"}
    assert rdf["config"]["bioimageio"]["reproducibility_tolerance"][0]["absolute_tolerance"] == 1e-3
    assert rdf["config"]["deepimagej"]["allow_tiling"] is True
    assert [c.get("doi") or c.get("url") for c in rdf["cite"]] == [
        "https://example.com/",
        "10.1007/978-3-319-24574-4_28",
    ]
    assert rdf["authors"] == [{"name": "Test Author", "affiliation": "Lab"}]
    assert {"test", "nuclei", f"{ndim}d", "instance-segmentation"} <= set(rdf["tags"])


def test_test_tensor_is_a_real_validation_crop(pkg2d, run2d, tmp_path):
    from runner.io import read_image

    folder = _unpack(pkg2d, tmp_path)
    rc = _rdf(folder)["config"]["runner"]
    info = rc["test_tensor"]
    assert info["image"] in rc["validation"]["images"]
    x = np.load(folder / "test_input.npy")
    image = read_image(run2d[1] / "val" / "x" / f"{info['image']}.tif").data
    region = tuple(slice(o, o + s) for o, s in zip(info["origin"], info["shape"], strict=True))
    assert x.shape == (1, 1, *info["shape"])
    np.testing.assert_array_equal(x[0], image[(slice(None), *region)])
    readme = (folder / "README.md").read_text()
    assert "# Validation" in readme and "runner predict tiny2d.zip" in readme
    assert f"{rc['validation']['metrics']['accuracy@0.5']:.4f}" in readme


@pytest.mark.parametrize("which", ["pkg2d", "pkg3d"])
def test_bioimageio_core_test_passes(which, request):
    from bioimageio.core import test_description

    pkg = request.getfixturevalue(which)
    summary = test_description(str(pkg), devices=["cpu"])
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert not failed
    names = " ".join(d.name for d in summary.details)
    for fmt in ("onnx", "torchscript", "pytorch_state_dict"):
        assert f"Reproduce test outputs from test inputs ({fmt})" in names


BLOCKED_TORCHSCRIPT = """
import sys, numpy as np
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('runner', 'exporters', 'tests'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import torch
net = torch.jit.load(sys.argv[1], map_location='cpu').eval()
raw = np.load(sys.argv[2])
axes = tuple(range(2, raw.ndim))  # scale_range per channel, as the rdf's preprocessing says
lo = np.percentile(raw, 1.0, axis=axes, keepdims=True)
hi = np.percentile(raw, 99.8, axis=axes, keepdims=True)
x = torch.from_numpy(((raw - lo) / (hi - lo + 1e-6)).astype(np.float32))
with torch.no_grad():
    y = net(x).numpy()
assert not any(m.split('.')[0] in ('runner', 'exporters') for m in sys.modules)
print(float(np.abs(y - np.load(sys.argv[3])).max()))
"""


@pytest.mark.parametrize("which", ["pkg2d", "pkg3d"])
def test_torchscript_loads_without_our_code(which, request, tmp_path):
    folder = _unpack(request.getfixturevalue(which), tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKED_TORCHSCRIPT,
            str(folder / "weights_torchscript.pt"),
            str(folder / "test_input.npy"),
            str(folder / "test_output.npy"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) < 1e-3


def test_onnx_and_torchscript_agree(pkg2d, tmp_path):
    import onnxruntime as ort
    import torch

    folder = _unpack(pkg2d, tmp_path)
    sess = ort.InferenceSession(str(folder / "weights.onnx"), providers=["CPUExecutionProvider"])
    net = torch.jit.load(str(folder / "weights_torchscript.pt")).eval()
    rng = np.random.default_rng(3)
    for x in (np.load(folder / "test_input.npy"), rng.standard_normal((2, 1, 60, 84)).astype(np.float32)):
        onnx_out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        with torch.no_grad():
            ts_out = net(torch.from_numpy(x)).numpy()
        assert onnx_out.shape == ts_out.shape == (x.shape[0], 3, *x.shape[2:])
        np.testing.assert_allclose(onnx_out, ts_out, atol=1e-4, rtol=1e-4)


def test_rdf_validates_as_054_with_string_covers(pkg2d, tmp_path):
    from bioimageio.spec import ValidationContext, build_description
    from bioimageio.spec.model.v0_5 import ModelDescr

    folder = _unpack(pkg2d, tmp_path)
    content = _rdf(folder)
    assert isinstance(content["documentation"], str) and all(isinstance(c, str) for c in content["covers"])
    descr = build_description(content, context=ValidationContext(root=folder, perform_io_checks=True))
    assert isinstance(descr, ModelDescr), descr.validation_summary.format()
    assert descr.validation_summary.status == "valid-format"
    assert str(descr.documentation.source).endswith("README.md")


def test_runner_test_cli_passes_and_reports(pkg2d):
    result = CliRunner().invoke(app, ["test", str(pkg2d), "--trust-code"])
    assert result.exit_code == 0, result.output
    assert "bioimageio.core:" in result.output and "bmz-runner: 3/3 checks passed" in result.output
    assert result.output.strip().endswith("result: PASSED")


def test_runner_test_without_trust_code_skips_state_dict(pkg2d):
    result = CliRunner().invoke(app, ["test", str(pkg2d), "--only", "runner"])
    assert result.exit_code == 0, result.output
    assert "skipped pytorch_state_dict" in result.output
    assert "(pytorch_state_dict)" not in result.output


def test_runner_test_fails_when_weights_do_not_reproduce(pkg2d, tmp_path):
    import hashlib

    from exporters.compat import dump_yaml

    folder = _unpack(pkg2d, tmp_path)
    y = np.load(folder / "test_output.npy")
    np.save(folder / "test_output.npy", y + 0.01)  # outputs the weights no longer reproduce (sha256 updated)
    rdf = _rdf(folder)
    rdf["outputs"][0]["test_tensor"]["sha256"] = hashlib.sha256(
        (folder / "test_output.npy").read_bytes()
    ).hexdigest()
    (folder / "rdf.yaml").write_text(dump_yaml(rdf))
    result = CliRunner().invoke(app, ["test", str(folder), "--weights", "onnx"])
    assert result.exit_code == 1, result.output
    assert "[FAIL] Reproduce test outputs from test inputs (onnx)" in result.output
    assert "[FAIL] runner predict reproduces the test outputs (onnx)" in result.output
    assert result.output.strip().endswith("result: FAILED")


def test_runner_test_offline_with_unknown_github_user(pkg2d, tmp_path):
    from exporters.compat import dump_yaml

    folder = _unpack(pkg2d, tmp_path)
    rdf = _rdf(folder)
    rdf["authors"][0]["github_user"] = "bmz-runner-nobody-4711"  # would need a GitHub API call to verify
    (folder / "rdf.yaml").write_text(dump_yaml(rdf))
    result = CliRunner().invoke(app, ["test", str(folder), "--weights", "onnx"])
    assert result.exit_code == 0, result.output
    assert "bmz-runner-nobody-4711 not verified (offline)" in result.output


@pytest.mark.parametrize("args", [["missing.zip"], ["not_a_zip.zip"], ["rdf_missing"]])
def test_runner_test_bad_input_exit_2(args, tmp_path):
    (tmp_path / "not_a_zip.zip").write_text("hello")
    (tmp_path / "rdf_missing").mkdir()
    result = CliRunner().invoke(app, ["test", str(tmp_path / args[0])])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and args[0] in lines[0]


@pytest.mark.slow
def test_bioimageio_cli_test_passes(pkg2d):
    exe = Path(sys.executable).with_name("bioimageio")
    proc = subprocess.run([str(exe), "test", str(pkg2d)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.slow
def test_compat_matrix_oldest_spec_reads_the_package(pkg2d):
    """bioimageio.spec 0.5.4.1 (in a throw-away venv; needs PyPI) loads the package as format 0.5.4."""
    proc = subprocess.run(
        [sys.executable, "-m", "exporters.compat_matrix", str(pkg2d), "--versions", "0.5.4.1"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    row = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"| {pkg2d.name} ")]
    assert (
        len(row) == 1 and "| 0.5.4.1 |" in row[0] and "| 0.5.4 |" in row[0] and "ok: valid-format" in row[0]
    )
