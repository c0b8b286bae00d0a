"""Training throughput of the shipped recipes: our training step beside two baselines (same net and input).

For each recipe (``model_specs/unet2d_bcd_nuclei.yaml`` on DSB2018 images, ``unet3d_bcd_nuclei.yaml`` on
synthetic 3D nuclei) and each device (CPU; CUDA with and without AMP when present), one fresh process per
row measures:

- **ours**: a full iteration of ``runner.training`` -- foreground-biased crop of precomputed targets,
  augmentation (flips, rotations, elastic, intensity), per-channel BCE+Dice/MSE loss, AdamW step with
  gradient clipping;
- **bare torch**: forward + backward + AdamW of the same network on random tensors of the same shape (the
  ceiling: no data work at all);
- **targets per patch**: like ours, but the crop's targets are recomputed from the label crop at every
  iteration (what an on-the-fly pipeline does instead of precomputing once per image).

Columns: iterations/s and pixels (voxels)/s through the network (medians over the timed iterations, which
resist other jobs on a shared CPU), the data and the optimizer-step share of an iteration, peak resident
memory of the process (and peak CUDA memory on GPU), and the one-off data preparation time.

Run: ``.venv/bin/python benchmarks/bench_train.py [--iterations N] [--threads N] [--recipes 2d,3d]
[--devices cpu,cuda] [--data DSB2018_FOLDER]`` (``--data``: where dsb2018 lies when not in ``../shared``, e.g.
on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DSB = ROOT.parent / "shared" / "data" / "dsb2018"
RECIPES = {
    "2d": ROOT / "model_specs" / "unet2d_bcd_nuclei.yaml",
    "3d": ROOT / "model_specs" / "unet3d_bcd_nuclei.yaml",
}
MODES = ("ours", "bare torch", "targets per patch")


def _data(kind: str, tmp: Path) -> Path:
    """DSB2018 (a subset of 40 training images) for 2D when present, else synthetic data."""
    import os

    from runner.synthetic import make_dataset

    dsb = Path(os.environ.get("BMZ_BENCH_DSB") or DSB)
    if kind == "2d" and (dsb / "train" / "x").is_dir():
        sub = tmp / "dsb_subset"
        for split, n in (("train", 40), ("val", 0)):
            for part in ("x", "y"):
                (sub / split / part).mkdir(parents=True, exist_ok=True)
            for p in sorted((dsb / split / "x").iterdir())[:n]:
                (sub / split / "x" / p.name).symlink_to(p)
                (sub / split / "y" / p.name).symlink_to(dsb / split / "y" / p.name)
        return sub
    out = tmp / f"synthetic_{kind}"
    make_dataset(out, ndim=2 if kind == "2d" else 3, n_train=8, n_val=0, seed=0)
    return out


def _per_patch_sampler():
    import numpy as np

    from runner.targets import make_targets
    from runner.training.sampling import PatchSampler

    class PerPatchTargets(PatchSampler):
        """Computes each crop's targets from its label crop at every draw, instead of once per image."""

        def targets_of(self, sample, region):
            crop = np.ascontiguousarray(sample.labels[region])
            return make_targets(crop, self.recipe.targets.code, self.recipe.targets.options)

    return PerPatchTargets


