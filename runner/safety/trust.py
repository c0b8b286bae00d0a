"""Consent: what a package may execute without ``--trust-code``.

* ``pytorch_state_dict`` weights build the network by importing the package's Python source: never without
  trust (:func:`require_trust`).
* TorchScript is code too. A graph can call ``aten::from_file(..., shared=True)`` or ``aten::save`` and so
  read or write any file the user can, and a module's ``__setstate__`` runs while the file is loaded.
  :func:`load_torchscript` therefore (1) refuses archives whose serialized code defines ``__setstate__`` or
  that are not TorchScript zip archives, before ``torch.jit.load``; (2) after loading (which runs nothing
  else) walks the graph of every method of every submodule (inlined where script functions are called),
  nested blocks and subgraphs included, and refuses any op outside the allow-list: the ``aten`` and ``prim``
  tensor and control-flow ops, minus those that touch files, storages, streams, the network or memory
  outside a tensor (:data:`DENIED_OPS`, and every op with a ``Storage`` argument), and any call to a class
  that is not part of the archive.
* ONNX graphs run inside onnxruntime's operator set and cannot reach files, except through external-data
  references, which must lie inside the package (:func:`check_onnx`).

With ``trust_code=True`` all of this is skipped: the user vouches for the package.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.errors import UserError

CODE_FORMATS = ("pytorch_state_dict",)
"""Weight formats that run the package's own Python source."""
ALLOWED_NAMESPACES = ("aten", "prim")
DENIED_OPS = frozenset(
    {
        "aten::from_file",
        "aten::save",
        "aten::set",
        "aten::set_",
        "aten::record_stream",
        # index without bounds checks: read or write memory outside the tensor
        "aten::_unsafe_index",
        "aten::_unsafe_index_put",
        "aten::_unsafe_masked_index",
        "aten::_unsafe_masked_index_put_accumulate",
        "aten::_sparse_coo_tensor_unsafe",
        "aten::_sparse_csr_tensor_unsafe",
        "aten::_sparse_csc_tensor_unsafe",
        "aten::_sparse_bsr_tensor_unsafe",
        "aten::_sparse_bsc_tensor_unsafe",
        "aten::_sparse_compressed_tensor_unsafe",
        # remote procedure calls: the network
        "prim::rpc_async",
        "prim::rpc_sync",
        "prim::rpc_remote",
        "prim::PythonOp",
        "prim::CallFunction",
    }
)
TRUST_HINT = "pass --trust-code only if you trust the package's author"


class UntrustedCode(UserError):
    """The package would run code the user did not consent to (never fallen back from silently)."""


def require_trust(fmt: str, *, trust_code: bool, path: str | Path | None) -> None:
    """Refuse weight formats that run the package's Python source unless ``trust_code``."""
    if fmt in CODE_FORMATS and not trust_code:
        raise UntrustedCode(
            f"{fmt} weights run the package's own Python source code, which runner does not do without "
            "explicit permission",
            path=path,
            hint=TRUST_HINT,
        )


def _storage_ops() -> frozenset[str]:
    import torch

    out = set()
    for schema in torch._C._jit_get_all_schemas():
        if any("Storage" in str(a.type) for a in schema.arguments):
            out.add(schema.name)
    return frozenset(out)


_CACHE: dict[str, frozenset[str]] = {}


def op_allowed(kind: str) -> bool:
    """Whether a graph node kind (``aten::conv2d``) is on the allow-list of tensor ops."""
    if "storage" not in _CACHE:
        _CACHE["storage"] = _storage_ops()
    namespace = kind.split("::", 1)[0]
    return namespace in ALLOWED_NAMESPACES and kind not in DENIED_OPS and kind not in _CACHE["storage"]


