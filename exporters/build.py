"""``export_package``: trained run -> validated bioimage.io package (``.zip`` or folder), or nothing.

Steps, all inside a temporary build folder: weights (each format checked against the eager network), the
test crop of a real validation image and its outputs, validation metrics, cover and README, the rdf (built
with bioimageio.spec's classes, then written in the 0.5.4 form), the zip. The zip (or folder) is tested
offline with bioimageio.core and with bmz-runner's own check *before* it is renamed into place; if a test
fails, nothing is written and :class:`PackageInvalid` carries the report.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.checks import PackageReport, check_package
from exporters.options import ExportContext, ExportOptions, display_name
from runner.errors import UserError


class PackageInvalid(UserError):
    """The built package failed a test; nothing was written. ``report`` says which and why."""

    def __init__(self, report: PackageReport, out: Path):
        super().__init__(
            f"the package failed validation, nothing written: {report.reasons(limit=2)}",
            path=out,
            hint="the full report is printed above",
        )
        self.report = report


@dataclass
class ExportResult:
    """What :func:`export_package` wrote."""

    path: Path
    name: str
    weights: list[str]
    report: PackageReport
    validation: dict
    """The validation metrics written into the README and ``config.runner``."""


def check_out(out: Path, overwrite: bool) -> None:
    """The package destination, before any work: the gate's output checks (not below a file, writable),
    then existence and ``--overwrite``."""
    from runner.safety import check_output_dir

    check_output_dir(out.parent, what="output's parent folder")
    if not out.parent.is_dir():
        raise UserError(
            "the output folder does not exist", path=out.parent, hint="create it first or pick another --out"
        )
    if out.exists() and not overwrite:
        raise UserError("the output already exists", path=out, hint="pass --overwrite to replace it")
    if out.exists() and out.is_dir() and out.suffix.lower() == ".zip":
        raise UserError("the output is a folder named .zip", path=out)


def _sizes(ctx: ExportContext) -> None:
    from exporters.rdf import input_size_rule

    rule = ctx.meta.size_rule
    ctx.halo = tuple(int(h) for h in ctx.meta.halo)
    ctx.input_min, ctx.input_step = input_size_rule(rule.min, rule.step, ctx.halo)


def _probe_shape(ctx: ExportContext) -> tuple[int, ...]:
    """A small valid input shape (>= 32 px in 2D, 16 in 3D) for the export and the format agreement check."""
    rule = ctx.meta.size_rule
    want = 32 if ctx.ndim == 2 else 16
    return tuple(m + max(0, -(-(want - m) // s)) * s for m, s in zip(rule.min, rule.step, strict=True))


def _weights(ctx: ExportContext) -> None:
    from exporters.weights import WriteRequest, write_weights
    from runner.models import architecture_source

    source, class_name = architecture_source(ctx.recipe.model)
    request = WriteRequest(
        ndim=ctx.ndim,
        in_channels=ctx.recipe.input_channels,
        probe_shape=_probe_shape(ctx),
        architecture=source,
        class_name=class_name,
        kwargs=dict(ctx.meta.architecture.kwargs),
        opset=ctx.options.opset,
    )
    ctx.weights = write_weights(ctx.run.model, ctx.folder, list(ctx.options.weights), request)


def _test_data(ctx: ExportContext):
    """Test/sample tensors from a validation crop, its instances (for the cover); the run's data."""
    import torch

    from exporters.samples import cut_test_sample, run_data, write_test_tensors
    from runner.postprocessing import run_postprocessor
    from runner.training.preprocess import normalize

    data = run_data(ctx.meta, data_dir=ctx.options.data_dir, where=ctx.run.path)
    sample = cut_test_sample(
        data.pairs, ctx.input_min, ctx.input_step, ndim=ctx.ndim, axes=ctx.recipe.data.axes
    )
    x = normalize(sample.image, ctx.recipe.preprocessing)
    with torch.no_grad():
        sample.output = ctx.run.model(torch.from_numpy(x[None]))[0].numpy().astype(np.float32)
    ctx.sample = sample
    ctx.files.update(write_test_tensors(sample, ctx.folder))
    pp = ctx.recipe.postprocessing
    n_code = ctx.recipe.n_code_channels
    ctx.instances = run_postprocessor(
        pp.name, sample.output[:n_code], pp.params, resolution=ctx.recipe.targets.options.resolution
    )
    return data


def _validate(ctx: ExportContext, data) -> None:
    """Metrics of the package as built so far (rdf without docs), run like ``runner predict`` runs it."""
    from exporters.evaluation import evaluate_package

    _rdf(ctx)
    ctx.validation = evaluate_package(
        ctx.folder,
        ctx.recipe,
        data,
        max_images=ctx.options.max_validation_images,
        progress=ctx.options.progress,
    )


