"""The one gate that decides what may run, what may be read and how much may be allocated.

Every command goes through here (STYLE.md point 15), so a new command cannot forget a check:

* :mod:`runner.safety.archive` - zip packages unpacked with path, link, size and compression-ratio limits;
  sha256 checks of every file used.
* :mod:`runner.safety.yamlguard` - YAML (rdf, recipes, configs inside zips) refused before aliases expand.
* :mod:`runner.safety.paths` - every file a description refers to lies inside the package.
* :mod:`runner.safety.trust` - ``--trust-code``: package Python source, TorchScript graphs outside the
  allow-list of tensor ops, ONNX external data.
* :mod:`runner.safety.budget` - ``--max-memory``: allocations estimated from headers and descriptions.
* :mod:`runner.safety.outputs` - output paths checked before any work (no folder replaced by a file).
* :mod:`runner.safety.signals` - SIGTERM unwinds like Ctrl-C (temp folders removed, exit 143).

:func:`check_package` bundles the checks a loaded package must pass; ``load_package`` calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.safety.archive import IntegrityError, safe_extract, sha256_of, verify_sha256
from runner.safety.budget import check_allocation, check_shape, max_memory, parse_size, set_max_memory
from runner.safety.outputs import check_output_dir, check_output_file
from runner.safety.paths import OutsidePackageError, check_references, inside_package, referenced_files
from runner.safety.signals import Terminated, install_sigterm
from runner.safety.trust import CODE_FORMATS, UntrustedCode, load_torchscript, require_trust
from runner.safety.yamlguard import check_yaml_text, load_yaml, read_yaml_text

__all__ = [
    "CODE_FORMATS",
    "IntegrityError",
    "OutsidePackageError",
    "Terminated",
    "UntrustedCode",
    "check_allocation",
    "check_output_dir",
    "check_output_file",
    "check_package",
    "check_references",
    "check_shape",
    "check_yaml_text",
    "inside_package",
    "install_sigterm",
    "load_torchscript",
    "load_yaml",
    "max_memory",
    "parse_size",
    "read_yaml_text",
    "referenced_files",
    "require_trust",
    "safe_extract",
    "set_max_memory",
    "sha256_of",
    "verify_sha256",
]


def minimum_input_bytes(inputs: Any, outputs: Any) -> int:
    """Bytes of float32 for one sample at the smallest valid input size, inputs and outputs together.

    ``inputs``/``outputs`` are :class:`runner.inference.package.TensorInfo` sequences; output axes that refer
    to an input axis take its minimum (times their scale ratio).
    """
    mins: dict[tuple[str, str], int] = {}
    total = 0
    for tensor in inputs:
        n = 4
        for axis in tensor.axes:
            rule = axis.rule
            size = rule.size if rule.kind == "fixed" else rule.min if rule.kind == "parameterized" else 1
            size = max(int(size or 1), 1)
            mins[(tensor.id, axis.id)] = size
            n *= size
        total += n
    for tensor in outputs:
        n = 4
        for axis in tensor.axes:
            rule = axis.rule
            if rule.kind == "reference" and rule.tensor is not None:
                size = int(mins.get((rule.tensor, rule.axis or ""), 1) * rule.ratio) + rule.offset
            elif rule.kind == "fixed":
                size = int(rule.size or 1)
            else:
                size = int(rule.min or 1)
            n *= max(size, 1)
        total += n
    return total


def check_package(rdf: str | Path, *, source: str | Path, inputs: Any, outputs: Any) -> None:
    """The checks every loaded package passes before anything of it is used.

    Parameters
    ----------
    rdf : the package's description file; every file it refers to (as its author wrote it, not the
        covers bioimageio.spec generates into a temporary folder) must lie in its folder.
    source : what the user gave, named in messages.
    inputs, outputs : the tensors (for the memory estimate of the smallest valid input).

    Raises
    ------
    OutsidePackageError
        A file reference outside the package (absolute, ``..``, a link out, a URL).
    UserError
        The smallest input the model accepts would not fit the memory budget.
    """
    check_references(Path(rdf).parent, load_yaml(rdf, what="model description"), source=source)
    check_allocation(
        minimum_input_bytes(inputs, outputs),
        what="the smallest input the model accepts (with its outputs, float32)",
        path=source,
        hint="the package's input size rule (min) asks for it",
    )
