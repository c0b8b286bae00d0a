"""What the CPU route gives on DSB2018: target codes, GAInS weighting and width at equal training budget.

Every variant is derived from ``model_specs/unet2d_bcd_nuclei.yaml`` and changes one thing:

| variant | change |
|---|---|
| ``bcd`` | none (the shipped recipe's targets, loss and net) |
| ``bcdv2`` | targets BCDv2 (signed distance Dv2 instead of the per-nucleus D), ``watershed_bcdv2`` |
| ``bcm`` | targets BCM (foreground mask M instead of D), ``watershed_bcm`` |
| ``bcd_gains`` | BCD with every pixel's loss weighted by the GAInS gradient-anomaly map |
| ``bcd_wide`` | BCD with 32 base features instead of 16, a quarter of the iterations (equal compute) |

The honest protocol of issue 16, through the CLI a user runs: ``runner train`` from random weights on
``dsb2018/train`` minus the 40 held-out images (``data.held_out``), no validation during training (no model
selection on ``val``: the last weights are used); ``runner tune RUN --held-out --validate dsb2018/val
--no-tta`` tunes the post-processing on the 40 held-out images only and scores the tuned params on the 50
``val`` images. Every variant gets the same iterations (the wide net a quarter of them: equal compute), seed,
patches and schedule (cosine, completed), so a row differs from ``bcd`` only by its change; the training
seconds say what it cost.

Run: ``.venv/bin/python benchmarks/cpu_route.py [--iterations 2000] [--threads 1] [--variants bcd,bcm]
[--out runs/cpu_route] [--data ../shared/data/dsb2018]``. A variant whose run folder already holds a tuned
package is not run again (delete its folder to redo it); the table is printed and written to
``OUT/table.md``, the loss curves to ``OUT/loss.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "model_specs" / "unet2d_bcd_nuclei.yaml"
DSB = ROOT.parent / "shared" / "data" / "dsb2018"
RUNNER = [sys.executable, "-m", "runner"]

VARIANTS: dict[str, tuple[str, dict]] = {
    "bcd": ("BCD (shipped recipe)", {}),
    "bcdv2": (
        "BCDv2 codes",
        {"targets": {"code": "BCDv2"}, "postprocessing": {"name": "watershed_bcdv2", "params": {}}},
    ),
    "bcm": (
        "BCM codes",
        {"targets": {"code": "BCM"}, "postprocessing": {"name": "watershed_bcm", "params": {}}},
    ),
    "bcd_gains": ("BCD + GAInS loss weights", {"loss": {"gradient_anomaly": {}}}),
    "bcd_wide": ("BCD, 32 base features", {"model": {"features": 32}}),
}
COLUMNS = ("accuracy@0.5", "accuracy@0.75", "av_ap_50_90", "f1@0.5", "panoptic_quality@0.5", "aji")


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and v and isinstance(out.get(k), dict) else v
    return out


def _recipe(name: str, iterations: int, threads: int) -> dict:
    base = yaml.safe_load(BASE.read_text())
    recipe = _merge(base, VARIANTS[name][1])
    recipe["name"] = f"cpu_route_{name}"
    if name == "bcd_wide":
        iterations = max(1, iterations // 4)  # equal compute: 4x the multiply-adds per iteration
    recipe["training"].update(iterations=iterations, epochs=None, threads=threads)
    recipe["validation"].update(every=10**9, patience=None)
    recipe["data"]["val_fraction"] = 0.0
    return recipe


def _train_data(dsb: Path, out: Path) -> Path:
    """A dataset folder holding only ``train/`` (so no validation split exists during training)."""
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "train"
    if not link.exists():
        link.symlink_to((dsb / "train").resolve())
    return folder


def _run(cmd: list, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write("$ " + " ".join(map(str, cmd)) + "\n")
        fh.flush()
        done = subprocess.run([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}; see {log}")
    return time.perf_counter() - t0


def _train_seconds(run: Path) -> int:
    """Training time of the whole run (summed over resumed parts), from the last train_log.csv row."""
    import csv

    with (run / "train_log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return round(float(rows[-1]["elapsed_s"]))


def run_variant(name: str, args, data: Path) -> dict:
    folder = args.out / name
    tuned = folder / "tuned.zip"
    facts_file = folder / "facts.json"
    if tuned.is_file() and facts_file.is_file():
        facts = json.loads(facts_file.read_text())
        return {**facts, "train_s": _train_seconds(folder / "run")}
    folder.mkdir(parents=True, exist_ok=True)
    recipe_file = folder / "recipe.yaml"
    recipe = _recipe(name, args.iterations, args.threads)
    recipe_file.write_text(yaml.safe_dump(recipe, sort_keys=False))
    log = folder / "log.txt"
    run = folder / "run"
    if (run / "checkpoints" / "last.pt").is_file():
        _run([*RUNNER, "train", recipe_file, "-d", data, "-o", run, "--resume", "--no-progress"], log)
    else:
        _run([*RUNNER, "train", recipe_file, "-d", data, "-o", run, "--no-progress"], log)
    tune_s = _run(
        [*RUNNER, "tune", run, "-d", args.data / "train", "--held-out", "--validate", args.data / "val"]
        + ["--no-tta", "-o", tuned, "--overwrite", "-q"],
        log,
    )
    with zipfile.ZipFile(tuned) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    cfg = rdf["config"]["runner"]
    facts = {
        "variant": name,
        "what": VARIANTS[name][0],
        "iterations": recipe["training"]["iterations"],
        "train_s": _train_seconds(run),
        "tune_s": round(tune_s),
        "params": cfg["postprocessing"]["params"],
        "held_out_score": cfg["tuned_on"]["score"],
        "val": cfg["validation"]["metrics"],
    }
    facts_file.write_text(json.dumps(facts, indent=1))
    return facts


def table(rows: list[dict]) -> str:
    head = ["variant", "iterations", "train s", "tuned on 40 held-out: acc@0.5"]
    head += ["val " + c.replace("av_ap_50_90", "mean acc 0.5:0.9") for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["what"], str(r["iterations"]), str(r["train_s"]), f"{r['held_out_score']:.3f}"]
        cells += [f"{r['val'][c]:.3f}" for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loss_chart(rows: list[dict], out: Path) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        log = out / r["variant"] / "run" / "train_log.csv"
        if not log.is_file():
            continue
        with log.open() as fh:
            data = [(int(row["iteration"]), float(row["loss"])) for row in csv.DictReader(fh)]
        its, loss = np.array([d[0] for d in data]), np.array([d[1] for d in data])
        k = min(5, len(loss))  # moving average over 5 log rows (250 iterations)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(its[k - 1 :], smooth, label=r["what"], lw=1.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (sum over channels, moving average)")
    ax.set_title("CPU route on DSB2018 (equal iterations, held-out images excluded)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "cpu_route")
    ap.add_argument("--data", type=Path, default=DSB)
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    data = _train_data(args.data, args.out)
    rows = []
    for name in names:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        rows.append(run_variant(name, args, data))
        print(table(rows).splitlines()[-1], flush=True)
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    loss_chart(rows, args.out)
    print(text)


if __name__ == "__main__":
    main()
