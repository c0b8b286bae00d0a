"""Weight-format adapters behind one factory: ONNX (onnxruntime), TorchScript, PyTorch state dict.

:func:`create_adapter` tries the formats a package has in priority order for the device (ONNX first:
onnxruntime is the fastest here on CPU and has a CUDA provider; then TorchScript; ``pytorch_state_dict`` last
and only with
``trust_code=True`` because it runs the package's own Python source). Each framework is imported only when its
format is used. An adapter is a callable ``adapter(*inputs) -> list[outputs]`` on batched arrays in the
model's axis order (numpy in, numpy out; the torch adapters also accept and return torch tensors, which the
GPU path uses to keep tiles on the device).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runner.errors import UserError
from runner.inference.devices import Device, ort_has_cuda
from runner.inference.package import Package
from runner.safety import CODE_FORMATS, IntegrityError, UntrustedCode, load_torchscript, require_trust
from runner.safety.trust import check_onnx, describe_load_error

RUNNABLE = ("onnx", "torchscript", "pytorch_state_dict")


def weight_priority(device: Device) -> tuple[str, ...]:
    """Formats in the order they are tried on ``device``."""
    if device.is_cuda and not ort_has_cuda():
        return ("torchscript", "pytorch_state_dict", "onnx")
    return RUNNABLE


def candidate_formats(pkg: Package, *, device: Device, weights: str | None, trust_code: bool) -> list[str]:
    """The weight formats to try, best first; raises a :class:`UserError` when none can run.

    Parameters
    ----------
    pkg : the package.
    device : where the network runs.
    weights : a format forced by the user (``--weights``), or None for automatic choice.
    trust_code : allow ``pytorch_state_dict`` (runs the package's Python source).
    """
    have = list(pkg.weight_formats)
    if weights is not None:
        if weights not in have:
            raise UserError(
                f"the package has no {weights!r} weights",
                path=pkg.source,
                hint=f"it has {', '.join(have) or 'none'}",
            )
        if weights not in RUNNABLE:
            raise UserError(
                f"{weights!r} weights cannot be run by runner",
                path=pkg.source,
                hint=f"runner runs {', '.join(RUNNABLE)}",
            )
        require_trust(weights, trust_code=trust_code, path=pkg.source)
        return [weights]
    runnable = [f for f in weight_priority(device) if f in have]
    if not runnable:
        raise UserError(
            f"the package has only {', '.join(have) or 'no'} weights; runner runs "
            f"{', '.join(RUNNABLE)} weights (TensorFlow/Keras are not supported)",
            path=pkg.source,
            hint="convert the model to ONNX (e.g. with tf2onnx) or use a package with one of those formats",
        )
    allowed = [f for f in runnable if f not in CODE_FORMATS or trust_code]
    if not allowed:
        require_trust(runnable[0], trust_code=trust_code, path=pkg.source)
    return allowed


@dataclass
class Adapter:
    """A loaded network: ``adapter(*inputs) -> list of outputs`` on batched arrays in model axis order."""

    weight_format: str
    device: Device
    run: Any = field(repr=False)
    is_torch: bool = False
    input_dtypes: tuple[Any, ...] = ()
    network: Any = field(default=None, repr=False)
    """The torch module or the ONNX file, for :func:`runner.inference.globalops.global_ops_in`."""

    def __call__(self, *inputs) -> list:
        return self.run(*inputs)


def create_adapter(
    pkg: Package,
    *,
    device: Device,
    weights: str | None = None,
    trust_code: bool = False,
    threads: int | None = None,
) -> Adapter:
    """Load the package's network in the best runnable weight format.

    Raises
    ------
    UserError
        No runnable format, code execution not allowed, or every candidate failed to load (each reason
        listed). A file outside the package, a sha256 mismatch or a graph that needs ``--trust-code`` stops
        the run instead of falling back; another failure falls back to the next format with a note on
        stderr naming the file that was rejected and why.
    """
    errors = []
    for fmt in candidate_formats(pkg, device=device, weights=weights, trust_code=trust_code):
        try:
            if fmt == "onnx":
                return _onnx_adapter(pkg, device=device, threads=threads)
            if fmt == "torchscript":
                return _torchscript_adapter(pkg, device=device, threads=threads, trust_code=trust_code)
            return _state_dict_adapter(pkg, device=device, threads=threads, trust_code=trust_code)
        except UserError as exc:
            if weights is not None or isinstance(exc, (IntegrityError, UntrustedCode)):
                raise
            errors.append(f"{fmt}: {exc}")
        except Exception as exc:  # a framework refusing the file: try the next format
            if weights is not None:
                raise UserError(
                    f"cannot load the {fmt} weights ({describe_load_error(exc)})",
                    path=pkg.source,
                    hint="re-export the package with plain tensor weights, or pick another --weights",
                ) from None
            errors.append(f"{fmt}: {describe_load_error(exc)}")
        print(f"warning: {errors[-1].splitlines()[0][:300]}; trying the next weight format", file=sys.stderr)
    raise UserError("no weight format could be loaded: " + "; ".join(errors), path=pkg.source)


# ------------------------------------------------------------------------------------------------------ onnx


def _onnx_adapter(pkg: Package, *, device: Device, threads: int | None) -> Adapter:
    import onnxruntime as ort

    entry = pkg.weights_entry("onnx")
    path = pkg.file(entry.source, sha256=entry.sha256, what="onnx weights")
    external = getattr(entry, "external_data", None)
    if external is not None:
        pkg.file(external.source, sha256=external.sha256, what="onnx external data")
    check_onnx(path, root=pkg.root, source=pkg.source)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    providers: list = ["CPUExecutionProvider"]
    if device.is_cuda and ort_has_cuda():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index}))
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    names = [i.name for i in session.get_inputs()]
    dtypes = tuple(_ORT_DTYPES.get(i.type, np.float32) for i in session.get_inputs())
    if len(names) < len(pkg.inputs):
        raise UserError(
            f"the ONNX file has {len(names)} inputs but the description {len(pkg.inputs)}", path=path
        )

    def run(*inputs):
        feed = {n: np.ascontiguousarray(x, dtype=d) for n, x, d in zip(names, inputs, dtypes, strict=False)}
        return session.run(None, feed)

    return Adapter("onnx", device, run, is_torch=False, input_dtypes=dtypes, network=path)


_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


# ----------------------------------------------------------------------------------------------------- torch


def _torch_device(device: Device):
    import torch

    return torch.device(str(device))


def _torch_runner(module, device: Device, threads: int | None):
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    dev = _torch_device(device)

    def run(*inputs):
        with torch.inference_mode():
            tensors = []
            for x in inputs:
                if isinstance(x, np.ndarray):
                    x = torch.from_numpy(np.ascontiguousarray(x))
                tensors.append(x.to(dev, non_blocking=True))
            out = module(*tensors)
            out = list(out) if isinstance(out, (list, tuple)) else [out]
            if inputs and isinstance(inputs[0], np.ndarray):
                return [o.detach().cpu().numpy() for o in out]
            return [o.detach() for o in out]

    return run


def _torchscript_adapter(pkg: Package, *, device: Device, threads: int | None, trust_code: bool) -> Adapter:
    """Load the TorchScript weights through the gate: graphs using ops outside the allow-list of tensor ops
    (files, storages, processes) are refused without ``trust_code``."""
    entry = pkg.weights_entry("torchscript")
    path = pkg.file(entry.source, sha256=entry.sha256, what="torchscript weights")
    module = load_torchscript(path, trust_code=trust_code, map_location=_torch_device(device)).eval()
    run = _torch_runner(module, device, threads)
    return Adapter("torchscript", device, run, is_torch=True, network=module)


def _state_dict_adapter(pkg: Package, *, device: Device, threads: int | None, trust_code: bool) -> Adapter:
    """Build the package's architecture (its Python source: only called with trust) and load the state dict.

    bioimageio.core's ``load_torch_model`` loads the tensors with ``torch.load(..., weights_only=True)``.
    """
    from bioimageio.core.backends.pytorch_backend import load_torch_model

    require_trust("pytorch_state_dict", trust_code=trust_code, path=pkg.source)  # the gate, at the last step
    entry = pkg.weights_entry("pytorch_state_dict")
    pkg.file(entry.source, sha256=entry.sha256, what="pytorch_state_dict weights")
    arch = entry.architecture
    if getattr(arch, "source", None) is not None:
        pkg.file(arch.source, sha256=getattr(arch, "sha256", None), what="architecture source")
    module = load_torch_model(entry, load_state=True, devices=[str(device)]).eval()
    run = _torch_runner(module, device, threads)
    return Adapter("pytorch_state_dict", device, run, is_torch=True, network=module)


def describe_formats(formats: Sequence[str]) -> str:
    return ", ".join(formats) if formats else "none"
