"""``runner export`` bad input (exit 2, one-line error, nothing written) and the exporter's small helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import UserError
from tests._export_fixtures import make_run


@pytest.fixture(scope="module")
def run2d(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("exportcli"), 2)


def export(*args) -> object:
    return CliRunner().invoke(app, ["export", *map(str, args), "--no-progress"])


def error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_run_without_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    result = export(tmp_path / "run", "--out", tmp_path / "m.zip")
    assert result.exit_code == 2
    assert "no checkpoint" in error_line(result)
    assert leftovers(tmp_path) == ["run"]


def test_output_folder_missing(run2d, tmp_path):
    result = export(run2d[0], "--out", tmp_path / "nope" / "m.zip")
    assert result.exit_code == 2
    assert "output folder does not exist" in error_line(result)
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--weights", "tensorflow"], "unknown weight format 'tensorflow'"),
        (["--weights", ","], "no weight format"),
        (["--name", "a/b"], "--name: model name 'a/b'"),
        (["--checkpoint", "middle"], "--checkpoint must be best or last"),
    ],
)
def test_bad_options(run2d, tmp_path, args, needle):
    result = export(run2d[0], "--out", tmp_path / "m.zip", *args)
    assert result.exit_code == 2
    assert needle in error_line(result)
    assert leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(run2d, tmp_path):
    (tmp_path / "m.zip").write_text("keep me")
    result = export(run2d[0], "--out", tmp_path / "m.zip")
    assert result.exit_code == 2
    assert "--overwrite" in error_line(result)
    assert (tmp_path / "m.zip").read_text() == "keep me"


def test_reproducibility_failure_writes_nothing(run2d, tmp_path):
    # zero tolerance: ONNX and bioimageio.core's float32 preprocessing differ in the last bits
    result = export(run2d[0], "--out", tmp_path / "m.zip", "--atol", "0", "--rtol", "0", "--weights", "onnx")
    assert result.exit_code == 2
    line = error_line(result)
    assert "failed validation, nothing written" in line and "Reproduce test outputs" in line
    assert "[FAIL]" in result.output and "result: FAILED" in result.output  # the report
    assert leftovers(tmp_path) == []  # no zip, no temporary file


class _FFTNet(torch.nn.Module):
    """The trained U-Net followed by an FFT magnitude: an operation ONNX cannot express."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y + torch.fft.fft2(y).abs() * 0.0


def test_op_onnx_cannot_express_is_named(run2d, tmp_path, monkeypatch):
    import runner.training as training

    real = training.load_run

    def patched(*args, **kwargs):
        loaded = real(*args, **kwargs)
        loaded.model = _FFTNet(loaded.model).eval()
        return loaded

    monkeypatch.setattr(training, "load_run", patched)
    result = export(run2d[0], "--out", tmp_path / "m.zip", "--weights", "torchscript,onnx")
    assert result.exit_code == 2
    line = error_line(result)
    assert "cannot be exported to ONNX" in line and "aten::fft_fft2" in line
    assert "--weights torchscript,state_dict" in line
    assert leftovers(tmp_path) == []


def test_moved_data_needs_data_option(run2d, tmp_path):
    run, data = run2d
    moved = tmp_path / "moved_data"
    shutil.copytree(data, moved)
    shutil.move(str(data), str(tmp_path / "elsewhere"))  # the training-time path is gone
    try:
        result = export(run, "--out", tmp_path / "m.zip")
        assert result.exit_code == 2
        assert "--data" in error_line(result)
        # with --data, one weight format only (TorchScript becomes the entry without parent)
        result = export(run, "--out", tmp_path / "m.zip", "--data", moved, "--weights", "torchscript")
        assert result.exit_code == 0, result.output
    finally:
        shutil.move(str(tmp_path / "elsewhere"), str(data))
    import zipfile

    import yaml

    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        assert "weights.onnx" not in zf.namelist()
    assert list(rdf["weights"]) == ["torchscript"] and "parent" not in rdf["weights"]["torchscript"]
    # a name, never the author's absolute path (issue 14: published packages do not name the machine)
    assert rdf["config"]["runner"]["validation"]["source"] == "moved_data/val"
    assert not str(rdf["config"]["runner"]["training"]["data_dir"]).startswith("/")


# ------------------------------------------------------------------------------------------- helpers


def test_parse_formats_aliases_and_order():
    from exporters.weights import parse_formats

    assert parse_formats("onnx, state_dict,torchscript") == ["pytorch_state_dict", "torchscript", "onnx"]
    assert parse_formats(["pt", "onnx"]) == ["torchscript", "onnx"]
    with pytest.raises(UserError, match="unknown weight format 'keras'"):
        parse_formats("keras")


def test_input_size_rule_leaves_a_pixel_inside_the_halo():
    from exporters.rdf import input_size_rule

    mins, steps = input_size_rule((16, 16), (16, 16), (112, 112))
    assert mins == (240, 240) and steps == (16, 16)
    assert input_size_rule((4,), (4,), (0,)) == ((4,), (4,))
    assert input_size_rule((8, 8, 8), (8, 8, 8), (56, 24, 24)) == ((120, 56, 56), (8, 8, 8))


def test_architecture_must_be_self_contained(tmp_path):
    from exporters.weights import check_self_contained

    ok = tmp_path / "ok.py"
    ok.write_text("import math\nimport torch\nfrom torch import nn\n")
    check_self_contained(ok)
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nimport numpy as np\nfrom runner.models import x\n")
    with pytest.raises(UserError, match="imports numpy, runner.models"):
        check_self_contained(bad)


def test_unsupported_svd_is_named(tmp_path):
    from exporters.weights import write_onnx

    class SVD(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x)[1]

    with pytest.raises(UserError, match="operator aten::linalg_svd has no ONNX opset-17 equivalent"):
        write_onnx(SVD(), tmp_path, ndim=2, in_channels=1, sizes=(8, 8))


def test_display_name():
    from exporters.options import display_name

    assert display_name("unet2d_bcd.v2") == "unet2d_bcd-v2"
    assert display_name("abc") == "abc-model"
