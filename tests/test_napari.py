"""The napari plugin under an offscreen Qt platform, with napari's own ``make_napari_viewer`` fixture: the
manifest, the readers (results folder, OME-Zarr with labels), the labels writer and the predict widget."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402

napari = pytest.importorskip(
    "napari", reason="the napari extra is not installed (pip install bmz-runner[napari])"
)
npe2 = pytest.importorskip("npe2")

from runner.io import read_labels, write_image  # noqa: E402
from tests._display import x_display  # noqa: E402
from tests._report_fixtures import make_results  # noqa: E402

# one worker runs every test here (make test uses --dist loadgroup): Qt's application and its X display are
# per process, and napari's fixtures assume they outlive the module
pytestmark = pytest.mark.xdist_group("napari")

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "runner" / "napari" / "napari.yaml"
ZOO = ROOT / "zoo_packages" / "unet2d_bcd_nuclei_dsb2018.zip"
DSB = (
    ROOT
    / "zoo_packages"
    / "examples"
    / "dsb2018"
    / "x"
    / ("1815cf307859b3e13669041d181aa3b3dbbac1a95aef4c42164b223110c09168.tif")
)


@pytest.fixture(scope="module", autouse=True)
def display():
    """napari's canvas needs OpenGL, which Qt's offscreen platform gets through an X display (GLX)."""
    with x_display() as name:
        if name is None:
            pytest.skip("no X display for OpenGL: install Debian's xvfb (.ci/run does) or set DISPLAY")
        yield name


@pytest.fixture(scope="module", autouse=True)
def plugin():
    """Our manifest registered with npe2 (an installed package has it through its entry point already)."""
    manager = npe2.PluginManager.instance()
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    if manifest.name not in manager._manifests:
        manager.register(manifest)
    return manifest


def test_manifest_commands_resolve(plugin):
    for command in plugin.contributions.commands:
        module, name = command.python_name.split(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))
    assert {r.command for r in plugin.contributions.readers} == {"bmz-runner.get_reader"}


def test_read_results_folder(make_napari_viewer, tmp_path):
    out = make_results(tmp_path, n=2)
    probs = np.random.default_rng(0).random((3, 96, 96), dtype=np.float32)
    (out / "probabilities").mkdir()
    write_image(out / "probabilities" / "img00.tif", probs)
    viewer = make_napari_viewer()
    viewer.open(str(out), plugin="bmz-runner")
    names = [layer.name for layer in viewer.layers]
    assert names[:5] == ["img00", "img00 B", "img00 C", "img00 D", "img00 instances"]
    assert names[5:] == ["img01", "img01 instances"]
    labels = viewer.layers["img00 instances"]
    assert isinstance(labels, napari.layers.Labels) and labels.visible and not viewer.layers["img01"].visible
    np.testing.assert_array_equal(labels.data, read_labels(out / "instances" / "img00.tif").data)
    np.testing.assert_allclose(viewer.layers["img00 C"].data, probs[1])


def test_read_raw_outputs_of_a_two_output_model(tmp_path):
    """``runner predict --no-postprocess`` of a model with two outputs: probabilities/<output>/<name>.tif."""
    from runner.napari._reader import get_reader

    for output, channels in (("mask", 1), ("flows", 2)):
        (tmp_path / "probabilities" / output).mkdir(parents=True)
        write_image(tmp_path / "probabilities" / output / "a.tif", np.zeros((channels, 16, 16), np.float32))
    reader = get_reader(str(tmp_path))
    assert reader is not None
    layers = reader(str(tmp_path))
    assert [meta["name"] for _, meta, _ in layers] == [
        ["a flows channel 0", "a flows channel 1"],
        ["a mask channel 0"],
    ]
    assert all(kind == "image" and meta["visible"] for _, meta, kind in layers)
    assert get_reader(str(tmp_path / "probabilities" / "mask" / "a.tif")) is None


def _ome_zarr(path: Path, image: np.ndarray, labels: np.ndarray) -> None:
    """An NGFF 0.4 image (axes cyx, two resolution levels) with one label image, as zarr v2 groups."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    root.create_array("0", data=image)
    root.create_array("1", data=np.ascontiguousarray(image[:, ::2, ::2]))
    scales = [[1, 1, 1], [1, 2, 2]]
    datasets = [
        {"path": p, "coordinateTransformations": [{"type": "scale", "scale": s}]}
        for p, s in (("0", scales[0]), ("1", scales[1]))
    ]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    group = root.create_group("labels")
    group.attrs["labels"] = ["nuclei"]
    nuclei = group.create_group("nuclei")
    nuclei.create_array("0", data=labels[np.newaxis])
    nuclei.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets[:1]}]
    nuclei.attrs["image-label"] = {"version": "0.4"}


