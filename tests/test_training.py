"""Training: a tiny U-Net learns on synthetic 2D/3D data; run folder, load_run, class head, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from runner.cli import app
from runner.recipes import merge, save_recipe
from runner.training import load_run, train
from tests._export_fixtures import tiny_recipe


def tiny(dims: int = 2, **override) -> object:
    """A recipe small enough to train in seconds on a CPU (the exporter tests' recipe, 40 iterations)."""
    return tiny_recipe(dims, **merge({"name": "tiny", "training": {"iterations": 40}}, override))


def _rows(run: Path) -> list[dict]:
    with open(run / "train_log.csv") as f:
        return list(csv.DictReader(f))


def test_train_2d_loss_drops_and_run_folder(dataset2d, tmp_path):
    run = tmp_path / "run"
    result = train(tiny(2), dataset2d, run, progress=False)
    assert result.iteration == 40 and not result.interrupted
    for name in (
        "recipe.yaml",
        "train_log.csv",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "charts/loss.png",
        "charts/val_metric.png",
    ):
        assert (run / name).is_file(), name
    rows = _rows(run)
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses[-1] < 0.8 * losses[0]
    val = [r for r in rows if r["val_metric"]]
    assert [int(r["iteration"]) for r in val] == [20, 40]
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in val)
    assert result.best_iteration in (20, 40)
    assert result.best_value == pytest.approx(max(float(r["val_metric"]) for r in val), abs=1e-6)


def test_load_run_and_checkpoint_content(dataset2d, tmp_path):
    run = tmp_path / "run"
    train(
        tiny(2, training={"iterations": 10}, validation={"every": 10, "metric": "loss"}),
        dataset2d,
        run,
        progress=False,
    )
    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=True)  # plain data only
    for key in (
        "model_state",
        "optimizer_state",
        "scheduler_state",
        "rng",
        "iteration",
        "best",
        "recipe",
        "target_code",
        "channel_specs",
        "preprocessing",
        "architecture",
        "size_rule",
        "halo",
    ):
        assert key in ckpt, key
    assert ckpt["target_code"] == "BCD" and ckpt["channel_names"] == ["B", "C", "D"]
    assert ckpt["preprocessing"]["bioimageio"]["id"] == "scale_range"
    loaded = load_run(run)
    assert loaded.meta.iteration == 10 and not loaded.model.training
    from runner.io import find_pairs, read_image

    image = read_image(find_pairs(dataset2d / "val")[0].image).data
    out = loaded.predict(image[:, :70, :90])
    assert out.shape == (3, 70, 90) and out[:2].min() >= 0 and out[:2].max() <= 1
    tiled = loaded.predict(image, tile=(64, 64))
    assert tiled.shape == (3, 96, 96)
    # the stored kwargs rebuild the network with the architecture module alone
    arch = ckpt["architecture"]
    import importlib

    net = getattr(importlib.import_module(arch["module"]), arch["class_name"])(**arch["kwargs"])
    net.load_state_dict(ckpt["model_state"])


def test_train_3d_loss_drops(dataset3d, tmp_path):
    run = tmp_path / "run3d"
    recipe = tiny(
        3,
        training={"iterations": 30},
        validation={"every": 30},
        postprocessing={"params": {"min_seed_size": 5, "min_size": 20}},
    )
    result = train(recipe, dataset3d, run, progress=False)
    assert result.iteration == 30
    losses = [float(r["loss"]) for r in _rows(run) if r["loss"]]
    assert losses[-1] < 0.85 * losses[0]
    assert load_run(run).model(torch.zeros(1, 1, 8, 8, 8)).shape == (1, 3, 8, 8, 8)


def test_early_stopping(dataset2d, tmp_path):
    recipe = tiny(2, validation={"every": 5, "metric": "loss", "patience": 2, "min_delta": 100.0})
    result = train(recipe, dataset2d, tmp_path / "run", progress=False)
    assert result.stopped_early and result.iteration == 15  # best at 5, no improvement at 10 and 15
    assert result.best_iteration == 5
    assert torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)["iteration"] == 5


