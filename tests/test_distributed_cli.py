"""``runner predict`` on zarr/OME-Zarr volumes through the CLI: a real package blockwise equals the
single-process path; bad input gets one line, exit code 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from runner.cli import app
from tests._distributed import adjusted_rand_index

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zoo_packages" / "unet2d_bcd_nuclei_dsb2018.zip"
EXAMPLES = ROOT / "zoo_packages" / "examples" / "dsb2018" / "x"


def invoke(*args: str):
    return CliRunner().invoke(app, ["predict", *map(str, args), "--quiet"])


@pytest.fixture(scope="module")
def nuclei(tmp_path_factory) -> tuple[Path, Path]:
    """A 2x2 mosaic of a DSB2018 image (nuclei cut by the block faces) as OME-Zarr 0.4 and as TIFF."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    image = tifffile.imread(sorted(EXAMPLES.glob("*.tif"))[0])
    image = np.tile(image if image.ndim == 2 else image[..., 0], (2, 2))[:600, :560]
    folder = tmp_path_factory.mktemp("nuclei")
    root = zarr.open_group(str(folder / "img.ome.zarr"), mode="w", zarr_format=2)
    write_image(
        image, root, axes="yx", fmt=FormatV04(), scale_factors=[2, 4], storage_options={"chunks": (128, 128)}
    )
    tifffile.imwrite(folder / "img.tif", image)
    return folder / "img.ome.zarr", folder / "img.tif"


def test_real_package_blockwise_equals_single_process(nuclei, tmp_path):
    import fastremap
    import zarr

    from runner.distributed import model

    source, tif = nuclei
    loads = model.loads()
    out = tmp_path / "out.ome.zarr"
    result = invoke(
        PACKAGE,
        "-i",
        source,
        "-o",
        out,
        "--cluster",
        "threads:1",
        "--block",
        "304",
        "--object-size",
        "40",
        "--no-tta",
    )
    assert result.exit_code == 0, result.output
    assert "4 block(s)" in result.output
    assert model.loads() == loads + 1, "the model loads once per worker"
    single = invoke(PACKAGE, "-i", tif, "-o", tmp_path / "single", "--no-tta")
    assert single.exit_code == 0, single.output
    ref = fastremap.renumber(tifffile.imread(tmp_path / "single" / "instances" / "img.tif"), in_place=False)[
        0
    ]
    labels = np.asarray(zarr.open(str(out / "labels" / "instances" / "s0"), mode="r"))
    # the same partition; the network's floats depend on the pass shape (a block vs the whole image), so a
    # few pixels on a threshold may flip: ARI 1 up to that noise, exact for the deterministic stand-in
    assert labels.max() == ref.max() > 20
    assert adjusted_rand_index(labels, ref) > 0.999
    assert np.count_nonzero(labels != ref) < 1e-3 * labels.size
    attrs = dict(zarr.open_group(str(out / "labels" / "instances"), mode="r").attrs)
    assert attrs["image-label"]["source"]["image"].endswith("img.ome.zarr")
    assert [d["path"] for d in attrs["multiscales"][0]["datasets"]][:2] == ["s0", "s1"]
    assert not (out / "_scratch.zarr").exists()


def _assert_refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for word in words:
        assert word in lines[0], lines[0]


def test_block_smaller_than_twice_the_halo_is_refused(nuclei, tmp_path):
    out = tmp_path / "out.ome.zarr"
    _assert_refused(
        invoke(PACKAGE, "-i", nuclei[0], "-o", out, "--block", "128"), "twice the halo", "--block"
    )
    assert not out.exists() and not list(tmp_path.iterdir())


def test_zarr_without_axes_is_refused(tmp_path):
    from runner.io.zarr_io import create_zarr

    create_zarr(tmp_path / "vol.zarr", (4, 64, 64), np.float32)  # 3D without axes: zyx or cyx?
    out = tmp_path / "out.zarr"
    _assert_refused(invoke(PACKAGE, "-i", tmp_path / "vol.zarr", "-o", out), "no axes", "--axes")
    _assert_refused(
        invoke(PACKAGE, "-i", tmp_path / "vol.zarr", "-o", out, "--axes", "zyx"), "2D images", "vol.zarr"
    )
    assert not out.exists()


