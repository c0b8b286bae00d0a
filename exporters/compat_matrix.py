"""Load exported packages with several bioimageio.spec releases, each in a throw-away virtual environment.

Usage::

    python -m exporters.compat_matrix model.zip [more.zip ...] [--versions 0.5.4.1,0.5.7.4,latest]

For every version a venv is created under a temporary folder (removed at the end), ``bioimageio.spec==V``
(``latest``: the newest release pip finds) is installed into it, and a small script loads each package with
``bioimageio.spec.load_description`` (io checks on: file hashes verified, sample tensors read). A markdown
table is printed last: package, installed spec and pydantic versions, the format version the package was
read as, the status, and the first error when it failed. Needs pip access to PyPI; each install takes
about 20 s.

Pinned releases are installed with ``pydantic<2.14`` (``--pin``): pydantic 2.14 breaks bioimageio.spec
0.5.7.x-0.5.12.x for every package (``package_file_descr_serializer ... 'index_key'``), the same reason
``.ci/constraints.txt`` pins it. ``latest`` gets whatever pydantic it asks for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_VERSIONS = ("0.5.4.1", "0.5.7.4", "latest")
DEFAULT_PIN = "pydantic<2.14"

LOADER = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
row = {"spec": None, "status": "error", "format_version": None, "error": ""}
try:
    import bioimageio.spec as spec
    import pydantic
    row["spec"] = spec.__version__
    row["pydantic"] = pydantic.VERSION
    descr = spec.load_description(sys.argv[1], perform_io_checks=True)
    row["status"] = str(descr.validation_summary.status)
    row["format_version"] = str(getattr(descr, "format_version", None))
    row["type"] = type(descr).__name__
    if type(descr).__name__ == "InvalidDescr":
        errs = [e.msg for d in descr.validation_summary.details for e in d.errors]
        row["error"] = "; ".join(errs[:2])
        row["status"] = "invalid"
    else:
        row["weights"] = sorted(k for k, v in descr.weights if v is not None)
        row["inputs"] = [str(t.id) for t in descr.inputs]
except Exception as exc:
    row["error"] = f"{type(exc).__name__}: {exc}"[:300]
print("ROW " + json.dumps(row))
"""


@dataclass
class Row:
    """One package loaded with one spec version."""

    package: str
    requested: str
    spec: str | None
    pydantic: str | None
    status: str
    format_version: str | None
    error: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status in ("valid-format", "passed")


def make_venv(root: Path, version: str, *, pin: str = "", python: str = sys.executable) -> tuple[Path, str]:
    """Create a venv in ``root`` with ``bioimageio.spec`` at ``version`` (+ ``pin`` for pinned versions).

    Returns the venv's python and pip's output.
    """
    subprocess.run([python, "-m", "venv", str(root)], check=True, capture_output=True)
    py = root / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    reqs = ["bioimageio.spec"] if version == "latest" else [f"bioimageio.spec=={version}"]
    if pin and version != "latest":
        reqs.append(pin)
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"pip install {' '.join(reqs)} failed: {(proc.stderr or proc.stdout).strip()[-400:]}"
        )
    return py, proc.stderr


def load_with(py: Path, package: Path) -> dict:
    """Run :data:`LOADER` with the venv's python on ``package``; the parsed result row."""
    proc = subprocess.run(
        [str(py), "-c", LOADER, str(package)], capture_output=True, text=True, cwd=package.parent, timeout=600
    )
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    return {"status": "error", "error": (proc.stderr or proc.stdout).strip()[-300:]}


def _label(package: Path) -> str:
    """``model.zip``, or ``folder/rdf.yaml`` for an rdf inside a package folder."""
    return f"{package.parent.name}/{package.name}" if package.suffix in (".yaml", ".yml") else package.name


def run_matrix(
    packages: list[Path], versions: list[str], *, pin: str = DEFAULT_PIN, progress=print
) -> list[Row]:
    """Every package loaded with every spec version (one venv per version)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bmz-compat-") as tmp:
        for version in versions:
            start = time.perf_counter()
            progress(f"[{version}] creating venv and installing bioimageio.spec ...")
            try:
                py, _ = make_venv(Path(tmp) / f"spec-{version}", version, pin=pin)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                rows += [
                    Row(_label(p), version, None, None, "install failed", None, str(exc)[:300], 0.0)
                    for p in packages
                ]
                continue
            progress(f"[{version}] installed in {time.perf_counter() - start:.0f} s")
            for pkg in packages:
                t0 = time.perf_counter()
                r = load_with(py, pkg)
                rows.append(
                    Row(
                        package=_label(pkg),
                        requested=version,
                        spec=r.get("spec"),
                        pydantic=r.get("pydantic"),
                        status=r.get("status", "error"),
                        format_version=r.get("format_version"),
                        error=r.get("error", ""),
                        seconds=time.perf_counter() - t0,
                    )
                )
    return rows


def table(rows: list[Row]) -> str:
    """Markdown table of the results."""
    lines = [
        "| package | bioimageio.spec | pydantic | read as format | status | load time | problem |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spec = r.spec or f"({r.requested})"
        mark = "ok" if r.ok else "FAIL"
        problem = r.error.replace("|", "\\|").replace("\n", " ")[:160]
        lines.append(
            f"| {r.package} | {spec} | {r.pydantic or '-'} | {r.format_version or '-'} | {mark}: {r.status} "
            f"| {r.seconds:.1f} s "
            f"| {problem} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", type=Path, help="Package zips or rdf files to load.")
    parser.add_argument(
        "--versions",
        default=",".join(DEFAULT_VERSIONS),
        help="Comma-separated bioimageio.spec versions ('latest' = newest on the index).",
    )
    parser.add_argument(
        "--pin",
        default=DEFAULT_PIN,
        help=f"Extra requirement installed with every pinned version (default {DEFAULT_PIN!r}; '' for none).",
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.packages if not p.exists()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    rows = run_matrix(
        [p.resolve() for p in args.packages], versions, progress=lambda m: print(m, file=sys.stderr)
    )
    print(table(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
