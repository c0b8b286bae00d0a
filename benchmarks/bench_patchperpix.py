"""PatchPerPix assembly: ours (sparse, numba, foreground only) vs a direct dense numpy implementation.

Run: .venv/bin/python benchmarks/bench_patchperpix.py [--quick]

Inputs: 2D 256x256 touching blobs (~50 % foreground) with 25x25 patches, and 3D 64^3 touching ellipsoids
(~48 % foreground) with 9x9x9 patches. The prediction is the ideal PPP target with Gaussian noise (sigma 0.15)
on the patch channels, i.e. a plausible network output; both implementations get the same array and the same
params (t = 0.5, connected components).

The dense implementation (``runner.postprocessing.ppp.reference``) follows the published layout: a consensus
array of ``prod(2p - 1)`` sums and counts for every pixel of the image (2 x 9.4 kB per pixel for 25x25)
filled by ``K^2`` image-sized numpy updates. It does not fit the full inputs in time/memory here, so it runs
on a central crop; ours runs on the same crop (the "agreement" column compares the two label images there,
pixel for pixel after numbering the ids by first appearance) and on the full input. The dense full-size row
is extrapolated linearly in the number of pixels (its time is K^2 updates of image size, its memory 8 *
prod(2p - 1) bytes per pixel). Every measurement runs in a fresh process (numba compiled beforehand there);
memory is the peak RSS added by the call.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table  # noqa: E402

from runner.labelops import relabel_sequential  # noqa: E402
from runner.metrics import evaluate_image  # noqa: E402
from runner.synthetic import random_blobs  # noqa: E402
from runner.targets.ppp import ppp_targets  # noqa: E402

CASES = {
    "full": [
        ("2D 256x256, 25x25", (256, 256), 115, (6.0, 11.0), (25, 25), (64, 64)),
        ("3D 64^3, 9x9x9", (64, 64, 64), 60, (6.0, 9.0), (9, 9, 9), (16, 16, 16)),
    ],
    "quick": [
        ("2D 96x96, 11x11", (96, 96), 20, (5.0, 8.0), (11, 11), (32, 32)),
        ("3D 24x32x32, 5x5x5", (24, 32, 32), 8, (4.0, 7.0), (5, 5, 5), (12, 12, 12)),
    ],
}


def make_input(shape, n, radius, patch, sigma: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Labels and their ideal PPP targets with Gaussian noise on the patch channels, clipped to [0, 1]."""
    labels = random_blobs(shape, n, radius=radius, seed=0)
    pred = ppp_targets(labels, patch)
    rng = np.random.default_rng(0)
    for c in range(1, len(pred) - 1):  # channel by channel: no input-sized float64 temporaries
        pred[c] = np.clip(pred[c] + rng.normal(0, sigma, pred[c].shape), 0, 1)
    return labels, pred


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child(case, which: str, queue) -> None:
    """In a fresh (spawned) process: build the input, warm up, then time one call and its peak memory."""
    from runner.postprocessing.ppp.patchperpix import assemble
    from runner.postprocessing.ppp.reference import dense_assemble

    _, shape, n, radius, patch, crop = case
    labels, pred = make_input(shape, n, radius, patch)
    if which != "full":
        window = tuple(slice((s - c) // 2, (s - c) // 2 + c) for s, c in zip(shape, crop, strict=True))
        labels, pred = labels[window], np.ascontiguousarray(pred[(slice(None), *window)])
    small = ppp_targets(random_blobs((16,) * len(shape), 2, radius=(3.0, 5.0), seed=0), (3,) * len(shape))
    assemble(small, {})  # compile / load the numba kernels
    if which == "dense":

        def run():
            return relabel_sequential(dense_assemble(pred, patch=patch))[0]
    else:

        def run():
            return assemble(pred, {"patch": patch}).instances

    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak-RSS counter (VmHWM)
        fh.write("5")
    start_rss = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    peak = (_status_kib("VmHWM") - start_rss) / 1024
    queue.put((seconds, peak, out, labels, float((labels > 0).mean())))


def measure_case(case, which: str):
    """``(seconds, peak_mib, instances, labels, foreground_fraction)`` of one run in a fresh process."""
    ctx = mp.get_context("spawn")  # numba's OpenMP thread pool does not survive fork()
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(case, which, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def accuracy(gt: np.ndarray, pred: np.ndarray, threshold: float = 0.9) -> float:
    return evaluate_image(gt, pred, thresholds=(threshold,)).at(threshold).accuracy


def run_case(case, rows) -> None:
    name, shape, _, _, patch, crop = case
    full_s, full_mib, full_out, labels, fg = measure_case(case, "full")
    mine_s, mine_mib, mine_out, crop_labels, crop_fg = measure_case(case, "crop")
    ref_s, ref_mib, ref_out, _, _ = measure_case(case, "dense")
    same = float(np.mean(mine_out == ref_out))
    scale = labels.size / crop_labels.size
    crop_name = "x".join(map(str, crop))
    crop_fg_s = f"{crop_fg:.2f}"
    rows += [
        [name, "ours (sparse, numba)", labels.size, f"{fg:.2f}", full_s, full_mib, "-",
         accuracy(labels, full_out)],
        [name, f"ours, crop {crop_name}", crop_labels.size, crop_fg_s, mine_s, mine_mib, f"{same:.4f}",
         accuracy(crop_labels, mine_out)],
        [name, f"dense numpy, crop {crop_name}", crop_labels.size, crop_fg_s, ref_s, ref_mib, "(reference)",
         accuracy(crop_labels, ref_out)],
        [name, f"dense numpy, full size: crop x{scale:.0f} (extrapolated)", labels.size, f"{fg:.2f}",
         ref_s * scale, ref_mib * scale, "-", "-"],
    ]  # fmt: skip
    print(f"{name}: ours {full_s:.2f} s / {full_mib:.0f} MiB; crop: ours {mine_s:.2f} s, dense {ref_s:.2f} s",
          flush=True)  # fmt: skip


HEADERS = ["input", "implementation", "pixels", "foreground", "time (s)", "peak extra memory (MiB)",
           "agreement with dense", "accuracy@0.9 vs GT"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller inputs (smoke test)")
    args = parser.parse_args()
    rows: list[list] = []
    for case in CASES["quick" if args.quick else "full"]:
        run_case(case, rows)
    print()
    print(f"Machine: {machine()}")
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
