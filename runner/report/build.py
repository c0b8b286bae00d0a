"""Assemble the HTML report of a results folder: one self-contained file (pictures as data URIs).

The page has the run's settings and package, pooled and per-image metrics (sortable table, accuracy against
IoU), a gallery of overlays worst image first with matched / false-positive / missed counts (full size on
click), per-object measurement histograms and, for 3D images, a few z slices. The byte budget (``max_mb``)
is shared by the pictures: thumbnails are small, full-size views shrink until the whole page fits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.report.collect import ImageEntry, Results, collect_results, read_measurements
from runner.report.figures import MATCH_THRESHOLD, accuracy_chart, data_uri, encode_jpeg, histogram, overlay

DEFAULT_MAX_MB = 10.0
"""Default size limit of a report: what a mail attachment usually allows."""
MAX_GALLERY = 100
"""Largest number of images in the gallery (the worst ones when there are more)."""
_THUMB_SIDE, _THUMB_BYTES, _FULL_SIDE = 240, 20_000, 1400
_PAGE_BYTES, _BYTES_PER_IMAGE = 40_000, 3_000
"""Bytes kept for the page, and per image for its table row and captions; the pictures share the rest."""

_POOLED = (
    ("av_ap_50_95_05", "avAP 0.5:0.95"),
    ("aji", "AJI"),
    ("aji_plus", "AJI+"),
    ("coco_map", "COCO mAP"),
    ("foreground_iou", "foreground IoU"),
)
_AT = ("accuracy", "f1", "panoptic_quality", "precision", "recall")
_TABLE = (
    ("n_true", "ground truth"),
    ("n_pred", "predicted"),
    (f"tp@{MATCH_THRESHOLD:g}", "matched"),
    (f"fp@{MATCH_THRESHOLD:g}", "FP"),
    (f"fn@{MATCH_THRESHOLD:g}", "missed"),
    (f"accuracy@{MATCH_THRESHOLD:g}", f"accuracy@{MATCH_THRESHOLD:g}"),
    (f"f1@{MATCH_THRESHOLD:g}", f"F1@{MATCH_THRESHOLD:g}"),
    (f"panoptic_quality@{MATCH_THRESHOLD:g}", f"PQ@{MATCH_THRESHOLD:g}"),
    ("av_ap_50_95_05", "avAP"),
    ("aji", "AJI"),
)


@dataclass
class ReportInfo:
    """What :func:`write_report` wrote."""

    path: Path
    n_bytes: int
    n_images: int
    has_metrics: bool


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        return " x ".join(_fmt(v) for v in value) if all(isinstance(v, int) for v in value) else str(value)
    return "-" if value is None else str(value)


def _settings(run: dict[str, Any] | None) -> tuple[list, list, str]:
    """Rows (label, text) of the settings table, the post-processor params, and all options as JSON."""
    if run is None:
        return [], [], ""
    pkg = run.get("package") or {}
    post = run.get("postprocessing")
    tiling = run.get("tiling")
    options = run.get("options") or {}
    rows = [
        ("package", f"{pkg.get('name', '?')} ({pkg.get('source', '?')})"),
        ("format version", pkg.get("format_version")),
        ("weights used", f"{run.get('weights')} (package has: {', '.join(pkg.get('weight_formats') or [])})"),
        ("target channels", pkg.get("targets")),
        ("device", run.get("device")),
        ("post-processor", post.get("name") if post else "none (raw outputs only)"),
    ]
    if post and post.get("filters"):
        rows.append(("filters", ", ".join(f"{f['name']} {f.get('params', {})}" for f in post["filters"])))
    if isinstance(tiling, dict):
        rows.append(("tiling", _tiling(tiling)))
    if run.get("notes"):
        rows.append(("notes", " ".join(str(n) for n in run["notes"])))
    rows += [
        ("test-time augmentation", "on" if options.get("tta") else "off"),
        ("ground truth", run.get("gt")),
        ("images done / failed", f"{len(run.get('done') or [])} / {len(run.get('failures') or {})}"),
        ("run time", f"{run.get('seconds', 0):.1f} s"),
        ("bmz-runner version", run.get("runner_version")),
    ]
    params = [(k, _fmt(v)) for k, v in ((post or {}).get("params") or {}).items()]
    return [(k, _fmt(v)) for k, v in rows if v is not None], params, json.dumps(options, indent=2)


def _tiling(tiling: dict[str, Any]) -> str:
    """The run's tiling in words: its summary lines (``modes``) when it has them, else the plain fields."""
    if tiling.get("modes"):
        return "; ".join(str(m) for m in tiling["modes"])
    return ", ".join(f"{k} {_fmt(v)}" for k, v in tiling.items() if not isinstance(v, dict))


