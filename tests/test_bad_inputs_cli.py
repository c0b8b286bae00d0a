"""Careless and oversized inputs through the CLI (issue 14): bounded memory, no user file lost, no traceback,
no half-written output. Every case exits 2 with one ``error:`` line naming the file and the fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from runner.cli import app
from tests import hostile_corpus as hc
from tests._packages import build_package

RUNNER_CONFIG = {"targets": "BC", "postprocessing": {"name": "threshold_cc", "params": {"threshold": 0.5}}}


@pytest.fixture(scope="module")
def pkg(tmp_path_factory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg") / "model", runner_config=RUNNER_CONFIG).folder


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        tifffile.imwrite(folder / f"{name}.tif", (rng.random((40, 48)) * 200).astype(np.uint8))
    return folder


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def refused(code_output: tuple[int, str], *needles: str) -> str:
    code, output = code_output
    lines = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1, output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def failed(code_output: tuple[int, str], *needles: str) -> None:
    code, output = code_output
    assert code == 2 and "item(s) failed" in output and "Traceback" not in output, output
    for needle in needles:
        assert needle in output, output


def test_image_sizes_come_from_headers_and_are_bounded(pkg, tmp_path):
    huge = tmp_path / "in" / "huge.tif"
    huge.parent.mkdir()
    hc.make_huge_tiff(huge)
    out = tmp_path / "out"
    # predict reports failed images as a batch: the first line, then one line per image
    failed(run("predict", pkg, "-i", huge, "-o", out, "-q"), "huge.tif:", "memory budget", "--max-memory")
    refused(run("evaluate", "--pred", huge, "--gt", huge, "--out", out), "huge.tif", "memory budget")
    small = tmp_path / "small.tif"
    hc.make_huge_tiff(small, 4000, 4000)  # 16 MB claimed: over a 10M budget, under the default
    failed(run("--max-memory", "10M", "predict", pkg, "-i", small, "-o", out, "-q"), "memory budget")
    complex_image = hc.make_complex_tiff(tmp_path / "complex.tif")
    failed(run("predict", pkg, "-i", complex_image, "-o", out, "-q"), "complex.tif:", "complex values")
    assert not out.exists()


def test_coco_sizes_names_and_memory(tmp_path):
    out = tmp_path / "labels"
    refused(run("coco-to-labels", hc.make_coco(tmp_path / "h.json", "huge"), "-o", out), "memory budget")
    refused(run("coco-to-labels", hc.make_coco(tmp_path / "n.json", "negative"), "-o", out), "height -5")
    refused(run("coco-to-labels", hc.make_coco(tmp_path / "t.json", "text"), "-o", out), "'tall'")
    same = hc.make_coco(tmp_path / "s.json", "same_names")
    refused(run("coco-to-labels", same, "-o", out), "plate1/img.png", "--keep-folders")
    assert not out.exists()
    code, output = run("coco-to-labels", same, "-o", out, "--keep-folders")
    assert code == 0 and "wrote 2 label image(s) with 3 object(s)" in output
    assert tifffile.imread(out / "plate1" / "img.tif").max() == 1
    assert tifffile.imread(out / "plate2" / "img.tif").max() == 2


def test_existing_folder_named_like_an_output_file_is_kept(tmp_path):
    doc = hc.coco([{"id": 1, "file_name": "img.png", "height": 16, "width": 16}], [hc.square(1, 1, 2, 2)])
    (tmp_path / "c.json").write_text(json.dumps(doc))
    out = tmp_path / "labels"
    (out / "img.tif").mkdir(parents=True)
    (out / "img.tif" / "precious.txt").write_text("mine")
    refused(run("coco-to-labels", tmp_path / "c.json", "-o", out), "img.tif", "folder")
    assert (out / "img.tif" / "precious.txt").read_text() == "mine"
    assert [p.name for p in out.iterdir()] == ["img.tif"]  # and nothing staged left beside it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_synth_and_targets_values(tmp_path, dataset2d):
    out = tmp_path / "synth"
    refused(run("synth", out, "--shape", "100000,100000"), "memory budget")
    refused(run("synth", out, "--shape", "0,0"), "--shape")
    refused(run("synth", out, "--shape", "-5,40"), "--shape")
    refused(run("synth", out, "--radius", "10,5"), "--radius")
    refused(run("synth", out, "--shape", "16,16", "--radius", "9,12"), "--radius")
    assert not out.exists() and list(tmp_path.iterdir()) == [dataset2d]
    start = time.perf_counter()
    refused(
        run("targets", dataset2d, "--code", "PPP", "--patch", "100001,100001", "--out", tmp_path / "t"), "PPP"
    )
    assert time.perf_counter() - start < 30 and not (tmp_path / "t").exists()


def test_predict_values_and_destinations(pkg, images, tmp_path):
    out = tmp_path / "out"
    refused(run("predict", pkg, "-i", images, "-o", out, "--halo", "-3"), "--halo")
    refused(run("predict", pkg, "-i", images, "-o", out, "--tile", "0"), "--tile")
    refused(run("predict", pkg, "-i", images, "-o", out, "--tile", "-16"), "--tile")
    refused(run("predict", pkg, "-i", images, "-o", out, "-p", "threshold=nan"), "threshold")
    assert not out.exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    refused(run("predict", pkg, "-i", images, "-o", a_file / "out"), "file.txt", "is a file")
    out.mkdir()
    (out / "run_config.json").mkdir()
    refused(run("predict", pkg, "-i", images, "-o", out), "run_config.json", "folder")
    assert (out / "run_config.json").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_folder(pkg, images, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        refused(run("predict", pkg, "-i", images, "-o", locked / "out"), "permission")
    finally:
        locked.chmod(0o700)


def test_nothing_is_created_when_every_image_fails(pkg, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.tif").write_bytes(b"not a tiff")
    (bad / "b.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    code, output = run("predict", pkg, "-i", bad, "-o", out, "-q")
    assert code == 2 and "2 item(s) failed" in output
    assert not out.exists()


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigterm_cleans_up_and_exits_143(tmp_path):
    """SIGTERM during `runner synth`: the staging folder is removed, nothing is half-written, exit 143."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "runner", "synth", str(out), "--n-train", "400", "--shape", "256,256"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        staged = _wait_for(lambda: any(p.name.startswith(".synth.tmp-") for p in tmp_path.iterdir()))
        assert staged, "the staging folder never appeared"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_predict_removes_the_unpacked_package(tmp_path):
    """The issue's case: SIGTERM while predicting from a zip leaves no unpacked package in the temp folder."""
    model = build_package(tmp_path / "m" / "model", runner_config=RUNNER_CONFIG, make_zip=True).zip
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        tifffile.imwrite(folder / f"i{i:02d}.tif", (rng.random((256, 256)) * 200).astype(np.uint8))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "TMPDIR": str(tmp),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "runner",
        "predict",
        str(model),
        "-i",
        str(folder),
        "-o",
        str(tmp_path / "out"),
    ]
    proc = subprocess.Popen(
        [*cmd, "-q", "--tta"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert _wait_for(lambda: any(p.name.startswith("bmz-runner-pkg-") for p in tmp.iterdir()))
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert list(tmp.iterdir()) == []


def test_package_destination_below_a_file(pkg, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    refused(run("tune", pkg, "--data", tmp_path, "--out", a_file / "new.zip"), "file.txt", "is a file")
    assert a_file.read_text() == "x"
