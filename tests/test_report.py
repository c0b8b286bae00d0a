"""``runner report``: the HTML page of a results folder, checked through the CLI (browser test apart)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from tests._report_fixtures import make_results


def _run(*args: str):
    return CliRunner().invoke(app, ["report", *map(str, args)])


def _gallery_counts(html: str) -> list[tuple[str, int, int, int]]:
    """(image id, matched, FP, missed) of the gallery items, in page order."""
    items = re.findall(
        r'<div class="item[^"]*" id="(img-\d+)">.*?class="tp">(\d+) matched</span>.*?class="fp">(\d+) FP'
        r'</span>.*?class="fn">(\d+) missed',
        html,
        flags=re.S,
    )
    return [(i, int(a), int(b), int(c)) for i, a, b, c in items]


def test_report_2d_settings_metrics_gallery_worst_first(tmp_path):
    out = make_results(tmp_path, n=3)
    result = _run(out, "--out", tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text()
    # settings and package
    for text in ("synthetic_model", "watershed_bcd", "th_foreground", "0.6", "tile 96 x 96", "onnx"):
        assert text in html
    # self-contained: every picture is a data URI, nothing is fetched
    sources = re.findall(r'<img[^>]* src="([^"]*)"', html)
    assert len(sources) >= 1 + 2 * 3 + 4  # chart, thumbnail + full view per image, histograms
    assert all(s.startswith(("data:image/jpeg;base64,", "data:image/svg+xml;base64,")) for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    # the per-image table has one row per image, and the gallery shows the worst image first with the
    # counts of metrics_per_image.csv
    table = html.split('id="per-image-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 3
    with (out / "metrics_per_image.csv").open() as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh)}
    gallery = _gallery_counts(html)
    assert [g[0] for g in gallery] == ["img-2", "img-1", "img-0"]
    for item_id, tp, fp, fn in gallery:
        row = rows[f"img0{item_id[-1]}"]
        assert (tp, fp, fn) == (int(row["tp@0.5"]), int(row["fp@0.5"]), int(row["fn@0.5"]))
    assert gallery[-1][2:] == (0, 0) and gallery[0][3] == 2
    assert "histogram of circularity" in html and "histogram of area" in html


def test_report_3d_shows_z_slices(tmp_path):
    out = make_results(tmp_path, n=1, shape=(24, 48, 48), objects=6)
    result = _run(out)
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    caption = re.search(r"img00 \(z = ([\d, ]+) of 24\)", html)
    assert caption is not None and len(caption.group(1).split(",")) == 3
    assert "histogram of volume" in html and "histogram of sphericity" in html


def test_report_without_summary_says_so(tmp_path):
    out = make_results(tmp_path, n=2, summary=False)
    result = _run(out, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert "no metrics" in result.output
    html = (tmp_path / "r.html").read_text()
    assert 'id="no-metrics"' in html and "no <code>summary.json</code>" in html
    assert "accuracy-chart" not in html and "per-image-table" not in html
    assert html.count('class="item') == 2 and "object(s)" in html


def test_report_images_moved_then_given(tmp_path):
    out = make_results(tmp_path, n=1)
    (tmp_path / "x").rename(tmp_path / "moved")
    assert _run(out).exit_code == 0
    assert "input images were not found" in (out / "report.html").read_text()
    assert _run(out, "--images", tmp_path / "moved").exit_code == 0
    assert "input images were not found" not in (out / "report.html").read_text()


def test_report_fits_the_size_budget_for_50_images(tmp_path):
    out = make_results(tmp_path, n=50, shape=(160, 160), noise=0.4, objects=10)
    result = _run(out, "--out", tmp_path / "r.html", "--max-mb", "1")
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert len(html.encode()) <= 1_000_000
    assert html.count('class="lightbox"') == 50


@pytest.mark.parametrize("case", ["missing", "missing_default_out", "empty", "out_is_folder"])
def test_report_bad_input(tmp_path, case):
    folder = tmp_path / "results"
    target = tmp_path / "r.html"
    if not case.startswith("missing"):
        folder.mkdir()
    if case == "out_is_folder":
        (folder / "instances").mkdir()
        target.mkdir()
    result = _run(folder) if case == "missing_default_out" else _run(folder, "--out", target)
    if case.startswith("missing"):
        assert "results folder not found" in result.output
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path) in lines[0]
    assert target.is_dir() if case == "out_is_folder" else not target.exists()


def test_predict_report_with_the_zoo_package(tmp_path):
    """``runner predict --report`` with the project's DSB2018 package: the page shows the real run's settings
    and the metrics predict computed."""
    root = Path(__file__).resolve().parents[1] / "zoo_packages"
    x, y = tmp_path / "x", tmp_path / "y"
    x.mkdir(), y.mkdir()
    for name in ("1815cf307859b3e13669041d181aa3b3dbbac1a95aef4c42164b223110c09168",):
        shutil.copy(root / "examples/dsb2018/x" / f"{name}.tif", x)
        shutil.copy(root / "examples/dsb2018/y" / f"{name}.tif", y)
    out = tmp_path / "out"
    args = [
        "predict",
        str(root / "unet2d_bcd_nuclei_dsb2018.zip"),
        "-i",
        str(x),
        "--gt",
        str(y),
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(app, [*args, "--measure", "--no-tta", "--quiet", "--report"])
    assert result.exit_code == 0, result.output
    assert f"-> {out / 'report.html'}" in result.output
    html = (out / "report.html").read_text()
    config = json.loads((out / "run_config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    for text in (
        "unet2d_bcd_nuclei",
        config["postprocessing"]["name"],
        "th_foreground",
        config["weights"],
        *config["tiling"]["modes"],
    ):
        assert text in html
    assert f"{summary['pooled']['aji']:.4g}" in html
    assert len(_gallery_counts(html)) == 1 and html.count("histogram of") >= 4
