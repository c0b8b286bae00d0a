"""Testing a package offline: bioimageio.core's test and bmz-runner's own reproduction of the test outputs.

>>> report = check_package("model.zip")          # doctest: +SKIP
>>> print(report.format()); report.passed        # doctest: +SKIP

bioimageio.core's ``test_description`` validates the rdf (with io checks) and, per weight format, reproduces
the test outputs on the whole test tensor and runs parameterized sizes with batch 1 and 2. Ours
(:func:`runner.inference.reproduce_test_outputs`) runs the test inputs through ``runner predict``'s own batch
job (TIFF files in, TIFF files out, default settings), so it checks what a user gets from the command line.
Both use the package's ``config.bioimageio.reproducibility_tolerance``. Weight formats that execute the
package's Python source (``pytorch_state_dict``) run only with ``trust_code=True``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from runner.errors import UserError

if TYPE_CHECKING:
    from bioimageio.core.common import SupportedWeightsFormat

CODE_FORMATS = ("pytorch_state_dict",)


@dataclass
class CheckResult:
    """One check (a bioimageio.core test detail or one of ours)."""

    tool: str
    """``bioimageio.core`` or ``bmz-runner``."""
    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)


@dataclass
class PackageReport:
    """The outcome of :func:`check_package`."""

    source: Path
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Things a reader should know (skipped formats, unverified GitHub users, warnings)."""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def reasons(self, limit: int = 3) -> str:
        """The first failures as one line."""
        parts = []
        for c in self.failures[:limit]:
            msg = c.messages[0].splitlines()[0] if c.messages else "failed"
            parts.append(f"{c.tool}: {c.name}: {msg}")
        more = len(self.failures) - limit
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")

    def format(self) -> str:
        """Human-readable report, one line per check, failures with their messages."""
        lines = [f"package: {self.source}"]
        for tool in ("bioimageio.core", "bmz-runner"):
            checks = [c for c in self.checks if c.tool == tool]
            if not checks:
                continue
            ok = sum(c.passed for c in checks)
            lines.append(f"{tool}: {ok}/{len(checks)} checks passed")
            for c in checks:
                lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}")
                if not c.passed:
                    lines += [f"      {m}" for msg in c.messages[:3] for m in msg.splitlines()[:4]]
        lines += [f"note: {n}" for n in self.notes]
        lines.append("result: " + ("PASSED" if self.passed else "FAILED"))
        return "\n".join(lines)


def read_rdf(source: Path) -> dict:
    """The rdf mapping of a package zip, folder or rdf file; :class:`UserError` for unreadable input.

    The text goes through the gate's YAML limits (no alias bombs) before it is parsed.
    """
    import yaml

    from runner.inference.package import RDF_NAMES
    from runner.safety import load_yaml
    from runner.safety.yamlguard import MAX_YAML_BYTES

    source = Path(source)
    if not source.exists():
        raise UserError("model package not found", path=source, hint="give a .zip, a folder or an rdf.yaml")
    try:
        if source.is_dir():
            rdf = next((source / n for n in RDF_NAMES if (source / n).is_file()), None)
            if rdf is None:
                raise UserError("no rdf.yaml or bioimageio.yaml in the folder", path=source)
            data = load_yaml(rdf, what="model description")
        elif zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as zf:
                name = next((n for n in RDF_NAMES if n in zf.namelist()), None)
                if name is None:
                    raise UserError(
                        "the zip holds no rdf.yaml or bioimageio.yaml at its top level", path=source
                    )
                if zf.getinfo(name).file_size > MAX_YAML_BYTES:
                    raise UserError(f"the zip's {name} is larger than {MAX_YAML_BYTES} bytes", path=source)
                text = zf.read(name).decode("utf-8")
            data = load_yaml(source, text=text, what="model description")
        elif source.suffix.lower() == ".zip":
            raise UserError("not a readable zip file", path=source, hint="is the download complete?")
        else:
            data = load_yaml(source, what="model description")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, zipfile.BadZipFile) as exc:
        raise UserError(
            f"cannot read the package ({type(exc).__name__}: {str(exc)[:200]})", path=source
        ) from None
    if not isinstance(data, dict) or data.get("type") != "model":
        kind = data.get("type") if isinstance(data, dict) else None
        raise UserError(
            f"the description is of type {kind!r}, not a model"
            if kind
            else "not a bioimage.io model description",
            path=source,
            hint="runner tests bioimage.io model packages (type: model)",
        )
    return data


def _find_rdf(folder: Path, source: Path) -> Path:
    from runner.inference.package import find_rdf as find

    return find(folder, source)


def _gate(source: Path, formats: list[str], trust_code: bool):
    """Load the package through the gate (zip limits, files inside it, sizes) and inspect every weight file
    that will be run without ``trust_code`` (TorchScript ops, ONNX external data) before any test runs it.

    Returns the loaded package (its folder is what bioimageio.core tests), or None when the description does
    not load (reported as a failed check by the tests themselves).
    """
    from runner.inference.package import InvalidDescription, load_package
    from runner.safety import load_torchscript
    from runner.safety.trust import check_onnx

    try:
        pkg = load_package(source)
    except InvalidDescription:
        return None
    try:
        for fmt in formats:
            entry = pkg.weights_entry(fmt)
            if entry is None:
                continue
            path = pkg.file(entry.source, sha256=entry.sha256, what=f"{fmt} weights")
            if fmt == "torchscript" and not trust_code:
                load_torchscript(path, trust_code=False, map_location="cpu")
            elif fmt == "onnx":
                check_onnx(path, root=pkg.root, source=source)
    except BaseException:
        pkg.close()
        raise
    return pkg


