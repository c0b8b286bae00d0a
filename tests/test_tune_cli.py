"""`runner tune` on the vendored zoo package: search, table, new package, and that the new package scores what
tune reported."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo_packages" / "third_party" / "unet2d_nuclei_broad"
EXAMPLES = ROOT / "zoo_packages" / "examples" / "dsb2018"
cli = CliRunner()


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "zoo_tuned.zip"
    res = run(
        "tune",
        ZOO,
        "--data",
        EXAMPLES,
        "--postprocess",
        "fg_watershed",
        "--out",
        out,
        "-q",
        "--rounds",
        "1",
        "--grid",
        "threshold=0.5,0.9",
        "--grid",
        "min_distance=4",
        "--grid",
        "smooth_distance=1",
        "--grid",
        "min_height=1,2",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    return out, res.output


def test_tune_prints_every_trial_and_writes_the_best(tuned):
    out, output = tuned
    assert out.is_file()
    lines = [ln for ln in output.splitlines() if ln.startswith(("0.5 ", "0.9 "))]
    assert len(lines) == 3  # start (0.5, 1.0), threshold 0.9, then min_height 2 at the best threshold
    assert sum("<- best" in ln for ln in output.splitlines()) == 1
    with zipfile.ZipFile(out) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        readme = zf.read("README.md").decode()
    cfg = rdf["config"]["runner"]
    assert cfg["postprocessing"]["name"] == "fg_watershed"
    assert cfg["postprocessing"]["params"]["threshold"] == 0.9
    tuned_on = cfg["tuned_on"]
    assert tuned_on["metric"] == "accuracy@0.5" and tuned_on["score"] > tuned_on["default_score"]
    assert len(tuned_on["images"]) == 6
    assert rdf["format_version"] == "0.5.4"  # the package's own format is kept
    assert "# Validation" in readme and "runner tune" in readme and "| accuracy (AP_dsb) |" in readme


def test_tuned_package_reproduces_the_reported_score(tuned, tmp_path):
    out, _ = tuned
    with zipfile.ZipFile(out) as zf:
        score = yaml.safe_load(zf.read("rdf.yaml"))["config"]["runner"]["tuned_on"]["score"]
    res = run(
        "predict",
        out,
        "--input",
        EXAMPLES / "x",
        "--gt",
        EXAMPLES / "y",
        "--output",
        tmp_path / "p",
        "-q",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    acc = next(r["accuracy"] for r in summary["pooled"]["per_threshold"] if abs(r["iou"] - 0.5) < 1e-9)
    assert acc == pytest.approx(score, abs=1e-9)


def _accuracy_at_half(folder: Path) -> float:
    summary = json.loads((folder / "summary.json").read_text())
    return next(r["accuracy"] for r in summary["pooled"]["per_threshold"] if abs(r["iou"] - 0.5) < 1e-9)


def test_tta_tuned_package_predicts_with_tta_by_default(tmp_path):
    """Params tuned on mirror-averaged outputs hold for such outputs: the package says so, predict obeys."""
    out = tmp_path / "tta.zip"
    notes = tmp_path / "notes.md"
    notes.write_text("Published for context: StarDist 0.864 at IoU 0.5.\n")
    grid = ["--grid", "threshold=0.5", "--grid", "min_distance=4", "--grid", "smooth_distance=1"]
    grid += ["--grid", "min_height=1,2"]
    res = run(
        "tune",
        ZOO,
        "--data",
        EXAMPLES,
        "-m",
        "fg_watershed",
        "--out",
        out,
        "-q",
        "--rounds",
        "1",
        "--tta",
        "--notes",
        notes,
        *grid,
    )
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(out) as zf:
        cfg = yaml.safe_load(zf.read("rdf.yaml"))["config"]["runner"]
        readme = zf.read("README.md").decode()
    assert "Published for context: StarDist 0.864" in readme.split("# Validation", 1)[1]
    assert cfg["test_time_augmentation"] is True and cfg["tuned_on"]["tta"] is True
    common = ["--input", EXAMPLES / "x", "--gt", EXAMPLES / "y", "-q", "--device", "cpu"]
    assert run("predict", out, "--output", tmp_path / "a", *common).exit_code == 0
    assert run("predict", out, "--output", tmp_path / "b", "--no-tta", *common).exit_code == 0
    assert _accuracy_at_half(tmp_path / "a") == pytest.approx(cfg["tuned_on"]["score"], abs=1e-9)
    config = json.loads((tmp_path / "b" / "run_config.json").read_text())
    assert config["options"]["tta"] is False
    # re-tuning the package keeps TTA unless told otherwise
    again = tmp_path / "again.zip"
    res = run(
        "tune", out, "--data", EXAMPLES, "--out", again, "-q", "--rounds", "1", "--max-images", "2", *grid
    )
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(again) as zf:
        cfg = yaml.safe_load(zf.read("rdf.yaml"))["config"]["runner"]
    assert cfg["tuned_on"]["tta"] is True and cfg["test_time_augmentation"] is True


def test_tune_on_a_field_at_iou(tmp_path):
    out = tmp_path / "pq.zip"
    res = run(
        "tune", ZOO, "--data", EXAMPLES, "--postprocess", "threshold_cc", "--out", out, "-q",
        "--metric", "panoptic_quality@0.6", "--max-images", "1", "--rounds", "1",
        "--grid", "threshold=0.4,0.6", "--grid", "smooth=0",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "panoptic_quality@0.6: " in res.output
    with zipfile.ZipFile(out) as zf:
        cfg = yaml.safe_load(zf.read("rdf.yaml"))["config"]["runner"]
    assert cfg["tuned_on"]["metric"] == "panoptic_quality@0.6"
    assert cfg["tuned_on"]["n_trials"] == 3  # the start (0.5), 0.4, 0.6


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--metric", "f7"], "unknown metric"),
        (["--grid", "nope=1,2"], "unknown parameter"),
        (["--grid", "threshold=3"], "threshold"),
        (["--notes", "missing_notes.md"], "notes file not found"),
    ],
)
def test_tune_bad_requests(tmp_path, args, needle):
    out = tmp_path / "x.zip"
    res = run(
        "tune",
        ZOO,
        "--data",
        EXAMPLES,
        "--postprocess",
        "fg_watershed",
        "--out",
        out,
        "-q",
        "--max-images",
        "1",
        *args,
    )
    assert res.exit_code == 2, res.output
    assert needle in res.output and not out.exists()


def test_tune_needs_a_postprocessor_and_data(tmp_path):
    res = run("tune", ZOO, "--data", EXAMPLES, "--out", tmp_path / "x.zip", "-q")
    assert res.exit_code == 2 and "post-processor" in res.output
    res = run(
        "tune", ZOO, "--data", tmp_path, "--postprocess", "fg_watershed", "--out", tmp_path / "x.zip", "-q"
    )
    assert res.exit_code == 2 and "x/" in res.output
    res = run(
        "tune", ZOO, "--data", EXAMPLES, "--postprocess", "fg_watershed", "--out", tmp_path / "no" / "x.zip"
    )
    assert res.exit_code == 2 and "does not exist" in res.output


def _split(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "val_split"
    for sub in ("x", "y"):
        (folder / sub).mkdir(parents=True)
        for n in names:
            (folder / sub / f"{n}.tif").symlink_to(EXAMPLES / sub / f"{n}.tif")
    return folder


def test_tune_on_held_out_images_reports_another_split(tmp_path):
    """Honest protocol: params tuned on a recipe's held-out list, the README/config scored on other images."""
    from runner.recipes import save_recipe
    from tests._export_fixtures import tiny_recipe

    names = sorted(p.stem for p in (EXAMPLES / "x").glob("*.tif"))
    spec = tmp_path / "recipe.yaml"
    save_recipe(tiny_recipe(2, data={"patch": [48, 48], "held_out": names[:3]}), spec)
    val = _split(tmp_path, names[3:])
    out = tmp_path / "honest.zip"
    grid = ["--grid", "threshold=0.5,0.9", "--grid", "min_distance=4", "--grid", "smooth_distance=1"]
    grid += ["--grid", "min_height=1"]
    common = ["-m", "fg_watershed", "-q", "--rounds", "1", "--device", "cpu", *grid]
    honest = ["--held-out-from", spec, "--validate", val]
    res = run("tune", ZOO, "--data", EXAMPLES, *honest, "--out", out, *common)
    assert res.exit_code == 0, res.output
    assert "on 3 image(s)" in res.output and "never tuned on" in res.output
    with zipfile.ZipFile(out) as zf:
        cfg = yaml.safe_load(zf.read("rdf.yaml"))["config"]["runner"]
        readme = zf.read("README.md").decode()
    assert sorted(cfg["tuned_on"]["images"]) == names[:3]
    assert cfg["tuned_on"]["held_out"] is False  # the zoo model's weights were not trained without them
    assert sorted(cfg["validation"]["images"]) == names[3:]
    section = readme.split("# Validation", 1)[1]
    assert "never on the images below" in section and "optimistic" not in section
    # the README/config numbers are what predict gives on the validation images
    res = run("predict", out, "--input", val / "x", "--gt", val / "y", "--output", tmp_path / "p", "-q")
    assert res.exit_code == 0, res.output
    assert _accuracy_at_half(tmp_path / "p") == pytest.approx(cfg["validation"]["metrics"]["accuracy@0.5"])

    # bad requests: one line, exit 2, nothing written
    for args, needle in (
        (["--held-out"], "no held-out tuning images recorded"),
        (["--held-out-from", spec, "--validate", EXAMPLES], "--validate is the split tuned on"),
        (["--held-out-from", spec, "--data", val], "held-out image(s) are not in this split"),
    ):
        bad = tmp_path / "bad.zip"
        data = [] if "--data" in args else ["--data", EXAMPLES]
        res = run("tune", ZOO, *data, *args, "--out", bad, *common)
        assert res.exit_code == 2 and needle in res.output and not bad.exists(), (args, res.output)
