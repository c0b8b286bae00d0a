"""Device selection: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

``auto`` picks the first CUDA device when either onnxruntime's CUDA provider or torch's CUDA is usable, else
the CPU. Asking for ``cuda`` on a machine without one is a :class:`UserError`, not a silent fallback.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from runner.errors import UserError


@dataclass(frozen=True)
class Device:
    """Where the network runs."""

    kind: str
    """``cpu`` or ``cuda``."""
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"


def ort_has_cuda() -> bool:
    """True when the installed onnxruntime offers the CUDA execution provider."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def torch_cuda_count() -> int:
    """Number of CUDA devices torch can use (0 without torch or CUDA)."""
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(text: str | Device | None = "auto") -> Device:
    """Parse ``auto | cpu | cuda | cuda:N`` into a :class:`Device`.

    Raises
    ------
    UserError
        Unknown spelling, or CUDA asked for but not available.
    """
    if isinstance(text, Device):
        return text
    spec = (text or "auto").strip().lower()
    if spec == "cpu":
        return Device("cpu")
    if spec == "auto":
        if torch_cuda_count() > 0 or ort_has_cuda():
            return Device("cuda", 0)
        return Device("cpu")
    match = re.fullmatch(r"(cuda|gpu)(?::(\d+))?", spec)
    if not match:
        raise UserError(f"unknown device {text!r}", hint="use auto, cpu, cuda or cuda:N")
    index = int(match.group(2) or 0)
    count = torch_cuda_count()
    if count == 0 and not ort_has_cuda():
        raise UserError(
            f"device {text!r} asked for, but no CUDA device is available here",
            hint="use --device cpu (or auto)",
        )
    if count and index >= count:
        raise UserError(
            f"device {text!r} asked for, but only {count} CUDA device(s) exist", hint="use cuda:0"
        )
    return Device("cuda", index)


def tiles_on_gpu(padded: list[np.ndarray], device: Device, forward: Callable):
    """GPU path: the padded inputs move to the device once (tiles are cut there and batched with
    ``torch.stack``) unless they would take more than a quarter of the free device memory (then each batch
    moves on its own); each batch's outputs come back to host memory in one copy per output, so the
    stitched outputs never occupy device memory."""
    import torch

    dev = torch.device(str(device))

    def forward_to_host(batches: list) -> list:
        return [o.cpu().numpy() if isinstance(o, torch.Tensor) else o for o in forward(batches)]

    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        if sum(x.nbytes for x in padded) > free / 4:
            return padded, np.stack, forward_to_host
    tensors = [torch.from_numpy(np.ascontiguousarray(x)).to(dev) for x in padded]
    return tensors, torch.stack, forward_to_host
