"""Property-based fuzzing (hypothesis) of the readers that take files from strangers: the rdf/zip loader, the
TIFF reader and the COCO reader. Whatever the bytes, they either succeed or raise a :class:`UserError` (one
line for the user), never another exception, and the zip loader never writes outside its folder.

The default suite runs a few dozen examples per reader with a short deadline; ``-m slow`` runs many more.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import UserError
from runner.io import read_image
from runner.io.coco import read_coco
from runner.safety import check_yaml_text, safe_extract

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

yaml_text = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(
            ["a: &x [1, 2]", "b: *x", "c: [*x, *x]", "- 1", "d: {e: *x}", "&y f: 1", ": :", "  g:"]
        ),
        max_size=12,
    ).map("\n".join),
)


def _check_yaml(text: str) -> None:
    try:
        check_yaml_text(text, path="fuzz.yaml")
    except UserError:
        pass


@FAST
@given(yaml_text)
def test_yaml_gate_fast(text):
    _check_yaml(text)


@pytest.mark.slow
@SLOW
@given(yaml_text)
def test_yaml_gate_slow(text):
    _check_yaml(text)


entry_names = st.one_of(
    st.sampled_from(
        ["rdf.yaml", "weights.onnx", "../evil", "/abs", "a/../../b", "dir/", "C:\\x", "a\\..\\..\\b"]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        min_size=1,
        max_size=20,
    ),
)
entries = st.lists(st.tuples(entry_names, st.binary(max_size=200)), max_size=6)


def _zip_bytes(items) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            try:
                zf.writestr(name, data)
            except (ValueError, UnicodeEncodeError):
                pass
    return buf.getvalue()


def _extract(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = root / "pkg.zip"
        archive.write_bytes(blob)
        dest = root / "dest" / "inner"
        try:
            safe_extract(archive, dest, max_bytes=1 << 20)
        except UserError:
            pass
        for path in root.rglob("*"):  # nothing may land outside dest (besides the archive itself)
            assert path == archive or path == dest.parent or dest in (path, *path.parents), path


@FAST
@given(entries, st.integers(min_value=0, max_value=64), st.binary(max_size=8))
def test_zip_loader_fast(items, cut, junk):
    blob = _zip_bytes(items)
    _extract(blob)
    _extract(blob[: len(blob) - cut] + junk)  # truncated and corrupted archives


@pytest.mark.slow
@SLOW
@given(entries, st.integers(min_value=0, max_value=256), st.binary(max_size=64))
def test_zip_loader_slow(items, cut, junk):
    blob = _zip_bytes(items)
    _extract(blob)
    _extract(blob[: len(blob) - cut] + junk)


def _valid_tiff() -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, (np.arange(16 * 12) % 251).astype(np.uint8).reshape(16, 12))
    return buf.getvalue()


TIFF = _valid_tiff()
mutations = st.lists(
    st.tuples(st.integers(min_value=0, max_value=len(TIFF) - 1), st.integers(0, 255)), max_size=8
)


def _read_tiff(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.tif"
        path.write_bytes(blob)
        try:
            image = read_image(path)
        except UserError:
            return
        assert image.data.dtype == np.float32 and np.isfinite(image.data).all()


def _mutate(changes, cut: int) -> bytes:
    blob = bytearray(TIFF)
    for pos, value in changes:
        blob[pos] = value
    return bytes(blob[: len(blob) - cut])


@FAST
@given(mutations, st.integers(min_value=0, max_value=len(TIFF) - 1))
def test_tiff_reader_fast(changes, cut):
    _read_tiff(_mutate(changes, cut))


@pytest.mark.slow
@SLOW
@given(mutations, st.integers(min_value=0, max_value=len(TIFF) - 1))
def test_tiff_reader_slow(changes, cut):
    _read_tiff(_mutate(changes, cut))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
sizes = st.one_of(st.integers(-3, 40), st.sampled_from(["12", "x", None, 1.5, 10**7]))
coco_docs = st.fixed_dictionaries(
    {
        "images": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.integers(0, 3),
                    "file_name": st.sampled_from(["a.png", "b/a.png", ""]),
                    "height": sizes,
                    "width": sizes,
                }
            ),
            max_size=3,
        ),
        "annotations": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.integers(0, 9),
                    "image_id": st.integers(0, 3),
                    "segmentation": st.one_of(
                        st.lists(st.lists(st.floats(-5, 50), max_size=10), max_size=2),
                        st.fixed_dictionaries(
                            {
                                "counts": st.one_of(
                                    st.lists(st.integers(-2, 400), max_size=6), st.text(max_size=10)
                                ),
                                "size": st.lists(st.integers(-1, 40), max_size=3),
                            }
                        ),
                        json_values,
                    ),
                }
            ),
            max_size=4,
        ),
    }
)


def _read_coco(doc) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.json"
        path.write_text(json.dumps(doc))
        try:
            images = read_coco(path)
        except UserError:
            return
        for im in images:
            im.to_labels()


@FAST
@given(st.one_of(coco_docs, json_values))
def test_coco_reader_fast(doc):
    _read_coco(doc)


@pytest.mark.slow
@SLOW
@given(st.one_of(coco_docs, json_values))
def test_coco_reader_slow(doc):
    _read_coco(doc)
