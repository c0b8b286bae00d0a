"""Weight files of a package: PyTorch state dict (+ its architecture source), TorchScript (scripted), ONNX.

Each writer returns a :class:`WeightsFile`; :func:`write_weights` writes the requested formats and checks that
every format reproduces the eager PyTorch network on a random input before anything else is built, so a
network that one format cannot express fails early with the operator named.

The architecture source must be ONE self-contained file importing only torch (and the standard library):
bioimage.io consumers import it on its own, without bmz-runner installed.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runner.errors import UserError

FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
"""bioimage.io weight formats we write, in the order a parent is chosen (the first present has no parent)."""
ALIASES = {"state_dict": "pytorch_state_dict", "pytorch": "pytorch_state_dict", "pt": "torchscript"}
FILE_NAMES = {
    "pytorch_state_dict": "weights_state_dict.pt",
    "torchscript": "weights_torchscript.pt",
    "onnx": "weights.onnx",
}
MAX_ONNX_OPSET = 18
"""deepImageJ (JDLL) runs ONNX opsets up to 18."""


@dataclass(frozen=True)
class WeightsFile:
    """One written weights entry."""

    format: str
    """bioimage.io weight format name."""
    path: Path
    parent: str | None = None
    opset: int | None = None
    architecture: Path | None = None
    """Source file of the network (``pytorch_state_dict`` only)."""
    class_name: str | None = None
    kwargs: dict = field(default_factory=dict)
    comment: str = ""


def parse_formats(formats: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"torchscript,onnx,state_dict"`` (or a list) as bioimage.io names, in :data:`FORMATS` order."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        name = ALIASES.get(item, item)
        if name not in FORMATS:
            raise UserError(
                f"unknown weight format {item!r}",
                hint="choose from torchscript, onnx, state_dict (pytorch_state_dict)",
            )
        names.append(name)
    if not names:
        raise UserError("no weight format given", hint="e.g. --weights torchscript,onnx,state_dict")
    return [f for f in FORMATS if f in names]


def torch_version() -> str:
    """The running torch version without a local suffix (``2.13.0+cpu`` -> ``2.13.0``)."""
    import torch

    return torch.__version__.split("+")[0]


# ------------------------------------------------------------------------------------------ architecture

_STDLIB_OK = {
    "math",
    "typing",
    "collections",
    "functools",
    "itertools",
    "numbers",
    "__future__",
    "dataclasses",
}


def check_self_contained(source: Path) -> None:
    """Raise :class:`UserError` unless ``source`` imports only torch and a few standard modules."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or "."] if node.level == 0 else ["." * node.level + (node.module or "")]
        else:
            continue
        for mod in mods:
            top = mod.split(".")[0]
            if top != "torch" and top not in _STDLIB_OK:
                bad.append(mod)
    if bad:
        raise UserError(
            f"the architecture source imports {', '.join(sorted(set(bad)))}; a bioimage.io "
            "pytorch_state_dict needs one self-contained file that imports only torch",
            path=source,
            hint="export without state_dict (--weights torchscript,onnx) or make the module self-contained",
        )


def write_state_dict(
    model, folder: Path, *, architecture: Path, class_name: str, kwargs: dict
) -> WeightsFile:
    """``weights_state_dict.pt`` (tensors only: ``weights_only=True`` loads it) + the architecture file."""
    import torch

    check_self_contained(architecture)
    arch_name = architecture.name
    shutil.copyfile(architecture, folder / arch_name)
    path = folder / FILE_NAMES["pytorch_state_dict"]
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    return WeightsFile(
        "pytorch_state_dict",
        path,
        architecture=folder / arch_name,
        class_name=class_name,
        kwargs=kwargs,
        comment="Trained with bmz-runner; the architecture file imports only torch.",
    )


# ---------------------------------------------------------------------------------------------- torchscript


def write_torchscript(model, folder: Path) -> WeightsFile:
    """``weights_torchscript.pt`` made with ``torch.jit.script`` (never traced: sizes stay dynamic)."""
    import torch

    try:
        with warnings.catch_warnings():
            # torch >= 2.10 flags TorchScript as deprecated; bioimage.io and deepImageJ still need it
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.script(model)
    except Exception as exc:  # torch.jit.frontend errors name the unsupported construct
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"the network cannot be scripted with TorchScript ({type(exc).__name__}: {first[:300]})",
            hint="export without it (--weights onnx,state_dict) or make the module scriptable",
        ) from None
    path = folder / FILE_NAMES["torchscript"]
    scripted.save(str(path))
    return WeightsFile("torchscript", path, comment="torch.jit.script of the trained network.")


# ------------------------------------------------------------------------------------------------- onnx

_UNSUPPORTED = re.compile(r"operator '([^']+)'[^.]*?(?:opset version (\d+))?[^.]*not supported", re.I)


def unsupported_operator(message: str) -> str | None:
    """The operator named in a torch ONNX export error (``aten::fft_rfft2``), if any."""
    m = _UNSUPPORTED.search(message)
    if m:
        return m.group(1)
    m = re.search(r"(aten::[A-Za-z0-9_.]+|prim::[A-Za-z0-9_.]+)", message)
    return m.group(1) if m else None


