"""BCD target channels: ours (one multi-label EDT pass) vs the usual per-instance scipy loop.

Run: .venv/bin/python benchmarks/bench_targets.py [--quick]

Inputs: a 2048x2048 label image with ~4000 touching objects and a 256^3 volume with ~3000. Both sides make the
same channels (B = interior, C = 1 px inner contour, D = distance to the object edge / object maximum); the
outputs are compared pixel for pixel in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, measure, table  # noqa: E402

from runner.synthetic import voronoi_blobs  # noqa: E402
from runner.targets import make_targets  # noqa: E402


def per_instance_bcd(labels: np.ndarray) -> np.ndarray:
    """The usual approach: for each object, crop its bounding box (+1 px), EDT it, write B, C, D back."""
    out = np.zeros((3, *labels.shape), np.float32)
    for i, box in enumerate(ndi.find_objects(labels)):
        if box is None:
            continue
        pad = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, labels.shape, strict=True)
        )
        obj = labels[pad] == i + 1
        # the image border is not an edge: extend the crop by edge replication before the EDT
        dist = ndi.distance_transform_edt(np.pad(obj, 1, mode="edge"))[(slice(1, -1),) * obj.ndim]
        contour = obj & (dist <= 1)
        out[0][pad][obj & ~contour] = 1
        out[1][pad][contour] = 1
        out[2][pad][obj] = dist[obj] / dist[obj].max()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller inputs (smoke test)")
    args = parser.parse_args()
    cases = [("2D 2048x2048", (2048, 2048), 4600, 18.0), ("3D 256^3", (256, 256, 256), 3300, 10.0)]
    if args.quick:
        cases = [("2D 512x512", (512, 512), 300, 18.0), ("3D 64^3", (64, 64, 64), 60, 10.0)]
    rows = []
    for name, shape, n, radius in cases:
        labels = voronoi_blobs(shape, n, radius=radius, seed=0)
        n_obj = int(labels.max())
        make_targets(labels[:64, :64] if labels.ndim == 2 else labels[:16, :32, :32], "BCD")  # numba warm-up
        ours = measure(make_targets, labels, "BCD", repeat=3)
        ref = measure(per_instance_bcd, labels)
        agree = float(np.mean(np.isclose(ours.result, ref.result, atol=1e-5)))
        rows.append([name, n_obj, "bmz-runner (multi-label EDT)", ours.seconds, ours.peak_mib, "", agree])
        rows.append([name, n_obj, "per-instance scipy loop", ref.seconds, ref.peak_mib, "", 1.0])
        rows[-2][5] = f"{ref.seconds / ours.seconds:.1f}x"
        print(f"{name}: ours {ours.seconds:.3f} s, per-instance {ref.seconds:.3f} s", flush=True)
    print()
    print(f"Machine: {machine()}")
    print(
        table(
            [
                "input",
                "objects",
                "implementation",
                "time (s)",
                "peak extra memory (MiB)",
                "speed-up",
                "pixel agreement",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