def _archive_code(path: Path) -> dict[str, str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return {
                n: zf.read(n).decode("utf-8", "replace")
                for n in zf.namelist()
                if "/code/" in n and n.endswith(".py")
            }
    except (zipfile.BadZipFile, OSError) as exc:
        raise UntrustedCode(
            f"not a TorchScript zip archive ({exc}); older TorchScript formats cannot be inspected",
            path=path,
            hint=TRUST_HINT,
        ) from None


def _walk(block: Any) -> Iterator[Any]:
    for node in block.nodes():
        yield node
        for sub in node.blocks():
            yield from _walk(sub)
        if node.hasAttribute("Subgraph"):
            yield from _walk(node.g("Subgraph"))


def _methods(module: Any) -> Iterator[tuple[str, Any]]:
    """``(name, method)`` of every method and hook of every submodule."""
    for mod_name, sub in module.named_modules():
        c = sub._c
        for method in c._method_names():
            yield f"{mod_name or 'model'}.{method}", c._get_method(method)
        for hook in [*c._get_forward_pre_hooks(), *c._get_forward_hooks()]:
            yield f"{mod_name or 'model'}.{hook.name}", hook


def _is_module_call(node: Any) -> bool:
    """A call to a method of a module of the archive (its own graph is inspected as that module's)."""
    if node.kind() != "prim::CallMethod":
        return False
    inputs = list(node.inputs())
    if not inputs:
        return False
    name = str(inputs[0].type())
    return name.startswith("__torch__.") and not name.startswith("__torch__.torch.classes.")


def _refuse(kind: str, where: str, path: str | Path) -> None:
    raise UntrustedCode(
        f"the TorchScript graph calls {kind} (in {where}), which is not a tensor op: "
        "it may touch files, memory or processes; refusing to run it",
        path=path,
        hint=TRUST_HINT,
    )


def inspect_torchscript(module: Any, *, path: str | Path) -> None:
    """Refuse a loaded TorchScript module that uses ops outside the allow-list (named in the message).

    Every method's own graph of every submodule is walked (nested blocks and subgraphs included), so a
    refusal names where the op is. A method that calls script functions or classes (``prim::CallFunction``,
    methods of non-module objects) is walked again inlined, which adds the callees' ops.
    """
    calls_out = []
    for where, method in _methods(module):
        for node in _walk(method.graph):
            kind = node.kind()
            if _is_module_call(node):
                continue
            if kind in ("prim::CallFunction", "prim::CallMethod"):
                calls_out.append((where, method))
                continue
            if not op_allowed(kind):
                _refuse(kind, where, path)
    for where, method in dict.fromkeys(calls_out):
        graph = getattr(method, "inlined_graph", None)
        if graph is None:
            _refuse("prim::CallFunction", where, path)
        for node in _walk(graph):
            if not _is_module_call(node) and not op_allowed(node.kind()):
                _refuse(node.kind(), where, path)


def load_torchscript(path: str | Path, *, trust_code: bool, map_location: Any = None) -> Any:
    """``torch.jit.load`` after the checks of the module docstring (skipped with ``trust_code``)."""
    import warnings

    import torch

    path = Path(path)
    if not trust_code:
        for name, code in _archive_code(path).items():
            if "def __setstate__" in code:
                raise UntrustedCode(
                    f"the TorchScript archive defines __setstate__ ({name}), code that runs while it loads",
                    path=path,
                    hint=TRUST_HINT,
                )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.jit.load deprecated (2.9+)
        try:
            module = torch.jit.load(str(path), map_location=map_location)
        except Exception as exc:  # not TorchScript, truncated, or made by a newer torch
            raise UserError(
                f"cannot load the TorchScript weights ({describe_load_error(exc)})",
                path=path,
            ) from None
    if not trust_code:
        inspect_torchscript(module, path=path)
    return module


def check_onnx(path: str | Path, *, root: str | Path, source: str | Path | None = None) -> None:
    """Refuse ONNX external-data references (``location``) that leave the ONNX file's folder.

    ``root`` is the package folder the ONNX file was checked to lie in (so its folder does too).
    """
    import onnx

    from runner.safety.paths import inside_package

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UserError(
            f"cannot read the ONNX weights ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            path=path,
        ) from None
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        for entry in tensor.external_data:
            if entry.key == "location":
                inside_package(
                    Path(path).parent,
                    entry.value,
                    what=f"ONNX external data of {tensor.name!r}",
                    source=source,
                )


def describe_load_error(exc: BaseException) -> str:
    """One line for a framework's load error; pickles refused by ``weights_only`` said plainly.

    torch's refusal runs to 17 lines and suggests ``weights_only=False``, which would run the pickle's code:
    runner never does that, so the message says what the file holds instead.
    """
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "weights_only" in text or "Unpickler" in text or "UnpicklingError" in type(exc).__name__:
        detail = next((ln for ln in lines if "unsupported global" in ln.lower()), "")
        detail = detail.split("error:", 1)[-1].strip() if detail else "objects other than tensors"
        return (
            f"the weights file is a pickle holding Python objects ({detail[:160]}); runner loads only plain "
            "tensors (weights_only=True) and never unpickles code"
        )
    first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "")
    return f"{type(exc).__name__}: {first[:240]}"
