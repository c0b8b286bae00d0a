"""Benchmark ``runner predict`` (runner.inference) against bioimageio.core's tiled ``predict``.

One run, same inputs for both tools, outputs compared (max absolute difference):

1. *defaults*: each tool with its default choices on a package holding TorchScript, ONNX and
   pytorch_state_dict weights of a U-Net-like network (built here with ``tests/_packages.py``; 2D 2048x2048
   and a 3D volume). bioimageio.core prefers pytorch_state_dict and tiles with its default block parameter
   (n=10); runner picks ONNX on CPU and sizes tiles from its memory budget.
2. *same weights*: both tools with the same weight format and the same tile size (the vendored zoo model,
   fixed 512x512 with halo 32, ONNX and TorchScript), each compared with the floor: the bare network forward
   pass on the same number of tiles of the same shape. Overhead = time / floor - 1.
3. *GPU*: when CUDA is available, both tools with TorchScript on the GPU (skipped otherwise).
4. *memory*: peak resident memory of ``runner predict`` for growing images (fresh process each), next to the
   size of the image and output arrays: the rest is bounded by the tile batch.

Usage: ``.venv/bin/python benchmarks/bench_predict.py [--quick]`` (``--quick``: 1024x1024 and a smaller
volume).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ZOO = ROOT / "zoo_packages" / "third_party" / "unet2d_nuclei_broad"


def synthetic_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A nuclei-like float32 image ``(1, *shape)``: a rendered patch of touching blobs, tiled, plus noise."""
    from runner.synthetic import random_blobs, render

    patch = (128,) * len(shape) if len(shape) == 2 else (32, 64, 64)
    n = max(8, int(np.prod(patch) / (18 ** len(patch))))
    labels = random_blobs(patch, n, radius=(5, 9), seed=seed)
    reps = [-(-s // p) for s, p in zip(shape, patch, strict=True)]
    big = np.tile(render(labels, seed=seed).astype(np.float32), reps)[tuple(slice(0, s) for s in shape)]
    noise = np.random.default_rng(seed).normal(0, 0.05 * float(big.std()), big.shape).astype(np.float32)
    return (big + noise)[None]


def build_unet_package(folder: Path, ndim: int) -> Path:
    from tests._packages import build_package

    kwargs = dict(arch="TinyUNet", arch_kwargs={"width": 16, "depth": 4 if ndim == 2 else 3}, out_channels=2)
    if ndim == 2:
        return build_package(
            folder,
            ndim=2,
            halo=32,
            min_size=80,
            step=16,
            **kwargs,
            formats=("pytorch_state_dict", "torchscript", "onnx"),
        ).folder
    return build_package(
        folder,
        ndim=3,
        halo=16,
        min_size=40,
        step=8,
        **kwargs,
        formats=("pytorch_state_dict", "torchscript", "onnx"),
    ).folder


# ---------------------------------------------------------------------------------------------------- tools


def run_runner(package, image, *, weights=None, tile=None, device="cpu", trust_code=False, repeats=1):
    """runner's Predictor; returns (output, best predict seconds of ``repeats``, load seconds, info)."""
    from runner.inference import Predictor

    t0 = time.perf_counter()
    with Predictor(package, device=device, weights=weights, tile=tile, trust_code=trust_code) as p:
        t1 = time.perf_counter()
        best = math.inf
        for _ in range(repeats):
            t = time.perf_counter()
            out = next(iter(p.predict(image).values()))
            best = min(best, time.perf_counter() - t)
        info = {
            "weights": p.weight_format,
            "tiles": p.last_run.n_tiles,
            "tile": p.last_run.tile_shape,
            "batch": p.last_run.batch_size,
        }
    return out, best, t1 - t0, info


def run_bioimageio(package, image, *, weights=None, block_n=10, block_shape=None, device=None, repeats=1):
    """bioimageio.core's tiled predict; returns (output, best predict seconds of ``repeats``, load seconds,
    info)."""
    from bioimageio.core import Tensor, create_prediction_pipeline, predict
    from bioimageio.spec import load_description
    from loguru import logger

    logger.disable("bioimageio")
    t0 = time.perf_counter()
    descr = load_description(package, perform_io_checks=False)
    pp = create_prediction_pipeline(descr, weights_format=weights, devices=[device] if device else None)
    t1 = time.perf_counter()
    tensor_id = str(descr.inputs[0].id)
    dims = tuple(str(a.id) for a in descr.inputs[0].axes)
    sample = {tensor_id: Tensor.from_numpy(image[None], dims=dims)}
    spatial = [str(a.id) for a in descr.inputs[0].axes if a.type == "space"]
    if block_shape:
        kwargs = {"input_block_shape": {tensor_id: dict(zip(spatial, block_shape, strict=True))}}
    else:
        kwargs = {
            "blocksize_parameter": {
                (tensor_id, a): n for a, n in block_params(descr, image.shape[1:], block_n).items()
            }
        }
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = predict(model=pp, inputs=sample, **kwargs)
        best = min(best, time.perf_counter() - t)
    arr = next(iter(out.members.values())).data.values[0]
    fmt = type(pp._adapter).__name__.replace("ModelAdapter", "").replace("Adapter", "")
    return arr, best, t1 - t0, {"weights": fmt}


def block_params(descr, image_shape, block_n: int) -> dict[str, int]:
    """bioimageio.core's block parameter per parameterized axis: its default ``n`` where the block fits,
    else the largest ``n`` that does (its tiling refuses blocks larger than the image)."""
    axes = [a for a in descr.inputs[0].axes if a.type == "space"]
    out = {}
    for a, s in zip(axes, image_shape, strict=True):
        if not isinstance(a.size, int):
            out[str(a.id)] = max(0, min(block_n, (s - a.size.min) // a.size.step))
    return out


def bioimageio_blocks(package, image_shape, *, block_n=10, block_shape=None):
    """Number and shape of the blocks bioimageio.core cuts (its own splitting function)."""
    from bioimageio.core.block_meta import split_shape_into_blocks
    from bioimageio.spec import load_description

    descr = load_description(package, perform_io_checks=False)
    axes = [a for a in descr.inputs[0].axes if a.type == "space"]
    if block_shape is None:
        ns = block_params(descr, image_shape, block_n)
        block_shape = [
            a.size if isinstance(a.size, int) else a.size.min + ns[str(a.id)] * a.size.step for a in axes
        ]
    halo = {str(a.id): a.halo for a in descr.outputs[0].axes if getattr(a, "halo", None)}
    shape = {str(a.id): s for a, s in zip(axes, image_shape, strict=True)}
    n, _ = split_shape_into_blocks(
        shape, dict(zip(shape, block_shape, strict=True)), {k: halo.get(k, 0) for k in shape}
    )
    return n, tuple(block_shape)


def bare_forward_seconds(
    package,
    fmt: str,
    tile: tuple[int, ...],
    n_calls: int,
    *,
    batch: int = 1,
    device: str = "cpu",
    repeats: int = 1,
) -> float:
    """Floor: ``n_calls`` forward passes of a batch of tiles through the bare network (no tiling, no I/O);
    the best of ``repeats``."""
    from runner.inference import load_package
    from runner.inference.adapters import create_adapter
    from runner.inference.devices import resolve_device

    pkg = load_package(package)
    adapter = create_adapter(pkg, device=resolve_device(device), weights=fmt, trust_code=True)
    channels = pkg.inputs[0].n_channels or 1
    x = np.random.default_rng(0).standard_normal((batch, channels, *tile)).astype(np.float32)
    if adapter.is_torch and device != "cpu":
        import torch

        x = torch.from_numpy(x).to(device)
        adapter(x)
        torch.cuda.synchronize()
    else:
        adapter(x)  # warm-up, not counted
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n_calls):
            y = adapter(x)
        if adapter.is_torch and device != "cpu":
            import torch

            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    del y
    return best


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max()) if a.shape == b.shape else float("nan")


# ---------------------------------------------------------------------------------------------------- rows


def rows_defaults(pkg2d: Path, pkg3d: Path, img2d: np.ndarray, img3d: np.ndarray):
    """Rows, and bioimageio.core's outputs keyed "2D"/"3D" (references for later rows)."""
    rows, refs = [], {}
    for name, pkg, img in (
        ("2D " + "x".join(map(str, img2d.shape[1:])), pkg2d, img2d),
        ("3D " + "x".join(map(str, img3d.shape[1:])), pkg3d, img3d),
    ):
        ours, t_ours, load_ours, info = run_runner(pkg, img)
        log(f"runner {name}: {t_ours:.2f} s")
        theirs, t_bio, load_bio, binfo = run_bioimageio(pkg, img)
        log(f"bioimageio.core {name}: {t_bio:.2f} s")
        refs[name[:2]] = theirs
        n_blocks, block = bioimageio_blocks(pkg, img.shape[1:])
        rows.append(
            {
                "case": f"defaults, U-Net {name}",
                "tool": "runner predict",
                "weights": info["weights"],
                "tiles": f"{info['tiles']} x {'x'.join(map(str, info['tile']))}",
                "seconds": t_ours,
                "load_s": load_ours,
                "max_abs_diff": max_diff(ours, theirs),
            }
        )
        rows.append(
            {
                "case": f"defaults, U-Net {name}",
                "tool": "bioimageio.core",
                "weights": binfo["weights"],
                "tiles": f"{n_blocks} x {'x'.join(map(str, block))}",
                "seconds": t_bio,
                "load_s": load_bio,
                "max_abs_diff": 0.0,
                "speedup": t_bio / t_ours,
            }
        )
    return rows, refs


def rows_big_tiles(
    pkg3d: Path, img3d: np.ndarray, reference: np.ndarray | None, memory_mb: int = 8192
) -> list[dict]:
    """runner with a larger memory budget on the volume: fewer, larger tiles, less halo recomputation."""
    from runner.inference import Predictor

    with Predictor(pkg3d, device="cpu", memory_mb=memory_mb) as p:
        t = time.perf_counter()
        out = next(iter(p.predict(img3d).values()))
        seconds = time.perf_counter() - t
        run = p.last_run
    diff = max_diff(out, reference) if reference is not None else float("nan")
    return [
        {
            "case": f"U-Net 3D {'x'.join(map(str, img3d.shape[1:]))}, --memory-mb {memory_mb}",
            "tool": "runner predict",
            "weights": p.weight_format,
            "tiles": f"{run.n_tiles} x {'x'.join(map(str, run.tile_shape))}",
            "seconds": seconds,
            "max_abs_diff": diff,
        }
    ]


def rows_same_weights(img2d: np.ndarray, formats=("onnx", "torchscript"), repeats: int = 2) -> list[dict]:
    """Best of ``repeats`` for each tool and each floor (the shared CPU is noisy)."""
    rows = []
    for fmt in formats:
        ours, t_ours, _, info = run_runner(ZOO, img2d, weights=fmt, repeats=repeats)
        floor_ours = bare_forward_seconds(
            ZOO,
            fmt,
            info["tile"],
            math.ceil(info["tiles"] / info["batch"]),
            batch=info["batch"],
            repeats=repeats,
        )
        log(f"runner {fmt}: {t_ours:.2f} s, floor {floor_ours:.2f} s")
        theirs, t_bio, _, _ = run_bioimageio(ZOO, img2d, weights=fmt, block_shape=(512, 512), repeats=repeats)
        n_blocks, block = bioimageio_blocks(ZOO, img2d.shape[1:], block_shape=(512, 512))
        floor_bio = bare_forward_seconds(ZOO, fmt, block, n_blocks, repeats=repeats)
        log(f"bioimageio.core {fmt}: {t_bio:.2f} s, floor {floor_bio:.2f} s")
        case = f"same weights ({fmt}), zoo unet2d_nuclei_broad {'x'.join(map(str, img2d.shape[1:]))}"
        rows.append(
            {
                "case": case,
                "tool": "runner predict",
                "weights": fmt,
                "tiles": f"{info['tiles']} x {'x'.join(map(str, info['tile']))}",
                "seconds": t_ours,
                "floor_s": floor_ours,
                "overhead": t_ours / floor_ours - 1,
                "max_abs_diff": max_diff(ours, theirs),
            }
        )
        rows.append(
            {
                "case": case,
                "tool": "bioimageio.core",
                "weights": fmt,
                "tiles": f"{n_blocks} x {'x'.join(map(str, block))}",
                "seconds": t_bio,
                "floor_s": floor_bio,
                "overhead": t_bio / floor_bio - 1,
                "max_abs_diff": 0.0,
                "speedup": t_bio / t_ours,
            }
        )
    return rows


def rows_gpu(pkg2d: Path, img2d: np.ndarray) -> list[dict]:
    from runner.inference.devices import torch_cuda_count

    if torch_cuda_count() == 0:
        return [{"case": "GPU", "tool": "(no CUDA device here: skipped)"}]
    rows = []
    big = np.tile(img2d, (1, 2, 2))
    for name, pkg, img, block_n in (("zoo 512 fixed", ZOO, big, None), ("U-Net param.", pkg2d, big, 10)):
        ours, t_ours, _, info = run_runner(pkg, img, weights="torchscript", device="cuda")
        kwargs = {"block_shape": (512, 512)} if block_n is None else {"block_n": block_n}
        theirs, t_bio, _, _ = run_bioimageio(pkg, img, weights="torchscript", device="cuda", **kwargs)
        case = f"GPU torchscript, {name} {'x'.join(map(str, img.shape[1:]))}"
        rows.append(
            {
                "case": case,
                "tool": "runner predict",
                "weights": "torchscript",
                "tiles": f"{info['tiles']} x {'x'.join(map(str, info['tile']))} (batch {info['batch']})",
                "seconds": t_ours,
                "max_abs_diff": max_diff(ours, theirs),
            }
        )
        rows.append(
            {
                "case": case,
                "tool": "bioimageio.core",
                "weights": "torchscript",
                "seconds": t_bio,
                "max_abs_diff": 0.0,
                "speedup": t_bio / t_ours,
            }
        )
    return rows


_MEMORY_SCRIPT = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from runner.inference import Predictor

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
p = Predictor({pkg!r}, device="cpu", weights="onnx", tile={tile}, batch_size=2)
x = np.random.default_rng(0).normal(100, 20, (1, {n}, {n})).astype(np.float32)
p.predict(x[:, :256, :256])  # warm-up: the session's own buffers are not part of the image's cost
base = rss("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
t = time.perf_counter(); out = p.predict(x); t = time.perf_counter() - t
peak = rss("VmHWM:")
print(json.dumps({{"base_mb": base, "peak_mb": peak, "seconds": t, "tiles": p.last_run.n_tiles,
                  "tile": list(p.last_run.tile_shape), "batch": p.last_run.batch_size,
                  "io_mb": (x.nbytes + sum(o.nbytes for o in out.values())) / 2**20}}))
"""


def rows_memory(pkg2d: Path, sizes=(1024, 2048, 4096)) -> list[dict]:
    rows = []
    for n in sizes:
        code = _MEMORY_SCRIPT.format(root=str(ROOT), pkg=str(pkg2d), n=n, tile=(512, 512))
        res = json.loads(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        rows.append(
            {
                "case": "memory",
                "tool": "runner predict",
                "image": f"{n}x{n}",
                "tiles": f"{res['tiles']} x {'x'.join(map(str, res['tile']))} (batch {res['batch']})",
                "seconds": res["seconds"],
                "peak_increase_mb": res["peak_mb"] - res["base_mb"],
                "image_and_outputs_mb": res["io_mb"],
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------- table


def fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.2f}"
    return "" if value is None else str(value)


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def gpu_only(n: int) -> None:
    """The GPU rows alone: runner vs bioimageio.core with TorchScript on CUDA, same package and image."""
    import torch

    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        pkg2d = build_unet_package(Path(tmp) / "unet2d", 2)
        rows = rows_gpu(pkg2d, synthetic_image((n, n)))
    print(f"\n## runner predict vs bioimageio.core on {torch.cuda.get_device_name(0)}\n")
    print(markdown(rows, ["case", "tool", "weights", "tiles", "seconds", "speedup", "max_abs_diff"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller images (a smoke run)")
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU rows (e.g. on a borrowed GPU)")
    args = parser.parse_args()
    if args.gpu_only:
        gpu_only(2048)
        return
    n2, shape3 = (1024, (48, 128, 128)) if args.quick else (2048, (64, 256, 256))
    import torch

    print(
        f"torch threads {torch.get_num_threads()}, CPU cores {__import__('os').cpu_count()}", file=sys.stderr
    )
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        pkg2d = build_unet_package(Path(tmp) / "unet2d", 2)
        pkg3d = build_unet_package(Path(tmp) / "unet3d", 3)
        img2d, img3d = synthetic_image((n2, n2)), synthetic_image(shape3, seed=1)
        rows, refs = rows_defaults(pkg2d, pkg3d, img2d, img3d)
        rows += rows_big_tiles(pkg3d, img3d, reference=refs["3D"])
        rows += rows_same_weights(img2d)
        rows += rows_gpu(pkg2d, img2d)
        mem = rows_memory(pkg2d, sizes=(1024, 2048) if args.quick else (1024, 2048, 4096))
    print("\n## runner predict vs bioimageio.core (seconds exclude model loading)\n")
    print(
        markdown(
            rows,
            [
                "case",
                "tool",
                "weights",
                "tiles",
                "seconds",
                "load_s",
                "floor_s",
                "overhead",
                "speedup",
                "max_abs_diff",
            ],
        )
    )
    print("\n## peak memory of runner predict (fresh process per image; tiles <= 512, batch 2, ONNX)\n")
    print(markdown(mem, ["image", "tiles", "seconds", "image_and_outputs_mb", "peak_increase_mb"]))
    print(
        "\npeak_increase_mb: resident memory added while predicting (after a warm-up); it holds the image, "
        "its "
        "preprocessed and padded copies, the outputs, and the network's activations for one batch of tiles."
    )


if __name__ == "__main__":
    main()
