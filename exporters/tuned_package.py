"""A copy of a package with new post-processing params (``runner tune``): config, README, then tested.

Only ``config.runner`` and the README's ``# Validation`` section change; weights, test tensors and every
other field are copied as they are, and the rdf keeps the format version it was written in (so a 0.5.4-form
package stays readable by older tools). The new rdf is validated with bioimageio.spec, and the package must
pass bioimageio.core's test and bmz-runner's check before it is moved to its destination.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

from exporters.build import check_out, publish
from runner.contracts import PostprocessingConfig, TunedOn, ValidationInfo, parse_runner_config
from runner.errors import UserError

RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def _unpack(source: Path, dest: Path) -> Path:
    """Copy exactly the files the description references (and the rdf) into ``dest``.

    Nothing else of the package's folder or zip is published (no folder copy: private files next to a
    package stay on the machine); every reference is checked to lie inside the package (links resolved,
    file contents copied, never the link), through the same gate as ``runner predict``.
    """
    from runner.inference.package import find_rdf, load_package
    from runner.safety import inside_package, load_yaml, referenced_files

    pkg = load_package(source)
    try:
        is_rdf = source.is_file() and source.suffix.lower() != ".zip"
        rdf_src = source if is_rdf else find_rdf(pkg.root, source)
        raw = load_yaml(rdf_src, what="model description")
        files = [f for f in referenced_files(pkg.descr) + referenced_files(raw) if "://" not in f]
        dest.mkdir(parents=True)
        for rel in dict.fromkeys(files):
            src = inside_package(pkg.root, rel, what="file", source=source)
            if not src.is_file():
                raise UserError(f"the package's file {rel} is missing", path=source)
            target = inside_package(dest, rel, what="file", source=source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        rdf = dest / (rdf_src.name if rdf_src.name in RDF_NAMES else "rdf.yaml")
        shutil.copyfile(rdf_src, rdf)
    finally:
        pkg.close()
    return rdf


def replace_section(text: str, heading: str, new_lines: list[str]) -> str:
    """Replace the markdown section starting with the line ``heading`` up to the next heading (or the end);
    append it when the text has no such section."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        return text.rstrip("\n") + "\n\n" + "\n".join(new_lines) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    tail = lines[end:]
    return "\n".join([*lines[:start], *new_lines, *([""] if tail else []), *tail]) + "\n"


def write_tuned_package(
    source: str | Path,
    out: str | Path,
    *,
    postprocessing: PostprocessingConfig,
    tuned_on: TunedOn,
    validation_lines: list[str] | None = None,
    validation: ValidationInfo | None = None,
    overwrite: bool = False,
    test_time_augmentation: bool | None = None,
    trust_code: bool = False,
) -> Path:
    """Write ``source`` (zip, folder or rdf) to ``out`` with ``config.runner.postprocessing`` replaced.

    Parameters
    ----------
    postprocessing : the post-processor and its new params.
    tuned_on : provenance of the params (data, metric, score, ...), stored as ``config.runner.tuned_on``.
    validation_lines : a new ``# Validation`` README section (replaces the old one, or is appended).
    validation : new ``config.runner.validation`` block.
    test_time_augmentation : when given, stored as ``config.runner.test_time_augmentation``
        (``runner predict`` then averages over mirrored inputs by default: the params were tuned so).
    trust_code : let the final test run ``pytorch_state_dict`` weights (the package's own Python source);
        without it that format is skipped in the test, like ``runner test`` does.
    """
    from exporters.compat import dump_yaml, validate_content
    from exporters.offline import github_users_of
    from runner.safety import load_yaml

    source, out = Path(source), Path(out)
    check_out(out, overwrite)
    with tempfile.TemporaryDirectory(prefix="bmz-tune-") as tmp:
        folder = Path(tmp) / "package"
        rdf_path = _unpack(source, folder)
        rdf = load_yaml(rdf_path, what="model description")
        content = copy.deepcopy(rdf)
        config = content.setdefault("config", {}) or {}
        content["config"] = config
        runner_cfg = config.setdefault("runner", {}) or {}
        config["runner"] = runner_cfg
        runner_cfg["postprocessing"] = postprocessing.model_dump(mode="json")
        runner_cfg["tuned_on"] = tuned_on.model_dump(mode="json")
        if test_time_augmentation is not None:
            runner_cfg["test_time_augmentation"] = bool(test_time_augmentation)
        if validation is not None:
            runner_cfg["validation"] = validation.model_dump(mode="json", exclude_unset=True)
        parse_runner_config(runner_cfg, path=source)  # what predict will read back
        if validation_lines:
            doc = content.get("documentation")
            doc_name = doc["source"] if isinstance(doc, dict) else doc
            if doc_name and (folder / str(doc_name)).is_file() and not isinstance(doc, dict):
                readme = folder / str(doc_name)
                readme.write_text(
                    replace_section(readme.read_text(encoding="utf-8"), "# Validation", validation_lines),
                    encoding="utf-8",
                )
        validate_content(content, folder, github_users=github_users_of(content))
        rdf_path.write_text(dump_yaml(content), encoding="utf-8")
        publish(folder, out, trust_code=trust_code)
    return out
