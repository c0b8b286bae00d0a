"""The typed hand-offs (``runner.contracts``): every shipped package's ``config.runner`` reads back unchanged,
and a package or checkpoint of a newer bmz-runner, or a mistyped block, is refused with one line (exit 2)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from typer.testing import CliRunner

from runner.cli import app
from runner.contracts import RunMeta, RunnerConfig, dump_runner_config, parse_run_meta, parse_runner_config
from runner.errors import UserError
from tests._packages import build_package

ZOO = Path(__file__).resolve().parents[1] / "zoo_packages"
SHIPPED = sorted(ZOO.glob("*.zip"))


def _runner_block(package: Path) -> dict:
    with zipfile.ZipFile(package) as zf:
        return yaml.safe_load(zf.read("rdf.yaml"))["config"]["runner"]


@pytest.mark.parametrize("package", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_config_runner_round_trips(package):
    raw = _runner_block(package)
    cfg = parse_runner_config(raw, path=package)
    assert cfg.format == RunnerConfig.current_format() and cfg.target_code == "BCD"
    assert cfg.postprocessing.name == raw["postprocessing"]["name"]
    assert cfg.tuned_on.score == raw["tuned_on"]["score"]
    assert cfg.size_rule.min == raw["size_rule"]["min"]
    assert dump_runner_config(cfg) == raw  # nothing lost, renamed or re-typed
    assert list(dump_runner_config(cfg)) == list(raw)  # written in the same order


def test_hand_written_block_and_unknown_keys():
    cfg = parse_runner_config({"targets": "BC", "postprocessing": "threshold_cc", "from_a_newer_minor": 1})
    assert cfg.target_code == "BC" and cfg.postprocessing.params == {}
    assert cfg.model_extra == {"from_a_newer_minor": 1}
    assert dump_runner_config(cfg)["from_a_newer_minor"] == 1
    assert cfg.format == RunnerConfig.current_format()


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({"format": "bmz-runner.package/99"}, r"config.runner was written by a newer bmz-runner .*/99"),
        ({"format": "someone-else/1"}, r"config.runner.format: format must be 'bmz-runner.package/<N>'"),
        ({"halo": "wide"}, r"config.runner.halo: Input should be a valid list"),
        ({"postprocessing": {"params": {}}}, r"config.runner.postprocessing.name: Field required"),
        (["a", "list"], r"config.runner must be a mapping"),
    ],
)
def test_bad_blocks_are_one_line_errors(block, match):
    with pytest.raises(UserError, match=match) as info:
        parse_runner_config(block, path="model.zip")
    assert "\n" not in str(info.value) and str(info.value).startswith("model.zip:")


@pytest.mark.parametrize("command", ["predict", "tune", "test"])
def test_commands_refuse_a_package_from_a_newer_runner(tmp_path, command):
    block = {"format": "bmz-runner.package/2", "targets": "BC", "postprocessing": {"name": "threshold_cc"}}
    pkg = build_package(tmp_path / "newer", runner_config=block)
    tifffile.imwrite(tmp_path / "img.tif", np.zeros((32, 32), np.uint8))
    out = tmp_path / "out"
    args = {
        "predict": ["--input", str(tmp_path / "img.tif"), "--output", str(out), "-q"],
        "tune": ["--data", str(ZOO / "examples" / "dsb2018"), "--out", str(out), "-q"],
        "test": [],
    }[command]
    result = CliRunner().invoke(app, [command, str(pkg.folder), *args])
    assert result.exit_code == 2, result.output
    assert "written by a newer bmz-runner" in result.output and "pip install -U bmz-runner" in result.output
    assert not out.exists()


def _meta(**override) -> dict:
    meta = {
        "format": RunMeta.current_format(),
        "recipe": {"name": "r"},
        "target_code": "BC",
        "channel_specs": [],
        "channel_names": ["B", "C"],
        "activations": ["sigmoid", "sigmoid"],
        "preprocessing": {"recipe": {}, "bioimageio": {}},
        "architecture": {"name": "unet", "module": "m", "class_name": "C", "kwargs": {}},
        "size_rule": {"min": [16, 16], "step": [16, 16]},
        "halo": [8, 8],
        "receptive_field": [20, 20],
        "postprocessing": {"name": "watershed_bc", "params": {}},
        "model_state": {"w": torch.zeros(1)},
    }
    return {**meta, **override}


def test_run_meta_skips_tensors_and_fills_defaults():
    meta = parse_run_meta(_meta())
    assert meta.iteration == 0 and meta.best.rounds_without_improvement == 0 and meta.data.train_images == []
    assert "model_state" not in meta.model_dump()


def test_export_refuses_a_checkpoint_from_a_newer_runner(tmp_path):
    ckpt = tmp_path / "newer.pt"
    torch.save(_meta(format="bmz-runner.checkpoint/7", iteration="unknown"), ckpt)
    result = CliRunner().invoke(app, ["export", str(ckpt), "--out", str(tmp_path / "m.zip"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "checkpoint metadata was written by a newer bmz-runner" in result.output
    assert not (tmp_path / "m.zip").exists()
