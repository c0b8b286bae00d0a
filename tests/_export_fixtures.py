"""Tiny trained runs (2D, 3D) for the exporter tests: a few iterations on synthetic data, seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

from runner.recipes import merge, recipe_from_dict
from runner.synthetic import make_dataset
from runner.training import train


def tiny_recipe(dims: int, **override):
    base = {
        "name": f"tiny{dims}d_bcd",
        "dims": dims,
        "model": {"depth": 2, "features": 8},
        "data": {"patch": [48, 48] if dims == 2 else [16, 32, 32]},
        "training": {
            "iterations": 20,
            "batch_size": 4 if dims == 2 else 2,
            "log_every": 5,
            "checkpoint_every": 10,
            "threads": 1,
        },
        "optimizer": {"lr": 0.01},
        "schedule": {"name": "constant", "warmup": 0},
        "validation": {"every": 20, "metric": "accuracy@0.5"},
        "postprocessing": {"name": "watershed_bcd", "params": {"min_seed_size": 2, "min_size": 5}},
        "export": {
            "description": f"Tiny {dims}D test model.",
            "authors": [{"name": "Test Author", "affiliation": "Lab"}],
            "tags": ["test", "nuclei"],
            "citations": [
                {"text": "A citation without a link"},
                {"text": "Synthetic", "url": "https://example.com/"},
            ],
        },
    }
    return recipe_from_dict(merge(base, override))


def make_run(root: Path, dims: int) -> tuple[Path, Path]:
    """Train a tiny run; returns ``(run folder, data folder)`` (same data as tests/conftest.py's datasets)."""
    data = root / f"data{dims}d"
    if dims == 2:
        make_dataset(data, ndim=2, n_train=4, n_val=2, shape=(96, 96), n_objects=12)
    else:
        make_dataset(data, ndim=3, n_train=3, n_val=1, shape=(32, 64, 64), n_objects=10)
    run = root / f"run{dims}d"
    train(tiny_recipe(dims), data, run, progress=False)
    return run, data
