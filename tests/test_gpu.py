"""CUDA paths (``-m gpu``; benchmarks/gpu_round.sh runs them on a borrowed GPU): training with mixed precision
and a wall-time budget, and ``runner predict`` on the GPU giving the CPU's instances, both through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from test_training import tiny  # noqa: I001  (tests/ is on sys.path under pytest)
from typer.testing import CliRunner

from runner.cli import app
from runner.recipes import save_recipe
from runner.training import load_checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _cli(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def test_train_on_cuda_with_amp_and_budget(dataset2d, tmp_path):
    spec = tmp_path / "tiny.yaml"
    save_recipe(tiny(2, training={"iterations": 60}), spec)
    run = tmp_path / "run"
    res = _cli(
        "train", spec, "--data", dataset2d, "--out", run, "--device", "cuda", "--amp",
        "--max-minutes", "2", "--checkpoint-minutes", "0.05", "--no-progress",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["iteration"] == 60 and ckpt["recipe"]["training"]["amp"] is True
    losses = [row["loss"] for row in ckpt["history"] if "loss" in row]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_predict_on_cuda_gives_the_cpu_instances(tmp_path):
    from pathlib import Path

    pkg = Path(__file__).resolve().parents[1] / "zoo_packages" / "unet2d_bcd_nuclei_dsb2018.zip"
    images = Path(__file__).resolve().parents[1] / "zoo_packages" / "examples" / "dsb2018" / "x"
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        res = _cli("predict", pkg, "--input", images, "--output", out, "--device", device, "-q",
                   "--weights", "torchscript")  # fmt: skip
        assert res.exit_code == 0, res.output
        outs[device] = {p.name: tifffile.imread(p) for p in sorted((out / "instances").glob("*.tif"))}
    assert outs["cpu"].keys() == outs["cuda"].keys() and outs["cpu"]
    for name, cpu in outs["cpu"].items():
        gpu = outs["cuda"][name]
        agree = np.mean((cpu > 0) == (gpu > 0))
        assert agree > 0.999, (name, agree)
        assert abs(int(cpu.max()) - int(gpu.max())) <= max(2, int(0.02 * cpu.max())), name
