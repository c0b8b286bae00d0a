"""``runner train --init-from``: a new run starts from the weights of a run folder, a checkpoint or a model
package (fine-tuning), through the CLI; weights that do not fit the recipe's model, a package without a state
dict, a missing source and ``--resume`` together with it are one-line errors with exit 2."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from runner.cli import app
from runner.recipes import save_recipe
from runner.training import load_checkpoint
from tests._export_fixtures import make_run, tiny_recipe


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny trained run, its data and its export as a package with state-dict weights only."""
    root = tmp_path_factory.mktemp("initfrom")
    run, data = make_run(root, 2)
    pkg = root / "pkg.zip"
    res = CliRunner().invoke(
        app, ["export", str(run), "--out", str(pkg), "--weights", "state_dict", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    return run, data, pkg


def _train(*args):
    return CliRunner().invoke(app, ["train", *map(str, args), "--no-progress"])


def _spec(tmp_path, name="recipe", **override):
    spec = tmp_path / f"{name}.yaml"
    save_recipe(tiny_recipe(2, **override), spec)
    return spec


def _max_diff(a: dict, b: dict) -> float:
    """Largest difference of the learned parameters (batch-norm running statistics move in one step)."""
    learned = [k for k in a if a[k].is_floating_point() and "running_" not in k]
    return max(float((a[k] - b[k]).abs().max()) for k in learned)


@pytest.mark.parametrize("kind", ["run", "checkpoint", "package"])
def test_new_run_starts_from_the_given_weights(source, tmp_path, kind):
    run, data, pkg = source
    given = {"run": run, "checkpoint": run / "checkpoints" / "last.pt", "package": pkg}[kind]
    # one step at a tiny learning rate: the weights stay within ~lr of where they started
    spec = _spec(tmp_path, training={"iterations": 1}, optimizer={"lr": 1e-6}, validation={"every": 1000})
    out = tmp_path / "ft"
    res = _train(spec, "--data", data, "--out", out, "--init-from", given)
    assert res.exit_code == 0, res.output
    after = load_checkpoint(out / "checkpoints" / "last.pt")
    start = load_checkpoint(run / "checkpoints" / ("last.pt" if kind == "checkpoint" else "best.pt"))
    if kind == "package":  # the exporter writes the best checkpoint's weights
        start = {"model_state": torch.load(_state_file(pkg, tmp_path), weights_only=True)}
    assert _max_diff(after["model_state"], start["model_state"]) < 1e-4
    assert after["init_from"] and str(given) in after["init_from"]

    fresh = tmp_path / "fresh"
    assert _train(spec, "--data", data, "--out", fresh).exit_code == 0
    random_start = load_checkpoint(fresh / "checkpoints" / "last.pt")["model_state"]
    assert _max_diff(random_start, start["model_state"]) > 1e-2  # without --init-from: other weights
    assert load_checkpoint(fresh / "checkpoints" / "last.pt")["init_from"] is None


def _state_file(pkg, tmp_path):
    import zipfile

    with zipfile.ZipFile(pkg) as zf:
        name = next(n for n in zf.namelist() if n.endswith("state_dict.pt"))
        zf.extract(name, tmp_path / "unzipped")
    return tmp_path / "unzipped" / name


def test_resumed_run_keeps_init_from(source, tmp_path):
    run, data, _ = source
    spec = _spec(tmp_path, training={"iterations": 4}, validation={"every": 1000})
    out = tmp_path / "ft"
    assert _train(spec, "--data", data, "--out", out, "--init-from", run, "--iterations", "2").exit_code == 0
    res = _train(spec, "--data", data, "--out", out, "--resume", "--iterations", "4")
    assert res.exit_code == 0, res.output
    assert str(run) in load_checkpoint(out / "checkpoints" / "last.pt")["init_from"]


def test_bad_init_from_is_one_line_exit_2(source, tmp_path):
    run, data, pkg = source
    wide = _spec(tmp_path, "wide", model={"features": 16})
    cases = [
        ([wide, "--init-from", run], "do not fit the recipe's model"),
        ([_spec(tmp_path), "--init-from", tmp_path / "nothing.zip"], "--init-from: not found"),
        ([_spec(tmp_path), "--init-from", tmp_path / "recipe.yaml"], "not a model"),
    ]
    onnx_pkg = tmp_path / "onnx.zip"
    res = CliRunner().invoke(
        app, ["export", str(run), "--out", str(onnx_pkg), "--weights", "onnx", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    cases.append(([_spec(tmp_path), "--init-from", onnx_pkg], "has no pytorch_state_dict weights"))
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        res = _train(args[0], "--data", data, "--out", out, *args[1:])
        assert res.exit_code == 2, (message, res.output)
        assert message in res.output, res.output
        assert len(res.output.strip().splitlines()) <= 2, res.output  # error line (+ hint)
        assert not out.exists() or not any(out.iterdir()), "nothing half-written"
    res = _train(_spec(tmp_path), "--data", data, "--out", run, "--resume", "--init-from", pkg)
    assert res.exit_code == 2 and "--init-from starts a new run" in res.output
