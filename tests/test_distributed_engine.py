"""The Dask driver: zarr in, stitched labels out, on an in-process cluster and with a worker killed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from runner.distributed.engine import run_blockwise
from runner.distributed.grid import BlockGrid
from runner.distributed.standin import ValueComponents, touching_objects
from runner.io.ome_zarr import create_labels, open_volume
from runner.io.zarr_io import write_zarr


def _reference(image: np.ndarray) -> np.ndarray:
    import fastremap

    return fastremap.renumber(ValueComponents()(image[None]), in_place=False)[0].astype(np.uint32)


def _run(client, tmp_path: Path, image: np.ndarray, block, halo, segment=None):
    write_zarr(tmp_path / "in.zarr", image, axes="zyx"[-image.ndim :])
    volume = open_volume(tmp_path / "in.zarr")
    grid = BlockGrid.create(volume.spatial_shape, block, halo)
    axes = volume.spatial_axes
    scratch = create_labels(tmp_path / "scratch.zarr", image.shape, chunks=grid.block, axes=axes, ngff=None)[
        0
    ]
    sink = create_labels(tmp_path / "out.zarr", image.shape, chunks=grid.block, axes=axes, ngff=None)[0]
    run = run_blockwise(
        client,
        grid,
        read=volume.read,
        segment=segment or ValueComponents(),
        scratch=scratch,
        sink=sink,
        progress=False,
    )
    return sink.read(tuple(slice(0, n) for n in image.shape)), run


def test_engine_on_an_in_process_cluster(tmp_path):
    from distributed import Client, LocalCluster

    image = touching_objects((40, 48, 44), n=50, size=12, seed=5)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            labels, run = _run(client, tmp_path, image, (24, 24, 24), (12, 12, 12))
    ref = _reference(image)
    assert run.n_blocks == 8 and run.n_objects == ref.max()
    assert np.array_equal(labels, ref)


@dataclass(frozen=True)
class KillingReader:
    """Reads the volume; the first read of the victim block's region kills the worker process."""

    volume: object
    marker: str
    victim: tuple[slice, ...]

    def __call__(self, region: tuple[slice, ...]) -> np.ndarray:
        if region == self.victim and not os.path.exists(self.marker):
            Path(self.marker).write_text("killed")
            os._exit(1)
        return self.volume.read(region)  # type: ignore[attr-defined]


def test_worker_killed_mid_run_is_retried_without_duplicates(tmp_path):
    from distributed import Client, LocalCluster

    image = touching_objects((60, 64), n=40, size=12, seed=2)
    write_zarr(tmp_path / "in.zarr", image, axes="yx")
    volume = open_volume(tmp_path / "in.zarr")
    grid = BlockGrid.create(image.shape, (24, 24), (12, 12))
    marker = str(tmp_path / "killed.txt")
    read = KillingReader(volume, marker, grid[4].extended)
    scratch = create_labels(tmp_path / "scratch.zarr", image.shape, chunks=grid.block, axes="yx", ngff=None)[
        0
    ]
    sink = create_labels(tmp_path / "out.zarr", image.shape, chunks=grid.block, axes="yx", ngff=None)[0]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            run = run_blockwise(
                client, grid, read=read, segment=ValueComponents(), scratch=scratch, sink=sink, progress=False
            )
    assert Path(marker).exists(), "a worker must have died"
    ref = _reference(image)
    labels = sink.read((slice(0, 60), slice(0, 64)))
    assert run.n_objects == ref.max()
    assert np.array_equal(labels, ref)


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_ome_zarr_labels_metadata_round_trip(tmp_path, ngff):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    sinks = create_labels(
        tmp_path / "out.ome.zarr",
        (130, 140),
        chunks=(64, 64),
        axes="yx",
        scale=(0.5, 0.5),
        ngff=ngff,
        levels=2,
    )
    sinks[0].write((slice(0, 64), slice(0, 64)), np.full((64, 64), 7, np.uint32))
    nodes = list(Reader(parse_url(str(tmp_path / "out.ome.zarr" / "labels" / "instances")))())
    label = next(n for n in nodes if any(isinstance(s, Label) for s in n.specs))
    assert [tuple(d.shape) for d in label.data] == [(130, 140), (65, 70)]
    assert int(np.asarray(label.data[0][0, 0])) == 7
    transforms = label.metadata["coordinateTransformations"]
    assert [t[0]["scale"] for t in transforms] == [[0.5, 0.5], [1.0, 1.0]]