def tolerance(rdf: dict) -> tuple[float, float, float]:
    """``(rtol, atol, mismatched ppm)``: the rdf's first reproducibility tolerance, else the defaults."""
    entries = (((rdf.get("config") or {}).get("bioimageio") or {}).get("reproducibility_tolerance")) or []
    first = entries[0] if entries and isinstance(entries[0], dict) else {}
    return (
        float(first.get("relative_tolerance", 1e-3)),
        float(first.get("absolute_tolerance", 1e-3)),
        float(first.get("mismatched_elements_per_million", 100)),
    )


def _core_checks(
    source: Path, formats: list[str], devices: list[str] | None, *, every: bool
) -> list[CheckResult]:
    """bioimageio.core's test: one run for all formats when ``every`` one is tested, else one per format."""
    from bioimageio.core import test_description

    seen: dict[str, CheckResult] = {}
    for fmt in [None] if every else formats:
        try:
            # the formats are bioimage.io weight format names (see exporters.weights.FORMATS)
            summary = test_description(
                str(source), weight_format=cast("SupportedWeightsFormat | None", fmt), devices=devices
            )
        except Exception as exc:  # bioimageio.core raises for some broken packages instead of reporting
            key = f"test ({fmt or 'all formats'})"
            seen[key] = CheckResult("bioimageio.core", key, False, [f"{type(exc).__name__}: {exc}"])
            continue
        for d in summary.details:
            msgs = [e.msg for e in d.errors] + [
                f"warning: {w.msg}" for w in d.warnings if d.status == "failed"
            ]
            key = d.name
            if key in seen and seen[key].passed and d.status == "passed":
                continue
            seen[key] = CheckResult("bioimageio.core", d.name, d.status == "passed", msgs)
    return list(seen.values())


def _runner_checks(source: Path, formats: list[str], tol, trust_code: bool, device: str) -> list[CheckResult]:
    from runner.inference import load_package, reproduce_test_outputs

    rtol, atol, ppm = tol
    out = []
    try:
        pkg = load_package(source)
    except UserError as exc:
        return [CheckResult("bmz-runner", "load package", False, [str(exc)])]
    try:
        for fmt in formats:
            name = f"runner predict reproduces the test outputs ({fmt})"
            try:
                results = reproduce_test_outputs(
                    pkg,
                    device=device,
                    weights=fmt,
                    trust_code=trust_code,
                    rtol=rtol,
                    atol=atol,
                    mismatched_ppm=ppm,
                    through_files=True,
                )
            except UserError as exc:
                out.append(CheckResult("bmz-runner", name, False, [str(exc)]))
                continue
            msgs = [r.describe(rtol=rtol, atol=atol, ppm=ppm) for r in results]
            out.append(CheckResult("bmz-runner", name, all(r.ok for r in results), msgs))
    finally:
        pkg.close()
    return out


def check_package(
    source: str | Path,
    *,
    weights: list[str] | None = None,
    trust_code: bool = False,
    device: str = "cpu",
    bioimageio: bool = True,
    ours: bool = True,
) -> PackageReport:
    """Test a package offline with bioimageio.core and with bmz-runner.

    Parameters
    ----------
    source : package ``.zip``, folder or rdf file.
    weights : formats to test (default: every format the package has).
    trust_code : also test formats that run the package's Python code (``pytorch_state_dict``).
    device : ``cpu`` or ``cuda`` (bmz-runner's check; bioimageio.core picks the same).
    bioimageio, ours : which of the two tests to run.

    Raises
    ------
    UserError
        The source is missing or not a readable model package (a description that does not validate is a
        failed check instead).
    """
    from exporters.offline import github_users_of, known_github_users

    source = Path(source)
    rdf = read_rdf(source)
    present = [k for k, v in (rdf.get("weights") or {}).items() if v]
    formats = [f for f in (weights or present)]
    unknown = [f for f in formats if f not in present]
    if unknown:
        raise UserError(
            f"the package has no {', '.join(unknown)} weights (it has {', '.join(present)})", path=source
        )
    report = PackageReport(source=source)
    if not trust_code:
        skipped = [f for f in formats if f in CODE_FORMATS]
        formats = [f for f in formats if f not in CODE_FORMATS]
        if skipped:
            report.notes.append(
                f"skipped {', '.join(skipped)}: it runs the package's Python code (use --trust-code)"
            )
    if not formats:
        raise UserError(
            "no weight format left to test", path=source, hint="add --trust-code or pick --weights"
        )
    devices = None if device in ("auto",) else [device.split(":")[0] if device.startswith("cuda") else device]
    pkg = _gate(source, formats, trust_code)
    try:
        # bioimageio.core tests the folder our gate unpacked, never unzipping the archive itself
        tested = source if pkg is None or source.suffix.lower() != ".zip" else _find_rdf(pkg.root, source)
        with known_github_users(github_users_of(rdf)) as unverified:
            if unverified:
                report.notes.append(f"GitHub user(s) {', '.join(unverified)} not verified (offline)")
            if bioimageio:
                report.checks += _core_checks(tested, formats, devices, every=set(formats) == set(present))
        if ours:
            report.checks += _runner_checks(source, formats, tolerance(rdf), trust_code, device)
    finally:
        if pkg is not None:
            pkg.close()
    return report
