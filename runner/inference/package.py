"""Loading a bioimage.io model package (zip, folder or rdf path; format 0.4 or 0.5) fully offline.

>>> from runner.inference import load_package
>>> pkg = load_package("model.zip")
>>> pkg.inputs[0].axes_string, pkg.weight_formats, pkg.postprocessing
('bcyx', ('onnx', 'torchscript'), PostprocessingChoice(name='fg_watershed', params={...}))

The description is loaded with bioimageio.spec (0.4 descriptions converted to the latest format) with io
checks off, so nothing needs the network. Zips are unpacked by :func:`runner.inference.safety.safe_extract`
into a temporary folder that lives as long as the :class:`Package` (or until :meth:`Package.close`).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import safety
from runner.contracts import RunnerConfig, parse_runner_config
from runner.errors import UserError
from runner.inference.sizes import SizeRule, rule_from_spec
from runner.safety import safe_extract, verify_sha256

RDF_NAMES = ("bioimageio.yaml", "rdf.yaml")
KNOWN_WEIGHT_FORMATS = (
    "onnx",
    "torchscript",
    "pytorch_state_dict",
    "tensorflow_saved_model_bundle",
    "tensorflow_js",
    "keras_hdf5",
    "keras_v3",
)


class InvalidDescription(UserError):
    """The rdf does not validate as a bioimage.io model (``runner test`` reports it as a failed check)."""


@dataclass(frozen=True)
class AxisInfo:
    """One axis of a model tensor."""

    id: str
    type: str
    """``batch``, ``channel``, ``index``, ``time`` or ``space``."""
    rule: SizeRule
    halo: int = 0
    """Output halo to crop from both sides (output axes only)."""
    scale: float = 1.0
    channel_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class TensorInfo:
    """An input or output tensor of the model."""

    id: str
    axes: tuple[AxisInfo, ...]
    description: str = ""
    pad_mode: str = "symmetric"
    """How the input is padded at the image border (bioimageio.core's default is ``symmetric``)."""
    optional: bool = False

    @property
    def axis_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.axes)

    @property
    def axes_string(self) -> str:
        """Short form such as ``bcyx`` or ``bczyx`` (``b`` batch, ``c`` channel, ``t`` time, ``i`` index)."""
        letters = {"batch": "b", "channel": "c", "time": "t", "index": "i"}
        return "".join(letters.get(a.type, a.id[:1]) for a in self.axes)

    @property
    def space_axes(self) -> tuple[AxisInfo, ...]:
        return tuple(a for a in self.axes if a.type == "space")

    @property
    def n_channels(self) -> int | None:
        """Number of channels the tensor has (1 without a channel axis; None when not fixed)."""
        for a in self.axes:
            if a.type == "channel":
                return a.rule.size if a.rule.kind == "fixed" else None
        return 1

    def axis(self, axis_id: str) -> AxisInfo:
        for a in self.axes:
            if a.id == axis_id:
                return a
        raise KeyError(axis_id)


