"""Resume: an interrupted run (stop, Ctrl-C during a step or a validation round) continued with --resume ends
with exactly the weights, optimizer state and log of an uninterrupted run with the same seed."""

from __future__ import annotations

import csv
import os
import signal

import pytest
import torch
from test_training import tiny  # noqa: I001  (tests/ is on sys.path under pytest)
from typer.testing import CliRunner

from runner.cli import app
from runner.recipes import save_recipe
from runner.training import load_checkpoint, train
from runner.training import validate as validate_module
from runner.training.loop import Trainer

TIMING = ("elapsed_s", "val_seconds")


def _recipe():
    # dropout, elastic deformation and noise: every source of randomness takes part
    return tiny(
        2,
        model={"dropout": 0.1},
        training={"iterations": 24, "log_every": 4, "checkpoint_every": 6},
        validation={"every": 8, "metric": "accuracy@0.5"},
        augmentation={"elastic": {"p": 0.5}, "noise": {"p": 0.5}, "gamma": {"p": 0.5}},
        schedule={"name": "cosine", "warmup": 3},
    )


def _log(run) -> list[dict]:
    with open(run / "train_log.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _assert_same_run(a, b):
    ca, cb = load_checkpoint(a / "checkpoints" / "last.pt"), load_checkpoint(b / "checkpoints" / "last.pt")
    assert ca["iteration"] == cb["iteration"] == 24
    for key, value in ca["model_state"].items():
        assert torch.equal(value, cb["model_state"][key]), key
    for sa, sb in zip(
        ca["optimizer_state"]["state"].values(), cb["optimizer_state"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert ca["best"] == cb["best"]
    assert _log(a) == _log(b)
    best_a, best_b = (
        load_checkpoint(a / "checkpoints" / "best.pt"),
        load_checkpoint(b / "checkpoints" / "best.pt"),
    )
    assert best_a["iteration"] == best_b["iteration"]


@pytest.fixture(scope="module")
def data_and_run(tmp_path_factory):
    """One dataset and one uninterrupted run shared by the tests of this module (read-only)."""
    from runner.synthetic import make_dataset

    root = tmp_path_factory.mktemp("resume")
    make_dataset(root / "data", ndim=2, n_train=4, n_val=2, shape=(96, 96), n_objects=12)
    train(_recipe(), root / "data", root / "straight", progress=False)
    return root / "data", root / "straight"


@pytest.fixture
def dataset2d(data_and_run):
    return data_and_run[0]


@pytest.fixture
def uninterrupted(data_and_run):
    return data_and_run[1]


def test_stop_and_resume_is_exact(dataset2d, tmp_path, uninterrupted):
    run = tmp_path / "resumed"
    first = train(_recipe(), dataset2d, run, progress=False, stop_at=10)
    assert first.iteration == 10 and load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == 10
    second = train(_recipe(), dataset2d, run, progress=False, resume=True)
    assert second.iteration == 24
    _assert_same_run(uninterrupted, run)


@pytest.mark.parametrize("where", ["step", "validation"])
def test_ctrl_c_leaves_resumable_checkpoint(where, dataset2d, tmp_path, uninterrupted, monkeypatch):
    """SIGINT (Ctrl-C) at iteration 13, or in the middle of the validation round at iteration 16."""
    run = tmp_path / "interrupted"
    if where == "step":
        original = Trainer.step

        def step(self, batch):
            parts = original(self, batch)
            if self.iteration == 12:  # the 13th step is running
                os.kill(os.getpid(), signal.SIGINT)
            return parts

        monkeypatch.setattr(Trainer, "step", step)
    else:
        original_loss = validate_module._loss
        calls = {"n": 0}

        def loss(fn, logits, sample):
            calls["n"] += 1
            if calls["n"] == 3:  # first image of the second round (iteration 16; 2 validation images)
                os.kill(os.getpid(), signal.SIGINT)
            return original_loss(fn, logits, sample)

        monkeypatch.setattr(validate_module, "_loss", loss)
    result = train(_recipe(), dataset2d, run, progress=False)
    assert result.interrupted
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    if where == "step":
        assert ckpt["iteration"] == 13 and not ckpt["validation_pending"]
    else:
        assert ckpt["iteration"] == 16 and ckpt["validation_pending"]
    monkeypatch.undo()
    train(_recipe(), dataset2d, run, progress=False, resume=True)
    _assert_same_run(uninterrupted, run)


def test_cli_interrupt_exit_code_and_resume_hint(dataset2d, tmp_path, monkeypatch):
    original = Trainer.step

    def step(self, batch):
        parts = original(self, batch)
        if self.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return parts

    monkeypatch.setattr(Trainer, "step", step)
    spec = save_recipe(tiny(2, training={"iterations": 10}), tmp_path / "tiny.yaml")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["train", str(spec), "--data", str(dataset2d), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 130
    assert "interrupted at iteration 3/10" in result.output and "--resume" in result.output
    assert load_checkpoint(out / "checkpoints" / "last.pt")["iteration"] == 3
    monkeypatch.undo()
    result = CliRunner().invoke(
        app, ["train", str(spec), "--data", str(dataset2d), "--out", str(out), "--resume", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "trained 10/10 iterations" in result.output


def test_resume_refuses_other_data(dataset2d, dataset3d, tmp_path):
    from runner.errors import UserError
    from runner.synthetic import make_dataset

    run = tmp_path / "run"
    train(_recipe(), dataset2d, run, progress=False, stop_at=2)
    other = tmp_path / "other"
    make_dataset(other, ndim=2, n_train=3, n_val=1, shape=(96, 96), n_objects=5)
    with pytest.raises(UserError, match="training images differ"):
        train(_recipe(), other, run, progress=False, resume=True)
