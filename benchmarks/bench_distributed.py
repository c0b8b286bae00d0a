"""Benchmark the distributed path of ``runner predict`` (Dask) beside the single-process path, in one run.

1. *model*: a 3D U-Net-like package (built with ``tests/_packages.py``, ONNX on CPU) and the ``classical``
   post-processor on a synthetic nuclei volume that fits in memory: the single-process ``runner predict`` on
   its TIFF with 1 and 2 threads, and ``runner predict --cluster local:N`` on the same volume as OME-Zarr with
   1 worker (1 thread) and 2 workers (1 thread each), with one block (the machinery's cost alone) and with x
   split in two blocks (the halo recomputed along the face adds to it). Same cores, same process conditions
   (a fresh ``runner`` process each), objects counted by each; the network gets the same tile budget in both
   (``--memory-mb 1024``; the workers' memory limit stays Dask's default). Wall times on a small and a big
   volume give the marginal time per voxel (start-up, imports and model loading cancel out). Peak memory: the
   single process's maximum resident set; per Dask worker as the run reports it.
2. *larger than memory*: a float32 volume several times the workers' ``memory_limit``, segmented by the
   deterministic stand-in (:mod:`runner.distributed.standin`) with 1 and 2 workers: blocks per second and each
   worker's peak resident memory, which is bounded by the block, not the volume.

Usage: ``.venv/bin/python benchmarks/bench_distributed.py [--quick]``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine, table  # noqa: E402
from benchmarks.bench_predict import build_unet_package, synthetic_image  # noqa: E402

RUNNER = [sys.executable, "-m", "runner"]
MEMORY_MB = 1024
"""Tile budget of the network, the same in both paths (a worker gives its network a quarter of its memory)."""
POST = ["--postprocess", "classical", "--param", "threshold=0.5", "--param", "smooth=0"]


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the biggest process, and the output of a fresh ``runner`` process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    wrapper = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.stdout + r.stderr); print('WALL', time.perf_counter() - t); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); "
        "sys.exit(r.returncode)",
        *cmd,
    ]
    out = subprocess.run(wrapper, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    wall = float(re.search(r"WALL (\S+)", out.stdout).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"PEAK (\S+)", out.stdout).group(1))  # type: ignore[union-attr]
    return wall, peak, out.stdout


def _count_tiff(path: Path) -> int:
    import tifffile

    return len(np.unique(tifffile.imread(path))) - 1


def _count_zarr(path: Path) -> int:
    import zarr

    return len(np.unique(np.asarray(zarr.open(str(path / "labels" / "instances" / "s0"), mode="r")))) - 1


def _volume(tmp: Path, name: str, shape: tuple[int, ...]) -> tuple[Path, Path]:
    """The same synthetic volume as a ZYX TIFF and as an OME-Zarr 0.4 image (with one coarser level)."""
    import tifffile
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    image = synthetic_image(shape, seed=2)[0]
    image = (image - image.min()) / (image.max() - image.min())
    tifffile.imwrite(tmp / f"{name}.tif", image, metadata={"axes": "ZYX"})
    root = zarr.open_group(str(tmp / f"{name}.ome.zarr"), mode="w", zarr_format=2)
    write_image(
        image, root, axes="zyx", fmt=FormatV04(), scale_factors=[2], storage_options={"chunks": (40, 64, 64)}
    )
    return tmp / f"{name}.tif", tmp / f"{name}.ome.zarr"


def _single(pkg: Path, tif: Path, out: Path, threads: int) -> tuple[float, float, int]:
    cmd = [*RUNNER, "predict", str(pkg), "-i", str(tif), "-o", str(out), "-q", "--threads", str(threads)]
    cmd += ["--memory-mb", str(MEMORY_MB)]
    wall, peak, _ = _timed([*cmd, "--device", "cpu", *POST])
    return wall, peak, _count_tiff(out / "instances" / tif.name)


def _cluster(
    pkg: Path, source: Path, out: Path, workers: int, block: tuple[int, ...]
) -> tuple[float, str, int]:
    cmd = [*RUNNER, "predict", str(pkg), "-i", str(source), "-o", str(out), "-q", "--threads", "1"]
    cmd += ["--device", "cpu", "--cluster", f"local:{workers}", "--object-size", "16"]
    cmd += ["--memory-mb", str(MEMORY_MB)]  # the same tile budget as the single process
    wall, _, text = _timed([*cmd, "--block", ",".join(map(str, block)), *POST])
    peak = re.search(r"peak worker memory (\d+) MiB", text)
    return wall, peak.group(1) if peak else "?", _count_zarr(out)


def rows_model(tmp: Path, small: tuple[int, ...], big: tuple[int, ...]) -> list[list]:
    """Wall time on a small and a big volume; the difference over the voxels added is the marginal time
    (start-up, imports and model loading cancel out)."""
    pkg = build_unet_package(tmp / "unet3d", 3)
    vols = {"small": _volume(tmp, "small", small), "big": _volume(tmp, "big", big)}
    mvox = (np.prod(big) - np.prod(small)) / 1e6
    half = (big[0], big[1], big[2] // 2)
    runs = [
        ("single process", 1, None, None),
        ("single process", 2, None, None),
        ("--cluster local:1, one block", 1, 1, "whole"),
        ("--cluster local:1, 2 blocks", 1, 1, "half"),
        ("--cluster local:2, 2 blocks", 2, 2, "half"),
    ]
    rows, marginal = [], {}
    for name, cores, workers, blocks in runs:
        walls, peaks, counts = {}, {}, {}
        for size, (tif, zarr_path) in vols.items():
            out = tmp / f"{name.replace(' ', '_').replace(',', '')}_{cores}_{size}"
            if workers is None:
                walls[size], peak, counts[size] = _single(pkg, tif, out, cores)
                peaks[size] = f"{peak:.0f}"
            else:
                shape = big if size == "big" else small
                block = shape if blocks == "whole" else (half if size == "big" else shape)
                walls[size], peaks[size], counts[size] = _cluster(
                    pkg, zarr_path, out.with_suffix(".ome.zarr"), workers, block
                )
        per_mvox = (walls["big"] - walls["small"]) / mvox
        key = (workers is None, cores)
        marginal.setdefault(key, per_mvox)
        overhead = "" if workers is None else f"{100 * (per_mvox / marginal[(True, cores)] - 1):+.0f}%"
        rows.append(
            [
                name,
                cores,
                walls["small"],
                walls["big"],
                per_mvox,
                1 / per_mvox,
                overhead,
                counts["big"],
                peaks["big"],
            ]
        )
    return rows


def rows_out_of_core(tmp: Path, shape: tuple[int, ...], limit_mib: int) -> tuple[list[list], float]:
    from distributed import Client, LocalCluster

    from runner.distributed.engine import run_blockwise
    from runner.distributed.grid import BlockGrid
    from runner.distributed.standin import ValueComponents, peak_rss_mib, write_touching_volume
    from runner.io.ome_zarr import create_labels, open_volume

    write_touching_volume(tmp / "big.zarr", shape, chunks=(64, 128, 128), n_per_chunk=8, size=12)
    gib = float(np.prod(shape)) * 4 / 2**30
    volume = open_volume(tmp / "big.zarr")
    grid = BlockGrid.create(shape, (64, 128, 128), (12, 12, 12))
    rows = []
    for workers in (1, 2):
        scratch = create_labels(tmp / f"s{workers}.zarr", shape, chunks=grid.block, axes="zyx", ngff=None)[0]
        sink = create_labels(tmp / f"o{workers}.zarr", shape, chunks=grid.block, axes="zyx", ngff=None)[0]
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                memory_limit=f"{limit_mib}MiB",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(workers)
            start = time.perf_counter()
            run = run_blockwise(
                client,
                grid,
                read=volume.read,
                segment=ValueComponents(),
                scratch=scratch,
                sink=sink,
                progress=False,
            )
            seconds = time.perf_counter() - start
            peaks = client.run(peak_rss_mib)
        rows.append(
            [
                workers,
                len(grid),
                seconds,
                len(grid) / seconds,
                len(grid) / seconds / workers,
                run.n_objects,
                f"{max(peaks.values()):.0f}",
                limit_mib,
            ]
        )
    return rows, gib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller volumes (a smoke run)")
    args = parser.parse_args()
    small = (40, 64, 64)
    shape = (40, 128, 512) if args.quick else (40, 192, 1024)
    big = (128, 512, 512) if args.quick else (256, 1024, 1024)
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        model = rows_model(Path(tmp), small, shape)
        ooc, gib = rows_out_of_core(Path(tmp), big, 256)
    print(f"\nmachine: {machine()}")
    print(
        f"\n## 1. runner predict, one process vs --cluster (3D TinyUNet + classical; {small} and {shape})\n"
    )
    headers = ["run", "cores", "wall_s small", "wall_s big", "marginal s/Mvoxel", "Mvoxel/s"]
    headers += ["marginal vs single, same cores", "objects (big)", "peak MiB (per worker)"]
    print(table(headers, model))
    print(f"\n## 2. volume larger than the workers' memory ({big}, float32 {gib:.2f} GiB), stand-in model\n")
    print(
        table(
            [
                "workers",
                "blocks",
                "seconds",
                "blocks/s",
                "blocks/s/worker",
                "objects",
                "peak MiB per worker",
                "memory_limit MiB",
            ],
            ooc,
        )
    )


if __name__ == "__main__":
    main()