def worker(kind: str, mode: str, device: str, amp: bool, iterations: int, threads: int | None) -> dict:
    """Measure one row in this process."""
    import numpy as np
    import torch

    from runner.recipes import load_recipe
    from runner.training.data import Datasets, load_datasets
    from runner.training.loop import Trainer

    recipe = load_recipe(
        RECIPES[kind], overrides={"training": {"amp": amp, "threads": threads}, "data": {"val_fraction": 0.0}}
    )
    torch.set_num_threads(recipe.training.threads or len(__import__("os").sched_getaffinity(0)))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = load_datasets(_data(kind, Path(tmp)), recipe, progress=False)
        prep = time.perf_counter() - t0
        trainer = Trainer(
            recipe,
            Datasets(data.train, [], data.source),
            Path(tmp) / "run",
            torch.device(device),
            progress=False,
        )
    if mode == "targets per patch":
        trainer.sampler = _per_patch_sampler()(trainer.sampler.samples, recipe)
    rng = np.random.default_rng(0)
    batch = trainer.sampler.batch(rng)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def one() -> tuple[float, float]:
        """(data seconds, step seconds) of one iteration."""
        t0 = time.perf_counter()
        b = batch if mode == "bare torch" else trainer.sampler.batch(rng)  # bare: same tensors, no data work
        t1 = time.perf_counter()
        trainer.step(b)
        sync()
        return t1 - t0, time.perf_counter() - t1

    for _ in range(2):
        one()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = np.array([one() for _ in range(iterations)])
    per_it = float(np.median(times.sum(1)))  # the median resists other jobs on a shared CPU
    pixels = recipe.training.batch_size * int(np.prod(recipe.data.patch))
    return {
        "recipe": RECIPES[kind].name,
        "mode": mode,
        "device": device,
        "amp": amp if device != "cpu" else None,
        "threads": torch.get_num_threads(),
        "iterations": iterations,
        "it_s": 1.0 / per_it,
        "px_s": pixels / per_it,
        "data_ms": float(np.median(times[:, 0])) * 1e3,
        "step_s": float(np.median(times[:, 1])),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
        "prep_s": prep,
        "images": len(data.train),
        "patch": list(recipe.data.patch),
        "batch": recipe.training.batch_size,
    }


def _row(kind: str, mode: str, device: str, amp: bool, iterations: int, threads: int | None) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        mode,
        device,
        str(int(amp)),
        str(iterations),
        str(threads or 0),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{kind} {mode} {device}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, default=8, help="timed iterations per row (after 2 warm-up)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all available cores)")
    parser.add_argument("--recipes", default="2d,3d", help="which recipes: 2d, 3d or 2d,3d")
    parser.add_argument("--devices", default="cpu,cuda", help="cpu, cuda or cpu,cuda (cuda: AMP off and on)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"pipelines to measure: {', '.join(MODES)}")
    parser.add_argument("--data", type=Path, default=None, help="dsb2018 folder (default: ../shared/data)")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data is not None:
        import os

        os.environ["BMZ_BENCH_DSB"] = str(args.data.resolve())
    if args.worker:
        kind, mode, device, amp, its, threads = args.worker
        print(json.dumps(worker(kind, mode, device, bool(int(amp)), int(its), int(threads) or None)))
        return
    import torch

    wanted = args.devices.split(",")
    devices = [("cpu", False)] if "cpu" in wanted else []
    if "cuda" in wanted and torch.cuda.is_available():
        devices += [("cuda", False), ("cuda", True)]
    if not devices:
        raise SystemExit(f"no device to measure among {args.devices!r} (CUDA: {torch.cuda.is_available()})")
    rows = []
    for kind in args.recipes.split(","):
        for device, amp in devices:
            its = args.iterations if device == "cpu" else args.iterations * 10
            if kind == "3d" and device == "cpu":
                its = max(2, its // 2)
            for mode in [m for m in MODES if m in args.modes.split(",")]:
                row = _row(kind, mode, device, amp, its, args.threads)
                rows.append(row)
                print(f"{row['recipe']} {mode} {device} amp={amp}: {row['it_s']:.3f} it/s", file=sys.stderr)
    print(
        f"\nTraining throughput (torch {torch.__version__}; {rows[0]['threads']} CPU threads; "
        "data prep = reading images + computing targets once per image)\n"
    )
    print(
        "| recipe | patch x batch | device | AMP | pipeline | it/s | Mpx/s | data ms/it | step s/it | "
        "peak RSS MB | peak CUDA MB | data prep s (images) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cuda = f"{r['cuda_mb']:.0f}" if r["cuda_mb"] is not None else "-"
        amp = "-" if r["amp"] is None else ("bf16" if r["amp"] else "off")
        print(
            f"| {r['recipe']} | {'x'.join(map(str, r['patch']))} x {r['batch']} | {r['device']} | {amp} | "
            f"{r['mode']} | {r['it_s']:.3f} | {r['px_s'] / 1e6:.3f} | {r['data_ms']:.1f} | "
            f"{r['step_s']:.3f} | {r['rss_mb']:.0f} | {cuda} | "
            f"{r['prep_s']:.1f} ({r['images']}) |"
        )


if __name__ == "__main__":
    main()