@contextlib.contextmanager
def _quiet_native_output():
    """Silence what native code prints on stdout/stderr (torch dumps its IR graph when an export fails)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = []
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no real file descriptors (embedded interpreter): leave output alone
        yield
        return
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def write_onnx(
    model,
    folder: Path,
    *,
    ndim: int,
    in_channels: int,
    sizes: tuple[int, ...],
    opset: int = 17,
    input_name: str = "raw",
    output_name: str = "prediction",
) -> WeightsFile:
    """``weights.onnx`` with the classic exporter (``dynamo=False``); batch and spatial axes dynamic.

    ``sizes`` is a valid spatial input shape used to trace the export.
    """
    import torch

    if not 7 <= opset <= MAX_ONNX_OPSET:
        raise UserError(f"ONNX opset {opset} is outside 7..{MAX_ONNX_OPSET} (deepImageJ reads up to 18)")
    names = ["z", "y", "x"][-ndim:]
    dyn = {0: "batch", **{2 + i: n for i, n in enumerate(names)}}
    dummy = torch.zeros((1, in_channels, *sizes), dtype=torch.float32)
    path = folder / FILE_NAMES["onnx"]
    try:
        with warnings.catch_warnings(), _quiet_native_output():
            warnings.simplefilter("ignore")  # the classic exporter's deprecation notice
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: dyn, output_name: dyn},
                do_constant_folding=True,
            )
    except Exception as exc:
        op = unsupported_operator(str(exc))
        what = f"operator {op} has no ONNX opset-{opset} equivalent" if op else str(exc).splitlines()[0][:300]
        raise UserError(
            f"the network cannot be exported to ONNX: {what}",
            hint="export without ONNX (--weights torchscript,state_dict) or replace that operation",
        ) from None
    _check_onnx_file(path, opset)
    return WeightsFile(
        "onnx", path, opset=opset, comment=f"torch.onnx.export (classic exporter), opset {opset}."
    )


def _check_onnx_file(path: Path, opset: int) -> None:
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    used = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=opset)
    if used > MAX_ONNX_OPSET:
        raise UserError(f"the ONNX file uses opset {used} (> {MAX_ONNX_OPSET})", path=path)


# ------------------------------------------------------------------------------------------------ all


@dataclass(frozen=True)
class WriteRequest:
    """What :func:`write_weights` needs to know about the network."""

    ndim: int
    in_channels: int
    probe_shape: tuple[int, ...]
    """A valid spatial input shape ((Z,) Y, X) for the ONNX export and the agreement check."""
    architecture: Path
    class_name: str
    kwargs: dict
    opset: int = 17


def write_weights(model, folder: Path, formats: list[str], request: WriteRequest) -> dict[str, WeightsFile]:
    """Write every format of ``formats`` into ``folder``; the first (in :data:`FORMATS` order) is the parent.

    Each format is run on a random input and compared with the eager network (``atol`` 1e-3): a format
    that loads but computes something else is a bug we refuse to package.
    """
    model = model.eval().cpu()
    out: dict[str, WeightsFile] = {}
    for fmt in formats:
        if fmt == "pytorch_state_dict":
            wf = write_state_dict(
                model,
                folder,
                architecture=request.architecture,
                class_name=request.class_name,
                kwargs=request.kwargs,
            )
        elif fmt == "torchscript":
            wf = write_torchscript(model, folder)
        else:
            wf = write_onnx(
                model,
                folder,
                ndim=request.ndim,
                in_channels=request.in_channels,
                sizes=request.probe_shape,
                opset=request.opset,
            )
        out[fmt] = wf
    root = formats[0]
    out = {k: (v if k == root else _with_parent(v, root)) for k, v in out.items()}
    check_agreement(model, out, request)
    return out


def _with_parent(wf: WeightsFile, parent: str) -> WeightsFile:
    from dataclasses import replace

    return replace(wf, parent=parent)


def run_format(wf: WeightsFile, x: np.ndarray, request: WriteRequest) -> np.ndarray:
    """Run one written weights file on ``x`` ``(B, C, *spatial)`` float32 (CPU)."""
    import torch

    if wf.format == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(wf.path), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
    if wf.format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(wf.path), map_location="cpu").eval()
    else:
        net = _import_architecture(wf)
        net.load_state_dict(torch.load(wf.path, map_location="cpu", weights_only=True))
        net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def _import_architecture(wf: WeightsFile):
    import importlib.util

    if wf.architecture is None or wf.class_name is None:
        raise ValueError(f"{wf.format} weights {wf.path} have no architecture source and class name")
    name = f"_bmz_export_arch_{abs(hash(str(wf.architecture)))}"
    spec = importlib.util.spec_from_file_location(name, wf.architecture)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the network architecture from {wf.architecture}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        return getattr(module, wf.class_name)(**wf.kwargs)
    finally:
        sys.modules.pop(name, None)


def check_agreement(
    model, files: dict[str, WeightsFile], request: WriteRequest, *, atol: float = 1e-3
) -> None:
    """Every written format reproduces ``model`` on a random input (batch 2) within ``atol``."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, request.in_channels, *request.probe_shape)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    for fmt, wf in files.items():
        got = run_format(wf, x, request)
        if got.shape != ref.shape:
            raise UserError(f"{fmt} weights give output shape {got.shape}, PyTorch gives {ref.shape}")
        diff = float(np.abs(got - ref).max())
        if not np.isfinite(diff) or diff > atol:
            raise UserError(
                f"{fmt} weights differ from the PyTorch network by up to {diff:.3g} (> {atol:g})",
                hint=f"export without {fmt}",
            )
