"""Wall-time budget, timed checkpoints and the AMP switch of ``runner train``, through the CLI: a run stops
resumably when its budget runs out (exit 0, last.pt + charts), ``--resume`` continues it, and a checkpoint is
written whenever ``--checkpoint-minutes`` have passed."""

from __future__ import annotations

from test_training import tiny  # noqa: I001  (tests/ is on sys.path under pytest)
from typer.testing import CliRunner

from runner.cli import app
from runner.recipes import save_recipe
from runner.training import load_checkpoint, train
from runner.training.loop import Trainer


def _train(*args):
    return CliRunner().invoke(app, ["train", *map(str, args), "--no-progress"])


def test_budget_stops_resumably_and_resume_continues(dataset2d, tmp_path):
    spec = tmp_path / "tiny.yaml"
    save_recipe(tiny(2, training={"iterations": 100000, "checkpoint_every": 100000}), spec)
    run = tmp_path / "run"
    res = _train(spec, "--data", dataset2d, "--out", run, "--max-minutes", "0.03", "--amp", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "wall-time budget of 0.03 min reached" in res.output and "--resume" in res.output
    first = load_checkpoint(run / "checkpoints" / "last.pt")
    assert 0 < first["iteration"] < 100000
    assert first["recipe"]["training"]["amp"] is True
    assert (run / "charts" / "loss.png").is_file()

    res = _train(spec, "--data", dataset2d, "--out", run, "--resume", "--max-minutes", "0.03")
    assert res.exit_code == 0, res.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] > first["iteration"]


def test_checkpoint_minutes_write_last_pt_between_the_iteration_checkpoints(dataset2d, tmp_path, monkeypatch):
    saves: list[int] = []
    original = Trainer.save

    def counting_save(self, *, charts=True):
        saves.append(self.iteration)
        original(self, charts=charts)

    monkeypatch.setattr(Trainer, "save", counting_save)
    recipe = tiny(2, training={"iterations": 30, "checkpoint_every": 1000}, validation={"every": 1000})
    result = train(recipe, dataset2d, tmp_path / "run", progress=False, checkpoint_minutes=0.0001, amp=False)
    assert result.iteration == 30 and not result.budget_reached
    assert len(saves) >= 10  # without the timed checkpoints: only the one at the end
    assert saves[-1] == 30
