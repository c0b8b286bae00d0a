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
from tests._distributed import adjusted_rand_index


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


@pytest.mark.slow
def test_volume_larger_than_worker_memory_stays_under_the_limit(tmp_path):
    """A 1 GiB float32 volume on workers limited to 256 MiB each (4x): every worker's peak stays below."""
    from distributed import Client, LocalCluster

    from runner.distributed.standin import peak_rss_mib, write_touching_volume

    shape, limit_mib = (256, 1024, 1024), 256
    write_touching_volume(tmp_path / "in.zarr", shape, chunks=(64, 128, 128), n_per_chunk=8, size=12)
    nbytes = np.prod(shape) * 4
    assert nbytes >= 4 * limit_mib * 2**20
    volume = open_volume(tmp_path / "in.zarr")
    grid = BlockGrid.create(shape, (64, 128, 128), (12, 12, 12))
    scratch = create_labels(tmp_path / "scratch.zarr", shape, chunks=grid.block, axes="zyx", ngff=None)[0]
    sink = create_labels(tmp_path / "out.zarr", shape, chunks=grid.block, axes="zyx", ngff=None)[0]
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit=f"{limit_mib}MiB",
        dashboard_address=None,
    ) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(2)
            before = set(client.scheduler_info()["workers"])
            run = run_blockwise(
                client,
                grid,
                read=volume.read,
                segment=ValueComponents(),
                scratch=scratch,
                sink=sink,
                progress=False,
            )
            peaks = client.run(peak_rss_mib)
    assert run.n_objects > 1000 and not run.stitching.clipped
    assert set(peaks) == before, "no worker may have been restarted (killed for memory)"
    assert max(peaks.values()) < limit_mib, peaks
    # spot check: one block region equals a whole-region segmentation of a sub-volume that holds it
    sub = volume.read((slice(0, 128), slice(0, 512), slice(0, 512)))[0]
    labels = sink.read((slice(0, 128), slice(0, 512), slice(0, 512)))
    assert len(np.unique(labels)) > 100
    inner = labels[40:88, 200:312, 200:312]
    ref = ValueComponents()(sub[None])[40:88, 200:312, 200:312]
    assert adjusted_rand_index(inner, ref) > 0.99


def test_empty_blocks_are_skipped_by_the_low_resolution_test(tmp_path):
    import zarr
    from distributed import Client, LocalCluster
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    from runner.distributed.volume import _empty_test

    image = np.zeros((96, 128), np.float32)
    image[:, :48] = touching_objects((96, 48), n=15, size=12, seed=4)  # the right part is empty
    root = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w", zarr_format=3)
    write_image(
        image, root, axes="yx", fmt=FormatV05(), scale_factors=[2, 4], storage_options={"chunks": (32, 32)}
    )
    volume = open_volume(tmp_path / "in.ome.zarr")
    assert volume.ngff == "0.5" and volume.lowres is not None
    grid = BlockGrid.create(image.shape, (32, 32), (12, 12))
    scratch = create_labels(tmp_path / "scratch.zarr", image.shape, chunks=grid.block, axes="yx", ngff=None)[
        0
    ]
    sink = create_labels(tmp_path / "out.zarr", image.shape, chunks=grid.block, axes="yx", ngff=None)[0]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            run = run_blockwise(
                client,
                grid,
                read=volume.read,
                segment=ValueComponents(),
                scratch=scratch,
                sink=sink,
                is_empty=_empty_test(volume, "auto"),
                progress=False,
            )
    assert run.n_skipped == 3  # x >= 96 (x in 64..96 still sees the smoothed pyramid spill over)
    assert np.array_equal(sink.read((slice(0, 96), slice(0, 128))), _reference(image))


def test_halo_smaller_than_objects_stops_before_writing(tmp_path):
    from distributed import Client, LocalCluster

    from runner.errors import UserError

    image = touching_objects((64, 64), n=12, size=30, seed=1)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client, pytest.raises(UserError, match="reach past the block halo"):
            _run(client, tmp_path, image, (16, 16), (4, 4))
    written = open_volume(tmp_path / "out.zarr", axes="yx").read((slice(0, 64), slice(0, 64)))
    assert not written.any(), "pass 2 must not run when the halo is too small"