@dataclass(frozen=True)
class PostprocessingChoice:
    """An instance post-processor by name with its params (from ``config.runner`` or the command line)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Package:
    """A loaded bioimage.io model package.

    Attributes
    ----------
    descr : the ``bioimageio.spec`` ``ModelDescr``: v0_5 (0.4 packages converted), or v0_4 itself where the
        converter refuses the description (see :mod:`runner.inference.spec04`).
    root : folder holding the package's files (a temporary folder for zips).
    source : what was given to :func:`load_package`.
    inputs, outputs : tensors with axes and size rules.
    weight_formats : formats present in the package, in the order of :data:`KNOWN_WEIGHT_FORMATS`.
    runner_config : the ``config.runner`` block, when present, parsed and validated.
    """

    descr: Any
    root: Path
    source: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    weight_formats: tuple[str, ...]
    runner_config: RunnerConfig | None = None
    original_format_version: str = ""
    _cleanup: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.descr.name)

    @property
    def halo(self) -> dict[str, dict[str, int]]:
        """Output halo per output tensor and axis (pixels to crop from both sides)."""
        return {t.id: {a.id: a.halo for a in t.axes if a.halo} for t in self.outputs}

    @property
    def test_time_augmentation(self) -> bool:
        """Whether the package asks for mirror averaging (``config.runner.test_time_augmentation``).

        ``runner tune --tta`` sets it, because the tuned params were chosen on averaged outputs.
        """
        return bool(self.runner_config and self.runner_config.test_time_augmentation)

    @property
    def targets(self) -> str | None:
        """The target code of the output channels (``config.runner.targets``), when declared."""
        return self.runner_config.target_code if self.runner_config else None

    @property
    def postprocessing(self) -> PostprocessingChoice | None:
        """The post-processor declared in ``config.runner.postprocessing`` ({name, params}), if any."""
        block = self.runner_config.postprocessing if self.runner_config else None
        if block is None:
            return None
        return PostprocessingChoice(name=block.name, params=dict(block.params))

    def input(self, tensor_id: str) -> TensorInfo:
        for t in self.inputs:
            if t.id == tensor_id:
                return t
        raise UserError(
            f"the model has no input {tensor_id!r}",
            path=self.source,
            hint=f"its inputs are {', '.join(t.id for t in self.inputs)}",
        )

    @property
    def is_v04(self) -> bool:
        """True when the description is used in format 0.4 (the 0.4 -> 0.5 converter refused it)."""
        return _is_v04(self.descr)

    def test_tensor_file(self, tensor_id: str) -> Path | None:
        """The local path of the test tensor of input or output ``tensor_id`` (None when there is none)."""
        if self.is_v04:
            from runner.inference.spec04 import test_tensor_source

            source = test_tensor_source(self.descr, tensor_id)
            return None if source is None else self.file(source, what=f"test tensor of {tensor_id}")
        for t in (*self.descr.inputs, *self.descr.outputs):
            test = getattr(t, "test_tensor", None)
            if str(t.id) == tensor_id and test is not None:
                sha = getattr(test, "sha256", None)
                return self.file(test.source, sha256=sha, what=f"test tensor of {tensor_id}")
        return None

    def weights_entry(self, fmt: str):
        """The bioimageio.spec weights entry of format ``fmt`` (or None)."""
        return getattr(self.descr.weights, fmt, None)

    def file(self, source, *, sha256: str | None = None, what: str = "file") -> Path:
        """Local path of a file the description refers to, checked against its sha256."""
        path = safety.inside_package(self.root, source, what=what, source=self.source)
        verify_sha256(path, sha256, what=what)
        return path

    def close(self) -> None:
        """Remove the temporary folder of an unpacked zip (also done when the object is garbage collected)."""
        if self._cleanup is not None:
            self._cleanup()


def find_rdf(folder: Path, given: Path) -> Path:
    for name in RDF_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.bioimageio.yaml"))
    if found:
        return found[0]
    raise UserError(
        "no bioimageio.yaml or rdf.yaml found",
        path=given,
        hint="give a package zip, its folder or its rdf.yaml",
    )


def _format_invalid(descr) -> str:
    summary = getattr(descr, "validation_summary", None)
    errors = []
    for detail in getattr(summary, "details", []) or []:
        for err in getattr(detail, "errors", []) or []:
            loc = ".".join(str(p) for p in getattr(err, "loc", ()))
            errors.append(f"{loc}: {getattr(err, 'msg', err)}" if loc else str(getattr(err, "msg", err)))
    return "; ".join(errors[:5]) or "invalid description"


def _tensor_infos(descr) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    if _is_v04(descr):
        from runner.inference.spec04 import tensor_infos

        return tensor_infos(descr)
    all_axes = {(str(t.id), str(a.id)): a for t in (*descr.inputs, *descr.outputs) for a in t.axes}

    def convert(t, is_input: bool) -> TensorInfo:
        axes = []
        for a in t.axes:
            names = tuple(str(n) for n in getattr(a, "channel_names", ()) or ())
            rule = SizeRule("fixed", size=len(names)) if a.type == "channel" else rule_from_spec(a, all_axes)
            axes.append(
                AxisInfo(
                    id=str(a.id),
                    type=str(a.type),
                    rule=rule,
                    halo=int(getattr(a, "halo", 0) or 0),
                    scale=float(getattr(a, "scale", 1.0) or 1.0),
                    channel_names=names,
                )
            )
        pad = getattr(t, "pad", None) if is_input else None
        return TensorInfo(
            id=str(t.id),
            axes=tuple(axes),
            description=str(getattr(t, "description", "") or ""),
            pad_mode=str(getattr(pad, "mode", "symmetric")) if pad is not None else "symmetric",
            optional=bool(getattr(t, "optional", False)),
        )

    return tuple(convert(t, True) for t in descr.inputs), tuple(convert(t, False) for t in descr.outputs)


def _runner_config(descr, source: Path) -> RunnerConfig | None:
    config = getattr(descr, "config", None)
    if config is None:
        return None
    block = config.get("runner") if isinstance(config, dict) else getattr(config, "runner", None)
    if block is None and hasattr(config, "model_extra"):
        block = (config.model_extra or {}).get("runner")
    if block is not None and not isinstance(block, dict):
        block = dict(getattr(block, "__dict__", {}))
    return parse_runner_config(block, path=source)


def _original_format_version(rdf: Path) -> str:
    """The rdf's format version, read through the gate's YAML limits (no alias bombs) before bioimageio.spec
    sees the file; descriptions of other types (dataset, application) are refused here."""
    data = safety.load_yaml(rdf, what="model description")
    if not isinstance(data, dict):
        raise UserError("the model description is not a YAML mapping", path=rdf)
    kind = data.get("type")
    if kind != "model":
        raise UserError(
            f"the description is of type {kind!r}, not a model",
            path=rdf,
            hint="runner runs bioimage.io model packages (type: model)",
        )
    return str(data.get("format_version", ""))


def load_package(source: str | Path, *, max_unpacked_bytes: int | None = None) -> Package:
    """Load a bioimage.io model package offline.

    Parameters
    ----------
    source : a ``.zip`` package, a package folder or its ``rdf.yaml`` / ``bioimageio.yaml``.
    max_unpacked_bytes : refuse zips expanding past this (default 8 GiB, env ``RUNNER_MAX_PACKAGE_BYTES``).

    Raises
    ------
    UserError
        Missing file, unsafe or corrupt zip, invalid description, not a model.
    """
    source = Path(source)
    if not source.exists():
        raise UserError("model package not found", path=source, hint="give a .zip, a folder or an rdf.yaml")
    cleanup = None
    if source.is_file() and source.suffix.lower() == ".zip":
        tmp = Path(tempfile.mkdtemp(prefix="bmz-runner-pkg-"))
        cleanup = _Remover(tmp)
        try:
            safe_extract(source, tmp, max_bytes=max_unpacked_bytes)
            rdf = find_rdf(tmp, source)
        except BaseException:
            cleanup()
            raise
    elif source.is_dir():
        rdf = find_rdf(source, source)
    else:
        rdf = source
    try:
        descr = _load_descr(rdf, source)
        runner_config = _runner_config(descr, source)
    except BaseException:
        if cleanup is not None:
            cleanup()
        raise
    try:
        inputs, outputs = _tensor_infos(descr)
        safety.check_package(rdf, source=source, inputs=inputs, outputs=outputs)
    except BaseException:
        if cleanup is not None:
            cleanup()
        raise
    formats = tuple(f for f in KNOWN_WEIGHT_FORMATS if getattr(descr.weights, f, None) is not None)
    pkg = Package(
        descr=descr,
        root=rdf.parent,
        source=source,
        inputs=inputs,
        outputs=outputs,
        weight_formats=formats,
        runner_config=runner_config,
        original_format_version=_original_format_version(rdf),
    )
    if cleanup is not None:
        pkg._cleanup = weakref.finalize(pkg, cleanup)
    return pkg


class _Remover:
    """Removes a temporary folder (a plain callable: the finalizer must not refer to the package)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _load_descr(rdf: Path, source: Path):
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_5

    from runner.inference.spec04 import converter_refuses, load_native

    version = _original_format_version(rdf)  # a readable YAML mapping, else a clear error
    if version.startswith(("0.3", "0.4")) and converter_refuses(rdf):
        native = load_native(rdf)  # known refusal: skip the (slow, failing) conversion
        if native is not None:
            return native
    try:
        descr = load_description(rdf, format_version="latest", perform_io_checks=False)
    except Exception as exc:  # bioimageio.spec raises for unreadable or unknown sources
        raise InvalidDescription(
            f"cannot load the model description ({type(exc).__name__}: {exc})", path=source
        ) from None
    if isinstance(descr, InvalidDescr) and _original_format_version(rdf).startswith(("0.3", "0.4")):
        native = load_native(
            rdf
        )  # the converter refused it; bioimageio.core runs 0.4 descriptions as they are
        if native is not None:
            return native
    if isinstance(descr, InvalidDescr):
        raise InvalidDescription(
            f"invalid bioimage.io description: {_format_invalid(descr)}",
            path=source,
            hint="check it with `bioimageio validate`",
        )
    if getattr(descr, "type", None) != "model":
        raise UserError(f"the description is a {getattr(descr, 'type', '?')!r}, not a model", path=source)
    if not isinstance(descr, v0_5.ModelDescr) and not _is_v04(descr):
        raise UserError(
            f"could not convert the format {getattr(descr, 'format_version', '?')} description to 0.5",
            path=source,
            hint="update the package with bioimageio.spec's `bioimageio update-format`",
        )
    return descr


def _is_v04(descr) -> bool:
    from runner.inference.spec04 import is_v04

    return is_v04(descr)
