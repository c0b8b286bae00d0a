"""Hostile and careless inputs, built on the fly (no binary blobs in the repository).

Each ``make_*`` function writes one input into a folder and returns its path; the security tests drive them
through the CLI. Run as a script to write the whole corpus for a manual attack session::

    python tests/hostile_corpus.py /tmp/corpus

Packages are derived from a tiny package built by ``tests._packages.build_package`` (TorchScript, ONNX and a
PyTorch state dict with its architecture source).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import yaml

BOMB_LEVELS = 9
"""Nine levels of nine aliases: 9**9 (387 million) nodes from a file of about 400 bytes."""


def yaml_bomb_text(levels: int = BOMB_LEVELS) -> str:
    """A 'billion laughs' YAML mapping: each level aliases the previous one nine times."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(['"lol"'] * 9) + "]"]
    for prev, cur in zip(names, names[1:], strict=False):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rdf(folder: Path) -> Path:
    return next(p for p in (folder / "rdf.yaml", folder / "bioimageio.yaml") if p.exists())


def edit_rdf(folder: Path, edit) -> Path:
    """Apply ``edit(mapping)`` to the package's rdf (plain YAML round trip) and return the rdf path."""
    rdf = _rdf(folder)
    data = yaml.safe_load(rdf.read_text())
    edit(data)
    rdf.write_text(yaml.safe_dump(data, sort_keys=False))
    return rdf


def copy_package(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


def zip_package(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.is_symlink():
                zf.write(p, p.relative_to(folder).as_posix())
    return target


def make_bomb_package(base: Path, dest: Path) -> Path:
    """A package whose rdf carries a YAML alias bomb (extra top-level keys)."""
    copy_package(base, dest)
    rdf = _rdf(dest)
    rdf.write_text(rdf.read_text() + yaml_bomb_text())
    return dest


def make_outside_reference(base: Path, dest: Path, reference: str, *, fmt: str = "onnx") -> Path:
    """A package whose ``fmt`` weights point at ``reference`` (an absolute path or ``../..``)."""
    copy_package(base, dest)

    def edit(data):
        data["weights"][fmt]["source"] = reference
        data["weights"][fmt].pop("sha256", None)

    edit_rdf(dest, edit)
    return dest


def only_weights(folder: Path, keep: tuple[str, ...]) -> None:
    """Drop every weight format but ``keep`` from the rdf (files stay)."""

    def edit(data):
        data["weights"] = {k: v for k, v in data["weights"].items() if k in keep}
        for entry in data["weights"].values():
            if entry.get("parent") not in keep:
                entry.pop("parent", None)

    edit_rdf(folder, edit)


def replace_weights(folder: Path, fmt: str, new_file: Path) -> None:
    """Put ``new_file`` in the package as the ``fmt`` weights (sha256 updated)."""
    target = folder / new_file.name
    shutil.copyfile(new_file, target)

    def edit(data):
        data["weights"][fmt]["source"] = target.name
        data["weights"][fmt]["sha256"] = _sha256(target)

    edit_rdf(folder, edit)


def save_through_function(x: torch.Tensor, target: str) -> torch.Tensor:
    """A script function (not a method) that writes a file: reached through ``prim::CallFunction``."""
    torch.save(x, target)
    return x


def evil_torchscript(path: Path, marker: Path, *, op: str = "from_file") -> Path:
    """A TorchScript module whose nested submodule's helper method touches ``marker`` (not a tensor op):
    ``from_file`` (reads/creates the file), ``save`` (writes it) or ``function`` (``save`` inside a script
    function the method calls)."""
    marker_text = str(marker)

    if op == "function":

        class Inner(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.target = marker_text

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return save_through_function(x, self.target)

    elif op == "from_file":

        class Inner(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.target = marker_text

            def helper(self, x: torch.Tensor) -> torch.Tensor:
                y = torch.from_file(self.target, shared=True, size=4)
                return x + y.sum()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.helper(x)

    else:

        class Inner(torch.nn.Module):  # type: ignore[no-redef]
            def __init__(self):
                super().__init__()
                self.target = marker_text

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                torch.save(x, self.target)
                return x

    class Middle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool(x.sum() > -1e30):
                return self.inner(x)
            return x

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = torch.nn.Sequential(torch.nn.Identity(), Middle())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.block(x), x], dim=1)

    torch.jit.script(Outer()).save(str(path))
    return path


def setstate_torchscript(path: Path) -> Path:
    """A TorchScript module with ``__getstate__``/``__setstate__``: code that runs while it loads."""
    import torch

    class Stateful(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.flag = 1

        @torch.jit.export
        def __getstate__(self) -> tuple[int, bool]:
            return (self.flag, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[int, bool]) -> None:
            self.flag = state[0]
            self.training = state[1]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x], dim=1)

    torch.jit.script(Stateful()).save(str(path))
    return path


def make_torchscript_package(base: Path, dest: Path, weights: Path) -> Path:
    """A package running ``weights`` as its only (TorchScript) weights."""
    copy_package(base, dest)
    replace_weights(dest, "torchscript", weights)
    only_weights(dest, ("torchscript",))
    return dest


def make_code_package(base: Path, dest: Path, marker: Path, *, keep_onnx: bool = True) -> Path:
    """ONNX (optional) + pytorch_state_dict weights whose architecture source writes ``marker`` on import."""
    copy_package(base, dest)
    rdf = yaml.safe_load(_rdf(dest).read_text())
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    src = dest / arch["source"]
    src.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + src.read_text())

    def edit(data):
        data["weights"]["pytorch_state_dict"]["architecture"]["sha256"] = _sha256(src)

    edit_rdf(dest, edit)
    only_weights(dest, ("onnx", "pytorch_state_dict") if keep_onnx else ("pytorch_state_dict",))
    return dest


