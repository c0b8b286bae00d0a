"""The training loop: patches -> AdamW steps, validation rounds, checkpoints, logs, charts, resume, Ctrl-C."""

from __future__ import annotations

import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from runner.contracts import BestInfo, RunMeta
from runner.recipes import Recipe, save_recipe
from runner.training import checkpoints as ck
from runner.training.charts import write_charts, write_log
from runner.training.data import Datasets
from runner.training.losses import InstanceLoss
from runner.training.sampling import Batch, PatchSampler
from runner.training.setup import InterruptGuard, WallClock, make_optimizer, make_scheduler
from runner.training.validate import ValResult, higher_is_better, validate


@dataclass
class TrainResult:
    """What a call to :func:`runner.training.train` achieved."""

    run_dir: Path
    iteration: int
    total_iterations: int
    best_value: float | None
    best_iteration: int | None
    metric: str
    stopped_early: bool
    interrupted: bool
    seconds: float
    budget_reached: bool = False
    """Stopped (resumably) because the wall-time budget of this invocation (``max_minutes``) ran out."""


class _ValidationAborted(Exception):
    pass


class Trainer:
    """Holds the model, optimizer, data sampler and run state of one training run."""

    def __init__(
        self,
        recipe: Recipe,
        data: Datasets,
        out: Path,
        device: torch.device,
        *,
        progress: bool = True,
        data_dir: str = "",
    ):
        from runner.models import halo
        from runner.targets import channel_specs

        self.recipe, self.data, self.out, self.device, self.progress = (
            recipe,
            data,
            Path(out),
            device,
            progress,
        )
        self.total = recipe.total_iterations(len(data.train))
        seed = recipe.training.seed
        torch.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(seed)
        self.model = recipe.build_model().to(device)
        self.optimizer = make_optimizer(self.model, recipe)
        self.scheduler = make_scheduler(self.optimizer, recipe, self.total)
        self.amp_dtype = None
        self.scaler = None
        if device.type == "cuda" and recipe.training.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if self.amp_dtype == torch.float16:
                self.scaler = torch.amp.GradScaler("cuda")
        specs = channel_specs(recipe.targets.code, recipe.targets.options)
        self.loss_fn = InstanceLoss(
            specs, recipe.targets.weights(), recipe.loss, n_classes=recipe.targets.n_classes
        )
        self.sampler = PatchSampler(data.train, recipe)
        self.rng = np.random.default_rng([seed, 1])
        self.halo = halo(recipe.model, recipe.dims, round_to_step=True)
        self.iteration = 0
        self.history: list[dict] = []
        self.best = BestInfo(metric=recipe.validation.metric)
        """The best validation round so far (saved in every checkpoint as ``best``)."""
        self.validation_pending = False
        self.pending_log: list[dict] = []
        """Loss parts of the iterations since the last train_log.csv row."""
        self.elapsed = 0.0
        self.meta = {
            **ck.model_meta(recipe),
            "data": {
                "data_dir": str(data_dir),
                **data.source,
                "train_images": [s.name for s in data.train],
                "val_images": [s.name for s in data.val],
            },
        }

    # ------------------------------------------------------------------------------------------ state

    def state(self) -> dict:
        """The checkpoint dict: the tensors beside a validated :class:`runner.contracts.RunMeta`."""
        meta = RunMeta.model_validate(
            {
                "iteration": self.iteration,
                "total_iterations": self.total,
                "best": self.best.model_dump(),
                "validation_pending": self.validation_pending,
                "pending_log": [dict(p) for p in self.pending_log],
                "history": list(self.history),
                "elapsed_s": self.elapsed,
                "recipe": ck.recipe_state(self.recipe),
                "versions": {"torch": str(torch.__version__), "runner": _runner_version()},
                **self.meta,
            }
        )
        return {
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "scaler_state": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {
                "numpy": self.rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "torch_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            },
            **meta.model_dump(),
        }

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint written by :meth:`state` (same recipe and data)."""
        self.model.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        self.scheduler.load_state_dict(ckpt["scheduler_state"])
        if self.scaler is not None and ckpt.get("scaler_state"):
            self.scaler.load_state_dict(ckpt["scaler_state"])
        self.rng.bit_generator.state = ckpt["rng"]["numpy"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        if self.device.type == "cuda" and ckpt["rng"].get("torch_cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["torch_cuda"])
        self.iteration = int(ckpt["iteration"])
        self.best = BestInfo.model_validate(ckpt["best"])
        self.history = list(ckpt["history"])
        self.validation_pending = bool(ckpt.get("validation_pending"))
        self.pending_log = [dict(p) for p in ckpt.get("pending_log", [])]
        self.elapsed = float(ckpt.get("elapsed_s", 0.0))
        if ckpt.get("init_from"):
            self.meta["init_from"] = ckpt["init_from"]

    # ------------------------------------------------------------------------------------------- steps

    def step(self, batch: Batch) -> dict[str, float]:
        """One optimizer step on ``batch``; returns the loss parts."""
        dev = self.device
        x = torch.from_numpy(batch.image).to(dev, non_blocking=True)
        t = torch.from_numpy(batch.targets).to(dev, non_blocking=True)
        m = torch.from_numpy(batch.mask).to(dev, non_blocking=True)
        w = None if batch.weight is None else torch.from_numpy(batch.weight).to(dev, non_blocking=True)
        c = None if batch.classes is None else torch.from_numpy(batch.classes).to(dev, non_blocking=True)
        self.model.train()
        autocast = (
            torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()
        )
        with autocast:
            logits = self.model.logits(x)
        result = self.loss_fn(logits, t, m, w, c)
        if not torch.isfinite(result.total):
            from runner.errors import UserError

            raise UserError(
                f"the training loss became {float(result.total.detach())} at iteration {self.iteration + 1}",
                hint="start a new run with a lower optimizer.lr (and optimizer.grad_clip on), and check the "
                "images for extreme values",
            )
        self.optimizer.zero_grad(set_to_none=True)
        clip = self.recipe.optimizer.grad_clip
        if self.scaler is not None:
            self.scaler.scale(result.total).backward()
            self.scaler.unscale_(self.optimizer)
            if clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            result.total.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
        self.scheduler.step()
        return {"loss": float(result.total.detach()), **{f"loss_{k}": v for k, v in result.parts.items()}}

    def run_validation(self, guard: InterruptGuard | None = None) -> ValResult | None:
        """A validation round at the current iteration; updates history, best and best.pt."""
        if not self.data.val:
            return None
        samples = self.data.val
        if guard is not None:
            samples = _Watched(samples, guard)
        result = validate(
            self.model,
            samples,
            self.recipe,
            self.loss_fn,
            device=self.device,
            halo=self.halo,
            autocast=self.amp_dtype is not None,
        )
        row = {
            "iteration": self.iteration,
            "val_loss": result.loss,
            "val_metric": result.metric,
            **{f"val_{k}": v for k, v in result.scores.items()},
            "val_seconds": result.seconds,
        }
        if self.history and self.history[-1]["iteration"] == self.iteration:
            self.history[-1].update(row)
        else:
            self.history.append(row)
        self.validation_pending = False
        self._update_best(result.metric)
        return result

    def _update_best(self, value: float) -> None:
        best = self.best.value
        delta = self.recipe.validation.min_delta
        better = best is None or (
            value > best + delta if higher_is_better(str(self.best.metric)) else value < best - delta
        )
        if better and np.isfinite(value):
            self.best = BestInfo(metric=self.best.metric, value=float(value), iteration=self.iteration)
            ck.save_checkpoint(self.out / "checkpoints" / "best.pt", self.state())
        else:
            self.best.rounds_without_improvement += 1

    def save(self, *, charts: bool = True) -> None:
        """Write last.pt and train_log.csv, and the charts when ``charts``."""
        ck.save_checkpoint(self.out / "checkpoints" / "last.pt", self.state())
        write_log(self.out / "train_log.csv", self.history)
        if charts:
            write_charts(self.out / "charts", self.history, metric=self.recipe.validation.metric)

    # -------------------------------------------------------------------------------------------- loop

    def run(
        self,
        *,
        stop_at: int | None = None,
        max_minutes: float | None = None,
        checkpoint_minutes: float | None = None,
    ) -> TrainResult:
        """Train to the end (or to iteration ``stop_at``, or until early stopping or Ctrl-C).

        ``max_minutes``: wall-time budget of this call; when it runs out, last.pt and the charts are written
        and the run stops, resumable. ``checkpoint_minutes``: also write last.pt whenever this much wall time
        has passed since the last write (e.g. 1 on a borrowed machine that may vanish).
        """
        from tqdm import tqdm

        rc = self.recipe
        start_time = time.perf_counter() - self.elapsed
        clock = WallClock(max_minutes, checkpoint_minutes)
        stopped_early = interrupted = budget_reached = False
        n_train = len(self.data.train)
        bar = tqdm(
            total=self.total,
            initial=self.iteration,
            desc="train",
            unit="it",
            disable=not self.progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        with InterruptGuard() as guard:
            try:
                if self.validation_pending:
                    self._validate_now(guard, bar)
                while self.iteration < self.total and not (stop_at is not None and self.iteration >= stop_at):
                    parts = self.step(self.sampler.batch(self.rng))
                    self.iteration += 1
                    self.pending_log.append(parts)
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{parts['loss']:.4f}",
                        lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                        best=_fmt_best(self.best),
                        refresh=False,
                    )
                    it, last = self.iteration, self.iteration == self.total
                    self.elapsed = time.perf_counter() - start_time
                    if it % rc.training.log_every == 0 or last:
                        self._log_row(self.pending_log, n_train)
                        self.pending_log = []
                    due_val = it % rc.validation.every == 0 or last
                    if due_val:
                        self.validation_pending = True
                        self._validate_now(guard, bar)
                    budget_reached = clock.budget_over() and not last
                    if (
                        due_val
                        or it % rc.training.checkpoint_every == 0
                        or last
                        or guard.requested
                        or budget_reached
                        or clock.checkpoint_due()
                    ):
                        self.save(charts=due_val or last or guard.requested or budget_reached)
                        clock.saved()
                    if budget_reached:
                        break
                    if self._patience_over():
                        stopped_early = True
                        break
                    if guard.requested:
                        interrupted = True
                        break
            except _ValidationAborted:
                interrupted = True
                self.save()
            finally:
                bar.close()
        if stop_at is not None and not (interrupted or budget_reached) and self.iteration < self.total:
            self.save()
        self.elapsed = time.perf_counter() - start_time
        self._finish()
        return TrainResult(
            run_dir=self.out,
            iteration=self.iteration,
            total_iterations=self.total,
            best_value=self.best.value,
            best_iteration=self.best.iteration,
            metric=str(self.best.metric),
            stopped_early=stopped_early,
            interrupted=interrupted,
            seconds=self.elapsed,
            budget_reached=budget_reached,
        )

    def _validate_now(self, guard: InterruptGuard, bar) -> None:
        bar.set_description("validating")
        self.run_validation(guard)
        self.validation_pending = False
        bar.set_description("train")

    def _log_row(self, acc: list[dict], n_train: int) -> None:
        row = {
            "iteration": self.iteration,
            "epoch": self.iteration * self.recipe.training.batch_size / max(n_train, 1),
            "lr": float(self.scheduler.get_last_lr()[0]),
        }
        for key in acc[0]:
            row[key] = float(np.mean([a[key] for a in acc]))
        row["elapsed_s"] = self.elapsed
        self.history.append(row)

    def _patience_over(self) -> bool:
        patience = self.recipe.validation.patience
        return patience is not None and self.best.rounds_without_improvement >= patience

    def _finish(self) -> None:
        """Without validation data, the last checkpoint is also the best one."""
        last, best = self.out / "checkpoints" / "last.pt", self.out / "checkpoints" / "best.pt"
        if not self.data.val and last.is_file() and self.iteration >= self.total:
            shutil.copyfile(last, best)


class _Watched(list):
    """A list of validation samples that stops the round when Ctrl-C was pressed."""

    def __init__(self, samples, guard: InterruptGuard):
        super().__init__(samples)
        self.guard = guard

    def __iter__(self):
        for s in super().__iter__():
            if self.guard.requested:
                raise _ValidationAborted
            yield s


def _fmt_best(best: BestInfo) -> str:
    return "-" if best.value is None else f"{best.value:.4f}"


def _runner_version() -> str:
    from runner import __version__

    return __version__


def write_run_recipe(out: Path, recipe: Recipe) -> None:
    """``recipe.yaml`` of the run: the resolved recipe (every default filled in)."""
    save_recipe(recipe, out / "recipe.yaml")