def test_unreachable_scheduler_is_refused(nuclei, tmp_path, monkeypatch):
    from runner.distributed import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    out = tmp_path / "out.ome.zarr"
    result = invoke(
        PACKAGE, "-i", nuclei[0], "-o", out, "--cluster", "tcp://127.0.0.1:9", "--object-size", "20"
    )
    _assert_refused(result, "cannot reach the Dask scheduler", "tcp://127.0.0.1:9")
    assert not list(tmp_path.iterdir())
    _assert_refused(invoke(PACKAGE, "-i", nuclei[0], "-o", out, "--cluster", "mars:3"), "--cluster")


def test_existing_output_needs_overwrite(nuclei, tmp_path):
    out = tmp_path / "out.ome.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _assert_refused(invoke(PACKAGE, "-i", nuclei[0], "-o", out), "already exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"


def test_image_folder_on_a_cluster_matches_single_process_and_resumes(tmp_path):
    import json
    import shutil

    images, labels = tmp_path / "x", tmp_path / "y"
    shutil.copytree(EXAMPLES, images)
    shutil.copytree(EXAMPLES.parent / "y", labels)
    for extra in sorted(images.glob("*.tif"))[2:]:
        extra.unlink()
    names = sorted(p.stem for p in images.glob("*.tif"))
    single = invoke(PACKAGE, "-i", images, "-o", tmp_path / "single", "--gt", labels, "--no-tta")
    assert single.exit_code == 0, single.output
    out = tmp_path / "out"
    result = invoke(PACKAGE, "-i", images, "-o", out, "--gt", labels, "--no-tta", "--cluster", "threads:2")
    assert result.exit_code == 0, result.output
    assert "predicted 2 image(s) (0 already done)" in result.output
    for name in names:  # the same objects (a threshold-tie pixel may flip with the worker's float path)
        a = tifffile.imread(out / "instances" / f"{name}.tif")
        b = tifffile.imread(tmp_path / "single" / "instances" / f"{name}.tif")
        assert a.max() == b.max() and adjusted_rand_index(a, b) > 0.999, name
    summary = json.loads((out / "summary.json").read_text())
    ref = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert summary["n_images"] == ref["n_images"] == 2
    assert summary["pooled"]["aji"] == pytest.approx(ref["pooled"]["aji"], abs=1e-3)
    # resume: one image lost its marker (as if killed before finishing) -> only that one runs again
    (out / ".runner-done" / f"{names[1]}.json").unlink()
    stamp = (out / "instances" / f"{names[0]}.tif").stat().st_mtime_ns
    again = invoke(PACKAGE, "-i", images, "-o", out, "--gt", labels, "--no-tta", "--cluster", "threads:2")
    assert again.exit_code == 0, again.output
    assert "predicted 2 image(s) (1 already done)" in again.output
    assert (out / "instances" / f"{names[0]}.tif").stat().st_mtime_ns == stamp
    assert json.loads((out / "summary.json").read_text())["pooled"]["aji"] == pytest.approx(
        summary["pooled"]["aji"]
    )


def test_interrupted_run_leaves_nothing_a_rerun_would_trust(nuclei, tmp_path, monkeypatch):
    def dies_midway(client, grid, *, sink, **kwargs):
        sink.write(grid[0].core, np.ones(grid[0].shape, np.uint32))  # one chunk written, then the run dies
        raise KeyboardInterrupt

    monkeypatch.setattr("runner.distributed.engine.run_blockwise", dies_midway)
    out = tmp_path / "out.ome.zarr"
    result = invoke(PACKAGE, "-i", nuclei[0], "-o", out, "--cluster", "threads:1", "--object-size", "20")
    assert result.exit_code == 130
    assert not list(tmp_path.iterdir()), "neither the output nor its staging folder may remain"