def make_private_folder(base: Path, dest: Path, outside: Path) -> Path:
    """A package folder with an unrelated private file and a link to a file outside it."""
    copy_package(base, dest)
    (dest / "private_notes.txt").write_text("not part of the model\n")
    (dest / "private_link.txt").symlink_to(outside)
    (dest / "sub").mkdir()
    (dest / "sub" / "also_private.txt").write_text("secret\n")
    return dest


def make_pickle_weights(base: Path, dest: Path) -> Path:
    """pytorch_state_dict weights that are a pickle calling ``os.system`` (refused by ``weights_only``)."""
    import os

    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    copy_package(base, dest)
    rdf = yaml.safe_load(_rdf(dest).read_text())
    target = dest / rdf["weights"]["pytorch_state_dict"]["source"]
    torch.save({"weight": Evil()}, target)

    def edit(data):
        data["weights"]["pytorch_state_dict"]["sha256"] = _sha256(target)

    edit_rdf(dest, edit)
    return dest


def make_min_size_package(base: Path, dest: Path, min_size: int = 60000) -> Path:
    """A package whose input axes must be at least ``min_size`` pixels."""
    copy_package(base, dest)

    def edit(data):
        for axis in data["inputs"][0]["axes"]:
            if axis.get("type") == "space":
                axis["size"] = {"min": min_size, "step": 8}

    edit_rdf(dest, edit)
    return dest


def make_dataset_rdf(folder: Path) -> Path:
    """A description of ``type: dataset``."""
    folder.mkdir(parents=True, exist_ok=True)
    rdf = folder / "rdf.yaml"
    rdf.write_text(
        yaml.safe_dump(
            {
                "format_version": "0.3.0",
                "type": "dataset",
                "name": "some data",
                "description": "a dataset, not a model",
                "authors": [{"name": "x"}],
                "cite": [{"text": "x", "url": "https://example.com"}],
                "license": "MIT",
            }
        )
    )
    return rdf


