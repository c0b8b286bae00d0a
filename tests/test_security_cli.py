"""Hostile packages through the CLI (issue 14): exit 2, one line naming the file and the fix, nothing written,
deleted or executed. The inputs come from ``tests/hostile_corpus.py``."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from typer.testing import CliRunner

from runner.cli import app
from tests import hostile_corpus as hc
from tests._packages import build_package

RUNNER_CONFIG = {"targets": "BC", "postprocessing": {"name": "threshold_cc", "params": {"threshold": 0.5}}}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A tiny package with TorchScript, ONNX and state-dict weights and a declared post-processor."""
    root = tmp_path_factory.mktemp("base")
    formats = ("torchscript", "onnx", "pytorch_state_dict")
    return build_package(root / "model", formats=formats, runner_config=RUNNER_CONFIG).folder


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "a.tif", (rng.random((40, 48)) * 200).astype(np.uint8))
    return folder


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The process's temp folder, to check that nothing is left in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def predict(model, images, out, *extra) -> tuple[int, str]:
    return run("predict", model, "-i", images, "-o", out, "--quiet", *extra)


def test_yaml_alias_bomb_is_refused_before_it_expands(base, images, tmp_path, private_tmp):
    bomb = hc.make_bomb_package(base, tmp_path / "bomb")
    zipped = hc.zip_package(bomb, tmp_path / "bomb.zip")
    for model in (bomb, zipped):
        code, out = predict(model, images, tmp_path / "out")
        assert code == 2 and "YAML aliases" in error_line(out) and "rdf.yaml" in error_line(out)
    code, out = run("test", zipped)
    assert code == 2 and "YAML aliases" in error_line(out)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(hc.yaml_bomb_text())
    code, out = run("train", recipe, "--data", images, "--out", tmp_path / "run")
    assert code == 2 and "YAML aliases" in error_line(out)
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("where", ["absolute", "dotdot", "link"])
def test_weights_outside_the_package_are_refused_without_fallback(base, images, tmp_path, where):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((base / "weights.onnx").read_bytes() if (base / "weights.onnx").exists() else b"x")
    if where == "link":
        pkg = hc.copy_package(base, tmp_path / "pkg")
        (pkg / "linked.onnx").symlink_to(outside)
        hc.edit_rdf(pkg, lambda d: d["weights"]["onnx"].update(source="linked.onnx", sha256=None))
    else:
        ref = str(outside) if where == "absolute" else "../outside.onnx"
        pkg = hc.make_outside_reference(base, tmp_path / "pkg", ref)
    code, out = predict(pkg, images, tmp_path / "out")
    line = error_line(out)
    assert code == 2 and "weights.onnx.source" in line and "outside the package" in line
    assert "predicted" not in out and not (tmp_path / "out").exists()  # no silent TorchScript fallback


@pytest.mark.parametrize("op", ["from_file", "save", "function"])
def test_torchscript_with_file_ops_is_refused_without_trust(base, images, tmp_path, op):
    marker = tmp_path / "MARKER"
    weights = hc.evil_torchscript(tmp_path / "evil.pt", marker, op=op)
    pkg = hc.make_torchscript_package(base, tmp_path / "pkg", weights)
    code, out = predict(pkg, images, tmp_path / "out", "--no-postprocess")
    line = error_line(out)
    name = "aten::save" if op == "function" else f"aten::{op}"
    assert code == 2 and name in line and "--trust-code" in line
    if op == "from_file":
        assert "inner.helper" in line  # the nested submodule's method is named
    code, out = run("test", pkg)
    assert code == 2 and name in error_line(out)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_torchscript_setstate_is_refused_before_loading(base, images, tmp_path):
    pkg = hc.make_torchscript_package(base, tmp_path / "pkg", hc.setstate_torchscript(tmp_path / "s.pt"))
    code, out = predict(pkg, images, tmp_path / "out", "--no-postprocess")
    assert code == 2 and "__setstate__" in error_line(out)


def test_pickle_weights_get_one_line_without_weights_only_false(base, images, tmp_path):
    pkg = hc.make_pickle_weights(base, tmp_path / "pkg")
    code, out = predict(pkg, images, tmp_path / "out", "--weights", "pytorch_state_dict", "--trust-code")
    line = error_line(out)
    assert code == 2 and "pickle" in line and "weights_only=False" not in out
    assert len([ln for ln in out.splitlines() if ln.strip()]) == 1