def _pooled(summary: dict[str, Any]) -> tuple[list, list, list]:
    pooled = summary.get("pooled", {})
    rows = pooled.get("per_threshold", [])
    cards = [("images", str(summary.get("n_images", "?")))]
    at = next((r for r in rows if abs(r.get("iou", 0) - MATCH_THRESHOLD) < 1e-9), None)
    for key in _AT[:3]:
        if at is not None and key in at:
            cards.append((f"{key.replace('_', ' ')} @{MATCH_THRESHOLD:g}", _fmt(float(at[key]))))
    cards += [(label, _fmt(float(pooled[key]))) for key, label in _POOLED if key in pooled]
    columns = [c for c in ("iou", "tp", "fp", "fn", *_AT) if rows and c in rows[0]]
    table = [[_fmt(r[c]) for c in columns] for r in rows]
    return cards, columns, table


def _sort_key(entry: ImageEntry, counts: dict[str, int] | None) -> tuple:
    acc = entry.metrics.get(f"accuracy@{MATCH_THRESHOLD:g}", math.nan)
    if math.isnan(acc) and counts:
        acc = counts["tp"] / max(1, counts["tp"] + counts["fp"] + counts["fn"])
    return (math.isnan(acc), acc if not math.isnan(acc) else 0.0, entry.name)


def _table(results: Results) -> tuple[list, list]:
    present = {k for e in results.images for k in e.metrics}
    cols = [(k, label) for k, label in _TABLE if k in present]
    columns = [{"label": "image", "numeric": False}] + [{"label": lab, "numeric": True} for _, lab in cols]
    rows = []
    for i, e in enumerate(results.images):
        if not e.metrics:
            continue
        cells = [
            {"text": e.name, "sort": e.name, "numeric": False, "link": f"img-{i}" if e.instances else ""}
        ]
        for key, _ in cols:
            v = e.metrics.get(key, math.nan)
            text = (
                _fmt(int(v)) if key.startswith(("n_", "tp@", "fp@", "fn@")) and not math.isnan(v) else _fmt(v)
            )
            cells.append(
                {"text": text, "sort": "" if math.isnan(v) else repr(v), "numeric": True, "link": ""}
            )
        rows.append(cells)
    return columns, rows