def _docs(ctx: ExportContext) -> None:
    from exporters.cover import write_cover
    from exporters.docs import readme_text
    from runner.io import write_text_atomic

    ctx.files["cover"] = write_cover(
        ctx.folder / "cover.png",
        ctx.sample.image,
        ctx.sample.output,
        list(ctx.meta.channel_names),
        ctx.instances,
    )
    ctx.files["documentation"] = ctx.folder / "README.md"
    write_text_atomic(ctx.files["documentation"], readme_text(ctx))


def _rdf(ctx: ExportContext) -> Path:
    from exporters.compat import write_compatible_rdf
    from exporters.config import package_config
    from exporters.rdf import build_model_descr

    descr = build_model_descr(ctx, package_config(ctx))
    users = [a.github_user for a in ctx.recipe.export.authors if a.github_user]
    return write_compatible_rdf(descr, ctx.folder, github_users=users)


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip every file of ``folder`` (flat package layout, rdf first) into ``target``."""
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name != "rdf.yaml", str(p))
    )
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in files:
            zf.write(p, p.relative_to(folder).as_posix())
    return target


def build_folder(ctx: ExportContext) -> Path:
    """Every file of the package in ``ctx.folder``; returns the rdf path."""
    _sizes(ctx)
    _weights(ctx)
    data = _test_data(ctx)
    _validate(ctx, data)
    _docs(ctx)
    return _rdf(ctx)


def export_package(
    run: str | Path, out: str | Path, options: ExportOptions | None = None, **kwargs
) -> ExportResult:
    """Export a trained run (folder or checkpoint) as a bioimage.io package at ``out``.

    Parameters
    ----------
    run : run folder (``checkpoints/best.pt`` or ``last.pt`` inside) or a checkpoint file.
    out : ``PATH.zip`` for a zip, any other path for a package folder. Its parent folder must exist.
    options : :class:`ExportOptions`; keyword arguments build one instead (``weights=``, ``name=``, ...).

    Raises
    ------
    UserError
        No checkpoint, missing data, a network a weight format cannot express, an invalid description, or
        :class:`PackageInvalid` when the built package fails bioimageio.core's test or ours.
    """
    from runner.training import load_run

    options = options or ExportOptions(**kwargs)
    out = Path(out)
    check_out(out, options.overwrite)
    loaded = load_run(run, which=options.checkpoint)
    with tempfile.TemporaryDirectory(prefix="bmz-export-") as tmp:
        folder = Path(tmp) / "package"
        folder.mkdir()
        ctx = ExportContext(
            folder=folder,
            options=options,
            run=loaded,
            name=options.name or display_name(loaded.recipe.name),
            package_name=out.name,
        )
        build_folder(ctx)
        report = publish(folder, out)
    return ExportResult(
        path=out, name=ctx.name, weights=list(ctx.weights), report=report, validation=ctx.validation.metrics
    )


def scrub_rdf_paths(folder: Path) -> list[str]:
    """Replace absolute local paths in the rdf's ``config`` by short names (the gate's rule: a published
    package never names the author's machine); returns what was replaced."""
    from exporters.compat import dump_yaml
    from runner.safety import load_yaml
    from runner.safety.paths import local_paths_in, scrub_local_paths

    rdf = next((folder / n for n in ("rdf.yaml", "bioimageio.yaml") if (folder / n).is_file()), None)
    if rdf is None:
        return []
    content = load_yaml(rdf, what="model description")
    if not isinstance(content, dict):
        return []
    hits = local_paths_in(content.get("config"), where="config")
    if hits:
        content["config"] = scrub_local_paths(content["config"])
        rdf.write_text(dump_yaml(content), encoding="utf-8")
    return hits


def publish(folder: Path, out: Path, *, trust_code: bool = True) -> PackageReport:
    """Zip (or copy) ``folder`` to a hidden sibling of ``out``, test it, then rename it into place.

    The sibling keeps the ``.zip`` suffix (tools recognise packages by it) and is removed on any failure.
    ``trust_code`` lets the final test run ``pytorch_state_dict`` weights: true for a package built from
    our own architecture source (export), the user's ``--trust-code`` for one re-published from someone
    else's package (tune). Absolute local paths in ``config`` are replaced by short names first.
    """
    import os
    import uuid

    from runner.safety import check_output_file

    if out.suffix.lower() == ".zip" or out.is_file():
        check_output_file(out, what="package")
    scrub_rdf_paths(folder)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{out.suffix}")
    try:
        if out.suffix.lower() == ".zip":
            zip_folder(folder, tmp)
        else:
            shutil.copytree(folder, tmp)
        report = check_package(tmp, trust_code=trust_code)
        if not report.passed:
            report.source = out
            raise PackageInvalid(report, out)
        report.source = out
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists() and tmp.is_dir():
            out.unlink()  # --overwrite of a file by a package folder
        os.replace(tmp, out)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return report