def test_not_a_model_and_too_large_minimum_input(base, images, tmp_path):
    code, out = predict(hc.make_dataset_rdf(tmp_path / "ds"), images, tmp_path / "out")
    assert code == 2 and "not a model" in error_line(out)
    big = hc.make_min_size_package(base, tmp_path / "big")
    code, out = predict(big, images, tmp_path / "out")
    line = error_line(out)
    assert code == 2 and "memory budget" in line and "--max-memory" in line and str(big) in line
    code, out = run("--max-memory", "nonsense", "predict", big, "-i", images, "-o", tmp_path / "out")
    assert code == 2 and "--max-memory" in error_line(out)
    assert not (tmp_path / "out").exists()


def test_zip_bomb_is_not_unpacked(images, tmp_path, private_tmp):
    bomb = hc.make_zip_bomb(tmp_path / "bomb.zip")
    code, out = predict(bomb, images, tmp_path / "out")
    assert code == 2 and "zip bomb" in error_line(out) and "weights.onnx" in error_line(out)
    assert list(private_tmp.iterdir()) == []


def test_tune_runs_no_package_code_and_publishes_only_referenced_files(base, tmp_path, dataset2d):
    marker = tmp_path / "MARKER"
    secret = tmp_path / "secret.txt"
    secret.write_text("private\n")
    pkg = hc.make_private_folder(
        hc.make_code_package(base, tmp_path / "code", marker), tmp_path / "pkg", secret
    )
    out = tmp_path / "tuned.zip"
    args = ("tune", pkg, "--data", dataset2d / "val", "--out", out, "--quiet", "--grid", "threshold=0.4,0.5")
    code, output = run(*args, "--rounds", "1")
    assert code == 0, output
    assert not marker.exists()  # neither tuning nor the final test imported the architecture source
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    assert names == {"rdf.yaml", *hc_referenced(rdf)}
    assert not {"private_notes.txt", "private_link.txt", "sub/also_private.txt"} & names
    assert not str(rdf["config"]["runner"]["tuned_on"]["data"]).startswith("/")
    # a package that can only run its own code needs consent, and says so
    only_code = hc.make_code_package(base, tmp_path / "only_code", marker, keep_onnx=False)
    code, output = run(
        "tune", only_code, "--data", dataset2d / "val", "--out", tmp_path / "t2.zip", "--quiet"
    )
    assert code == 2 and "--trust-code" in error_line(output)
    assert not marker.exists() and not (tmp_path / "t2.zip").exists()


def hc_referenced(rdf: dict) -> set[str]:
    from runner.safety import referenced_files

    return set(referenced_files(rdf))


def test_remote_documentation_is_allowed_but_remote_weights_are_not(base, images, tmp_path):
    """Zoo rdfs often link their README and covers by URL: runner never fetches them, so they do not block;
    a remote weight file would be read, so it is refused (offline, and outside the package)."""
    pkg = hc.copy_package(base, tmp_path / "pkg")

    def remote_docs(d):
        d["covers"] = [{"source": "https://example.com/cover.png"}]
        d["documentation"] = {"source": "https://example.com/README.md"}

    hc.edit_rdf(pkg, remote_docs)
    code, out = predict(pkg, images, tmp_path / "out", "--no-postprocess")
    assert code == 0, out
    hc.edit_rdf(pkg, lambda d: d["weights"]["onnx"].update(source="https://example.com/w.onnx", sha256=None))
    code, out = predict(pkg, images, tmp_path / "out2", "--no-postprocess", "--weights", "onnx")
    assert code == 2 and "remote URL" in error_line(out) and not (tmp_path / "out2").exists()


def test_allow_list_keeps_network_ops_and_refuses_side_effects():
    from runner.safety.trust import op_allowed

    for op in (
        "aten::conv2d",
        "aten::_convolution",
        "aten::relu",
        "aten::cat",
        "aten::upsample_nearest2d",
        "aten::batch_norm",
        "aten::max_pool3d",
        "aten::sigmoid",
        "prim::If",
        "prim::Loop",
        "prim::ListConstruct",
        "prim::GetAttr",
        "prim::Constant",
        "aten::size",
        "aten::__getitem__",
    ):
        assert op_allowed(op), op
    for op in (
        "aten::from_file",
        "aten::save",
        "aten::set_",
        "aten::_unsafe_index",
        "prim::rpc_async",
        "torchvision::nms",
        "c10d::allreduce_",
        "profiler::_record_function_enter",
        "prim::PythonOp",
    ):
        assert not op_allowed(op), op


ZOO = Path(__file__).resolve().parents[1] / "zoo_packages"


@pytest.mark.parametrize("package", sorted(p.name for p in ZOO.glob("*.zip")))
def test_shipped_packages_name_no_local_paths(package):
    from runner.safety.paths import local_paths_in, scrub_text

    with zipfile.ZipFile(ZOO / package) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        readme = zf.read("README.md").decode("utf-8")
    assert local_paths_in(rdf.get("config")) == []
    assert [ln for ln in readme.splitlines() if scrub_text(ln) != ln] == []
