"""Devices, threads, optimizer + schedule, Ctrl-C handling and run-folder checks for the training loop."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from pathlib import Path

import torch

from runner.errors import UserError
from runner.recipes import Recipe


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; UserError if unavailable."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(
                f"--device {device}: no CUDA device is available here", hint="use --device cpu (or auto)"
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(recipe: Recipe):
    """Run with torch's intra-op threads set from the recipe (default: every available core), then restore.

    On a shared CPU fewer threads than cores can be much faster: torch's worker threads wait for each
    other at every operation, so one descheduled thread stalls them all.
    """
    before = torch.get_num_threads()
    n = recipe.training.threads or available_cores()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW over the model's parameters (no weight decay on biases and normalisation weights)."""
    opt = recipe.optimizer
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=opt.lr, betas=opt.betas)


def lr_factor(recipe: Recipe, total: int):
    """``f(iteration) -> multiplier of the peak learning rate`` for the recipe's schedule."""
    sched = recipe.schedule
    warmup = min(sched.warmup, max(total - 1, 0))

    def factor(it: int) -> float:
        if warmup and it < warmup:
            return (it + 1) / warmup
        if sched.name == "constant":
            return 1.0
        if sched.name == "step":
            return sched.gamma ** ((it - warmup) // sched.every)
        span = max(1, total - warmup)
        progress = min(1.0, (it - warmup) / span)
        return sched.min_lr_ratio + (1 - sched.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total: int):
    """A ``LambdaLR`` stepped once per iteration."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe, total))


class InterruptGuard:
    """Turn the first Ctrl-C into a request the loop honours at the next safe point; a second one aborts."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._old or signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def prepare_run_dir(out: Path, *, resume: bool) -> None:
    """Check ``out`` for a new run (absent or empty) or a resumed one (holding checkpoints/last.pt)."""
    out = Path(out)
    if resume:
        if not (out / "checkpoints" / "last.pt").is_file():
            raise UserError(
                "nothing to resume: no checkpoints/last.pt", path=out, hint="start a new run without --resume"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            "run folder exists and is not empty",
            path=out,
            hint="choose a new --out, or add --resume to continue that run",
        )
    if not out.parent.exists():
        raise UserError("parent folder of the run folder does not exist", path=out.parent)


class WallClock:
    """Wall time of one ``Trainer.run`` call: its budget, and when a timed checkpoint is due."""

    def __init__(self, max_minutes: float | None, checkpoint_minutes: float | None):
        self.start = self.last_save = time.perf_counter()
        self.budget_s = None if max_minutes is None else 60.0 * max_minutes
        self.every_s = None if checkpoint_minutes is None else 60.0 * checkpoint_minutes

    def budget_over(self) -> bool:
        return self.budget_s is not None and time.perf_counter() - self.start >= self.budget_s

    def checkpoint_due(self) -> bool:
        return self.every_s is not None and time.perf_counter() - self.last_save >= self.every_s

    def saved(self) -> None:
        self.last_save = time.perf_counter()
