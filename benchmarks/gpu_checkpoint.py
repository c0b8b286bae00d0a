"""Carry a training checkpoint back from a borrowed GPU machine (its returned files are capped at 16 MiB).

``slim RUN OUT``: write ``OUT/ckpt.partNN`` (the run's newest checkpoint without optimizer, scheduler and RNG
states, split into parts below the cap) and copy ``train_log.csv``; atomic per part, so a copy interrupted by
the machine's time limit leaves the previous complete set. ``join OUT RUN``: rebuild a run folder
(``RUN/checkpoints/best.pt`` + ``last.pt``, ``recipe.yaml``, ``train_log.csv``) that ``runner export`` and
``runner tune`` read.

Run: ``python benchmarks/gpu_checkpoint.py slim /tmp/run $OUT`` (there), then
``python benchmarks/gpu_checkpoint.py join <fetched folder> runs/gpu_wide`` (back here).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PART_BYTES = 15 * 2**20
DROP = ("optimizer_state", "scheduler_state", "scaler_state", "rng", "pending_log")


def slim(run: Path, out: Path) -> list[Path]:
    """Write the slim parts of ``run``'s newest checkpoint into ``out``; returns their paths."""
    import torch

    from runner.training import load_checkpoint

    ckpt_dir = run / "checkpoints"
    candidates = [p for p in (ckpt_dir / "last.pt", ckpt_dir / "best.pt") if p.is_file()]
    if not candidates:
        return []
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    state = {k: v for k, v in load_checkpoint(newest).items() if k not in DROP}
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(0, len(data), PART_BYTES):
        part = out / f"ckpt.part{i // PART_BYTES:02d}"
        tmp = part.with_name(part.name + ".tmp")
        tmp.write_bytes(data[i : i + PART_BYTES])
        tmp.replace(part)
        parts.append(part)
    for stale in sorted(out.glob("ckpt.part*")):
        if stale not in parts and not stale.name.endswith(".tmp"):
            stale.unlink()
    if (run / "train_log.csv").is_file():
        shutil.copyfile(run / "train_log.csv", out / "train_log.csv")
    return parts


def join(fetched: Path, run: Path) -> Path:
    """Rebuild a run folder from the parts in ``fetched``; returns ``run``."""
    import torch

    from runner.recipes import recipe_from_dict, save_recipe
    from runner.training.checkpoints import save_checkpoint

    parts = sorted(fetched.glob("ckpt.part[0-9][0-9]"))
    if not parts:
        raise SystemExit(f"no ckpt.partNN files in {fetched}")
    state = torch.load(io.BytesIO(b"".join(p.read_bytes() for p in parts)), weights_only=True)
    state.pop("format", None)
    (run / "checkpoints").mkdir(parents=True, exist_ok=False)
    for name in ("best.pt", "last.pt"):
        save_checkpoint(run / "checkpoints" / name, state)
    save_recipe(recipe_from_dict(state["recipe"], source=str(parts[0])), run / "recipe.yaml")
    if (fetched / "train_log.csv").is_file():
        shutil.copyfile(fetched / "train_log.csv", run / "train_log.csv")
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("slim", "join"))
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    args = ap.parse_args()
    if args.action == "slim":
        parts = slim(args.src, args.dst)
        print(f"{len(parts)} part(s) in {args.dst}")
    else:
        print(f"run folder {join(args.src, args.dst)}")


if __name__ == "__main__":
    main()