def _gallery(results: Results, max_bytes: int) -> tuple[list[dict], str]:
    indexed = [(i, e) for i, e in enumerate(results.images) if e.instances is not None]
    items = []
    for i, entry in indexed:
        ov = overlay(entry)
        items.append((_sort_key(entry, ov.counts), i, entry, ov))
    items.sort(key=lambda t: t[0])
    more = ""
    if len(items) > MAX_GALLERY:
        more = f"{len(items) - MAX_GALLERY} more image(s) not shown (the best ones)"
        items = items[:MAX_GALLERY]
    per_image = int(max_bytes * 3 / 4 / max(1, len(items)))  # base64 makes 4 bytes of 3
    gallery = []
    for _, i, entry, ov in items:
        acc = entry.metrics.get(f"accuracy@{MATCH_THRESHOLD:g}", math.nan)
        thumb = encode_jpeg(
            ov.rgb, max_side=_THUMB_SIDE, max_bytes=min(_THUMB_BYTES, per_image // 4), quality=82
        )
        full = encode_jpeg(ov.rgb, max_side=_FULL_SIDE, max_bytes=max(1, per_image - len(thumb)))
        gallery.append(
            {
                "id": f"img-{i}",
                "caption": ov.caption,
                "thumb": data_uri(thumb, "image/jpeg"),
                "full": data_uri(full, "image/jpeg"),
                "counts": ov.counts,
                "accuracy": "" if math.isnan(acc) else f"{acc:.3f}",
                "n_objects": ov.n_objects,
                "problem": ov.problem,
                "wide": ov.rgb.shape[1] > 1.5 * ov.rgb.shape[0],
            }
        )
    return gallery, more


def _histograms(results: Results) -> tuple[list[dict], int]:
    pooled: dict[str, list[float]] = {}
    n = 0
    for e in results.images:
        if e.measurements is None:
            continue
        columns = read_measurements(e.measurements)
        n += max((len(v) for v in columns.values()), default=0)
        for key, values in columns.items():
            pooled.setdefault(key, []).extend(values)
    return [{"name": k, "uri": histogram(k, v)} for k, v in pooled.items() if len(v) >= 2], n


def render_report(results: Results, *, max_mb: float = DEFAULT_MAX_MB, title: str | None = None) -> str:
    """The report of ``results`` as one HTML text (see the module docstring)."""
    import jinja2

    from runner import __version__

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("runner.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    settings, params, options_json = _settings(results.run_config)
    cards, threshold_columns, threshold_rows = _pooled(results.summary) if results.summary else ([], [], [])
    table_columns, table_rows = _table(results)
    histograms, n_measured = _histograms(results)
    chart = accuracy_chart(results.summary) if results.summary else ""
    used = (
        len(chart)
        + sum(len(h["uri"]) for h in histograms)
        + _PAGE_BYTES
        + _BYTES_PER_IMAGE * len(results.images)
    )
    gallery, more = _gallery(results, int(max_mb * 1e6) - used)
    name = ((results.run_config or {}).get("package") or {}).get("name")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return env.get_template("report.html.j2").render(
        title=title or f"Segmentation report: {results.folder.resolve().name}",
        subtitle=f"{len(results.images)} image(s)" + (f" · model {name}" if name else "") + f" · {when}",
        notes=results.notes,
        settings=settings,
        params=params,
        options_json=options_json,
        pooled=cards,
        chart=chart,
        threshold_columns=threshold_columns,
        threshold_rows=threshold_rows,
        threshold=f"{MATCH_THRESHOLD:g}",
        table_columns=table_columns,
        table_rows=table_rows,
        gallery=gallery,
        gallery_sorted=any(e.metrics for e in results.images) or any(g["counts"] for g in gallery),
        gallery_more=more,
        histograms=histograms,
        n_measured=n_measured,
        version=__version__,
        folder=str(results.folder),
    )


def write_report(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    images: str | Path | None = None,
    gt: str | Path | None = None,
    max_mb: float = DEFAULT_MAX_MB,
    title: str | None = None,
) -> ReportInfo:
    """Write the HTML report of a results folder (atomically; default ``FOLDER/report.html``).

    Raises
    ------
    UserError
        The folder is missing or empty, ``out`` is a folder, or its parent does not exist.
    """
    from runner.errors import UserError
    from runner.io import write_text_atomic

    results = collect_results(folder, images=images, gt=gt)
    out = Path(out) if out is not None else Path(folder) / "report.html"
    if out.is_dir():
        raise UserError("--out is a folder", path=out, hint="give a file name such as report.html")
    if not out.parent.is_dir():
        raise UserError("the parent folder of --out does not exist", path=out.parent, hint="create it first")
    html = render_report(results, max_mb=max_mb, title=title)
    write_text_atomic(out, html)
    return ReportInfo(out, len(html.encode()), len(results.images), results.summary is not None)