def test_read_ome_zarr_with_labels(make_napari_viewer, tmp_path, blobs2d):
    image = np.stack([blobs2d * 2.0, blobs2d * 3.0]).astype(np.float32)
    _ome_zarr(tmp_path / "cells.zarr", image, blobs2d)
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "cells.zarr"), plugin="bmz-runner")
    assert [layer.name for layer in viewer.layers] == ["cells [0]", "cells [1]", "cells nuclei"]
    assert viewer.layers["cells [1]"].multiscale
    np.testing.assert_allclose(np.asarray(viewer.layers["cells [1]"].data[0]), image[1])
    np.testing.assert_array_equal(np.asarray(viewer.layers["cells nuclei"].data), blobs2d)


def test_write_labels(make_napari_viewer, tmp_path, blobs3d):
    viewer = make_napari_viewer()
    viewer.add_labels(blobs3d, name="cells", scale=(2.0, 0.5, 0.5))
    written = viewer.layers.save(str(tmp_path / "cells.tif"), selected=False, plugin="bmz-runner")
    assert written == [str(tmp_path / "cells.tif")]
    back = read_labels(tmp_path / "cells.tif")
    np.testing.assert_array_equal(back.data, blobs3d)
    assert back.info.resolution == pytest.approx((2.0, 0.5, 0.5))


def _widget(viewer):
    from runner.napari._widget import PredictWidget

    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget, name="bmz-runner")
    return widget


def test_widget_segments_the_layer_like_the_cli(make_napari_viewer, qtbot, tmp_path):
    from typer.testing import CliRunner

    from runner.cli import app

    viewer = make_napari_viewer(show=True)
    image = tifffile.imread(DSB)
    viewer.add_image(image, name="nuclei")
    widget = _widget(viewer)
    assert widget.load(str(ZOO))
    assert widget.params_box.title() == "Post-processor: watershed_bcd"
    labels_text = [
        widget.params_form.itemAt(i, 0).widget().text() for i in range(widget.params_form.rowCount())
    ]
    assert any(t.startswith("th_foreground") and "[0, 1]" in t for t in labels_text), labels_text
    widget.tta.setChecked(False)
    edit, _ = widget._param_edits["min_size"]
    edit.setText("30")
    with qtbot.waitSignal(widget.run_finished, timeout=120_000) as finished:
        widget.run()
    assert "object(s)" in finished.args[0], finished.args[0]
    assert widget.progress.value() == widget.progress.maximum() == 1
    got = viewer.layers["nuclei instances"].data

    out = tmp_path / "cli"
    args = ["predict", str(ZOO), "-i", str(DSB), "-o", str(out), "--no-tta", "-p", "min_size=30", "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    np.testing.assert_array_equal(got, read_labels(next((out / "instances").glob("*.tif"))).data)
    assert got.max() > 5

    viewer.window._qt_window.resize(1500, 900)
    viewer.reset_view()
    # offscreen Qt only paints the GL canvas once vispy has rendered a frame itself
    viewer.window._qt_viewer.canvas._scene_canvas.render()
    shot = viewer.screenshot(str(tmp_path / "viewer.png"), canvas_only=False, flash=False)
    assert shot.shape[0] > 200 and (tmp_path / "viewer.png").stat().st_size > 10_000


def test_widget_wrong_channels_is_a_message(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64, 3), np.uint8), name="rgb", rgb=True)
    widget = _widget(viewer)
    assert widget.load(str(ZOO))
    widget.run()  # checked before any thread starts
    text = widget.message.text()
    assert "3 channel(s)" in text and "wants 1 channel(s)" in text and "rgb" in text
    assert widget._worker is None and len(viewer.layers) == 1


def test_widget_asks_before_running_package_code(make_napari_viewer, qtbot, tmp_path, image2d):
    from tests._packages import build_package

    pkg = build_package(
        tmp_path / "model",
        formats=("pytorch_state_dict",),
        runner_config={
            "targets": "BC",
            "postprocessing": {"name": "threshold_cc", "params": {"threshold": 0.5}},
        },
    )
    viewer = make_napari_viewer()
    viewer.add_image(image2d[:64, :64], name="cells")
    widget = _widget(viewer)
    assert widget.load(str(pkg.folder))
    assert "own Python code" in widget.message.text() and not widget.trust.isChecked()
    widget.run()
    assert widget.message.text().startswith("Not run") and len(viewer.layers) == 1
    widget.trust.setChecked(True)
    with qtbot.waitSignal(widget.run_finished, timeout=120_000) as finished:
        widget.run()
    assert "pytorch_state_dict weights" in finished.args[0], finished.args[0]
    assert "cells instances" in viewer.layers


def test_widget_bad_package_path_is_a_message(make_napari_viewer, tmp_path):
    widget = _widget(make_napari_viewer())
    assert not widget.load(str(tmp_path / "missing.zip"))
    assert str(tmp_path / "missing.zip") in widget.message.text()