def test_nan_loss_is_a_clear_error(dataset2d, tmp_path, monkeypatch):
    from runner.errors import UserError
    from runner.training.losses import InstanceLoss, LossResult

    original = InstanceLoss.__call__

    def nan_loss(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        return LossResult(total=result.total * float("nan"), parts=result.parts)

    monkeypatch.setattr(InstanceLoss, "__call__", nan_loss)
    with pytest.raises(UserError, match="loss became nan at iteration 1.*lower optimizer.lr"):
        train(tiny(2, training={"iterations": 3}), dataset2d, tmp_path / "run", progress=False)


def test_class_head(tmp_path):
    """Label files with a class channel and targets.n_classes > 2 train a softmax class head."""
    from runner.io import write_tiff
    from runner.synthetic import random_blobs, render

    for split, n in (("train", 2), ("val", 1)):
        (tmp_path / "d" / split / "x").mkdir(parents=True)
        (tmp_path / "d" / split / "y").mkdir(parents=True)
        for i in range(n):
            labels = random_blobs((64, 64), 8, seed=i + 10 * len(split))
            classes = np.where(labels > 0, 1 + labels % 2, 0).astype(np.uint16)
            write_tiff(tmp_path / "d" / split / "x" / f"{i}.tif", render(labels, seed=i), axes="yx")
            write_tiff(
                tmp_path / "d" / split / "y" / f"{i}.tif",
                np.stack([labels, classes]).astype(np.uint16),
                axes="cyx",
            )
    recipe = tiny(2, targets={"n_classes": 3}, training={"iterations": 6}, validation={"every": 6})
    train(recipe, tmp_path / "d", tmp_path / "run", progress=False)
    rows = [r for r in _rows(tmp_path / "run") if r["loss_class"]]
    assert rows and float(rows[-1]["loss_class"]) > 0
    loaded = load_run(tmp_path / "run")
    assert loaded.meta.channel_names == ["B", "C", "D", "class_0", "class_1", "class_2"]
    out = loaded.model(torch.zeros(1, 1, 16, 16))
    assert torch.allclose(out[:, 3:].sum(1), torch.ones(1, 16, 16), atol=1e-5)


def test_class_head_needs_class_channel(dataset2d, tmp_path):
    from runner.errors import UserError

    with pytest.raises(UserError, match="no class channel"):
        train(tiny(2, targets={"n_classes": 3}), dataset2d, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_split_fraction_and_gradient_anomaly(tmp_path):
    """A folder without train/val is split by data.val_fraction; GA weights are precomputed per image."""
    from runner.synthetic import make_dataset
    from runner.training.data import load_datasets

    make_dataset(tmp_path / "d", ndim=2, n_train=5, n_val=0, shape=(64, 64), n_objects=6)
    recipe = tiny(2, data={"val_fraction": 0.4}, loss={"gradient_anomaly": {"window_size": 6}})
    data = load_datasets(tmp_path / "d", recipe, progress=False)
    assert len(data.train) == 3 and len(data.val) == 2
    assert {s.name for s in data.train}.isdisjoint({s.name for s in data.val})
    assert data.train[0].weights is not None and data.train[0].weights.max() > 1.0
    again = load_datasets(tmp_path / "d", recipe, progress=False)  # the split is seeded
    assert [s.name for s in again.val] == [s.name for s in data.val]


# ------------------------------------------------------------------------------------------------ CLI


def _cli(*args: str):
    return CliRunner().invoke(app, ["train", *args, "--no-progress"])


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_cli_train_runs(dataset2d, tmp_path):
    spec = save_recipe(tiny(2, validation={"every": 5, "metric": "loss"}), tmp_path / "tiny.yaml")
    result = _cli(
        str(spec),
        "--data",
        str(dataset2d),
        "--out",
        str(tmp_path / "run"),
        "--iterations",
        "5",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "trained 5/5 iterations" in result.output
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    again = _one_line_error(_cli(str(spec), "--data", str(dataset2d), "--out", str(tmp_path / "run")))
    assert "run folder exists" in again and "--resume" in again


def test_cli_bad_data(tmp_path, dataset2d):
    spec = save_recipe(tiny(2), tmp_path / "tiny.yaml")
    empty = tmp_path / "empty"
    (empty / "train" / "x").mkdir(parents=True)
    (empty / "train" / "y").mkdir(parents=True)
    out = tmp_path / "run"
    assert "no images found" in _one_line_error(_cli(str(spec), "--data", str(empty), "--out", str(out)))
    assert not out.exists()
    big = save_recipe(tiny(2, data={"patch": [128, 128], "pad_mode": "none"}), tmp_path / "big.yaml")
    msg = _one_line_error(_cli(str(big), "--data", str(dataset2d), "--out", str(out)))
    assert "larger than every training image" in msg and "pad_mode" in msg
    assert not out.exists()
    msg = _one_line_error(_cli(str(spec), "--data", str(dataset2d), "--out", str(out), "--resume"))
    assert "nothing to resume" in msg
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_missing(tmp_path, dataset2d):
    spec = save_recipe(tiny(2), tmp_path / "tiny.yaml")
    msg = _one_line_error(
        _cli(str(spec), "--data", str(dataset2d), "--out", str(tmp_path / "run"), "--device", "cuda")
    )
    assert "no CUDA device" in msg and "--device cpu" in msg
    assert not (tmp_path / "run").exists()


def test_cli_wrong_dims(tmp_path, dataset3d):
    spec = save_recipe(tiny(2), tmp_path / "tiny.yaml")
    msg = _one_line_error(_cli(str(spec), "--data", str(dataset3d), "--out", str(tmp_path / "run")))
    assert "3D" in msg and "2D model" in msg