def make_zip_bomb(path: Path, size: int = 64 * 1024**2) -> Path:
    """A zip holding an rdf and ``size`` zero bytes compressed about 1000 times."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rdf.yaml", "type: model\nformat_version: 0.5.4\n")
        with zf.open("weights.onnx", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    return path


def make_huge_tiff(path: Path, height: int = 100000, width: int = 100000) -> Path:
    """A TIFF of a few hundred bytes whose header claims ``height x width`` uint8 pixels (one strip)."""
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 8),  # deflate: the strip is tiny and never decoded
        (262, 3, 1),
        (273, 4, 0),  # strip offset, patched below
        (277, 3, 1),
        (278, 4, height),
        (279, 4, 16),
    ]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset))
    out += struct.pack("<H", len(entries))
    for tag, typ, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HI", value, 0)[:4] if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, 1) + packed
    out += struct.pack("<I", 0)
    out += bytes(16)
    path.write_bytes(bytes(out))
    return path


def make_complex_tiff(path: Path) -> Path:
    import tifffile

    data = (np.ones((32, 32)) + 1j * np.arange(32)[:, None]).astype(np.complex64)
    tifffile.imwrite(path, data)
    return path


def coco(images: list[dict], annotations: list[dict] | None = None) -> dict:
    return {"images": images, "annotations": annotations or [], "categories": [{"id": 1, "name": "cell"}]}


def square(image_id: int, ann_id: int, x: float, y: float, side: float = 4.0) -> dict:
    poly = [x, y, x + side, y, x + side, y + side, x, y + side]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "segmentation": [poly], "iscrowd": 0}


def make_coco(path: Path, kind: str) -> Path:
    """COCO files: ``huge`` (100000 x 100000), ``negative`` or ``text`` height, ``same_names`` (a/x, b/x)."""
    if kind == "huge":
        doc = coco(
            [{"id": 1, "file_name": "big.png", "height": 100000, "width": 100000}], [square(1, 1, 2, 2)]
        )
    elif kind == "negative":
        doc = coco([{"id": 1, "file_name": "a.png", "height": -5, "width": 20}], [square(1, 1, 2, 2)])
    elif kind == "text":
        doc = coco([{"id": 1, "file_name": "a.png", "height": "tall", "width": 20}], [square(1, 1, 2, 2)])
    elif kind == "same_names":
        doc = coco(
            [
                {"id": 1, "file_name": "plate1/img.png", "height": 16, "width": 16},
                {"id": 2, "file_name": "plate2/img.png", "height": 16, "width": 16},
            ],
            [square(1, 1, 2, 2), square(2, 2, 8, 8), square(2, 3, 1, 9, 3)],
        )
    else:
        raise ValueError(kind)
    path.write_text(json.dumps(doc))
    return path


def build_all(out: Path) -> list[Path]:
    """Write every corpus item into ``out`` (a base package is built first)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests._packages import build_package

    out.mkdir(parents=True, exist_ok=True)
    base = build_package(
        out / "base_package", formats=("torchscript", "onnx", "pytorch_state_dict"), make_zip=True
    ).folder
    outside = out / "outside_secret.txt"
    outside.write_text("private\n")
    marker = out / "MARKER_should_not_exist"
    made = [
        make_bomb_package(base, out / "yaml_bomb_package"),
        make_outside_reference(base, out / "absolute_weights", str(outside)),
        make_outside_reference(base, out / "dotdot_weights", "../outside_secret.txt"),
        make_torchscript_package(
            base, out / "from_file_torchscript", evil_torchscript(out / "evil.pt", marker)
        ),
        make_torchscript_package(
            base, out / "save_torchscript", evil_torchscript(out / "evil_save.pt", marker, op="save")
        ),
        make_torchscript_package(base, out / "setstate_torchscript", setstate_torchscript(out / "state.pt")),
        make_code_package(base, out / "code_on_import", marker),
        make_private_folder(base, out / "private_folder", outside),
        make_pickle_weights(base, out / "pickle_weights"),
        make_min_size_package(base, out / "min_size_60000"),
        make_dataset_rdf(out / "dataset_rdf"),
        make_zip_bomb(out / "zip_bomb.zip"),
        make_huge_tiff(out / "huge_header.tif"),
        make_complex_tiff(out / "complex.tif"),
        *(make_coco(out / f"coco_{k}.json", k) for k in ("huge", "negative", "text", "same_names")),
    ]
    (out / "bomb.yaml").write_text(yaml_bomb_text())
    made.append(out / "bomb.yaml")
    return made


if __name__ == "__main__":
    for item in build_all(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile_corpus")):
        print(item)
