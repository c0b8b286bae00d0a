#!/usr/bin/env bash
# Prepare the GPU round (run HERE, on the CPU machine, before borrowing the GPU): benchmarks/gpu_round.sh needs
# the training data and the Python packages the GPU machine's image lacks, inside the checkout (the machine gets
# the checkout only, not ../shared, and nothing can be fetched there).
#
#   bash benchmarks/gpu_prepare.sh              # copy data into .gpu/, list the wheels to carry, check the size
#   bash benchmarks/gpu_prepare.sh --download   # also fetch those cp312 wheels into .gpu/whl (pip download)
#   bash benchmarks/gpu_prepare.sh --download --aside   # also move the 3D package (not used by the round) to
#                                               .gpu-aside/ so the tree fits 64 MiB; afterwards restore it with
#   bash benchmarks/gpu_prepare.sh --restore
#
# Then call the device tool with carry [".gpu"] and the command `bash benchmarks/gpu_round.sh`.
# .gpu/ is ignored through .git/info/exclude (added here), so it never gets committed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DOWNLOAD=0 ASIDE=0
for arg in "$@"; do
    case "$arg" in
        --download) DOWNLOAD=1 ;;
        --aside) ASIDE=1 ;;
        --restore)
            for f in .gpu-aside/*.zip; do [ -e "$f" ] && mv "$f" zoo_packages/; done
            rmdir .gpu-aside 2>/dev/null || true
            git status --short zoo_packages; echo "zoo_packages restored"
            exit 0 ;;
        *) echo "unknown option $arg (use --download, --aside, --restore)" >&2; exit 2 ;;
    esac
done
DATA=${DSB2018:-$ROOT/../shared/data/dsb2018}
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3

exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
grep -qx '/.gpu-aside/' "$exclude" 2>/dev/null || echo '/.gpu-aside/' >>"$exclude"
if [ "$ASIDE" = 1 ]; then  # the round uses the 2D package and the third-party one only
    mkdir -p .gpu-aside && for f in zoo_packages/unet3d_*.zip; do [ -e "$f" ] && mv "$f" .gpu-aside/; done
fi
mkdir -p .gpu/whl

# 1. training data: dsb2018/train without the images the recipe holds back for tuning (training skips them)
"$PY" - "$DATA" <<'EOF'
import shutil, sys, tarfile
from pathlib import Path
sys.path.insert(0, ".")
from runner.recipes import load_recipe

src = Path(sys.argv[1]) / "train"
held = set(load_recipe("model_specs/unet2d_bcd_nuclei_wide.yaml").data.held_out)
out = Path(".gpu/dsb2018.tar.gz")
n = 0
with tarfile.open(out, "w:gz", compresslevel=9) as tar:
    for img in sorted((src / "x").glob("*.tif")):
        if img.stem in held:
            continue
        tar.add(img, f"dsb2018/train/x/{img.name}")
        tar.add(src / "y" / img.name, f"dsb2018/train/y/{img.name}")
        n += 1
print(f"{out}: {n} training pairs ({len(held)} held out for tuning), {out.stat().st_size / 2**20:.1f} MiB")
EOF

# 2. wheels: runtime dependencies of bmz-runner that the H200 image lacks (its package list:
#    /work/.library/device/KINDS.md), at the versions of our venv; cp312 manylinux builds.
WHEELS=$("$PY" - <<'EOF'
import importlib.metadata as md, re
THERE = {  # the GPU image's packages that bmz-runner needs (read from KINDS.md, 2026-11-17)
    "numpy", "scipy", "scikit-image", "tifffile", "numba", "llvmlite", "torch", "onnx", "onnxruntime", "pyyaml",
    "typer", "rich", "tqdm", "matplotlib", "pillow", "imageio", "h5py", "xarray", "pandas", "requests",
    "packaging", "typing-extensions", "networkx", "lazy-loader", "pytest", "pytest-xdist", "hypothesis",
    "jinja2", "click", "shellingham", "pygments", "markdown-it-py", "mdurl", "protobuf", "ml-dtypes",
    "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "six", "idna",
    "certifi", "charset-normalizer", "urllib3", "attrs", "filelock", "fsspec", "sympy", "mpmath", "httpx",
    "httpcore", "h11", "anyio", "sniffio", "psutil", "cloudpickle", "toolz", "msgpack", "platformdirs",
    "pluggy", "iniconfig", "execnet", "sortedcontainers", "flatbuffers", "coloredlogs", "humanfriendly",
    "tzdata", "annotated-doc", "typing-inspect", "mypy-extensions", "wrapt", "zipp", "colorama", "markdown",
    "setuptools", "wheel", "pip", "joblib", "threadpoolctl", "opencv-python-headless",
}
SKIP = {"imagecodecs", "win32-setctime", "aiocontextvars", "exceptiongroup"}  # not needed on Linux/py3.12
# zarr and its codecs (10 MiB of wheels) are imported only for OME-Zarr/zarr files, which the GPU round never reads
SKIP |= {"zarr", "numcodecs", "google-crc32c", "crc32c", "donfig"}
def norm(n): return re.split(r"[\s<>=!~;\[\(]", n.strip(), 1)[0].lower().replace("_", "-").replace(".", "-")
seen, todo = {}, ["bmz-runner"]
while todo:
    n = todo.pop()
    if n in seen or n in THERE or n in SKIP:
        continue
    try:
        d = md.distribution(n)
    except md.PackageNotFoundError:
        continue
    seen[n] = d.version
    todo += [norm(r) for r in d.requires or [] if "extra ==" not in r]
print(" ".join(f"{k}=={v}" for k, v in sorted(seen.items()) if k != "bmz-runner"))
EOF
)
echo "wheels to carry (cp312, manylinux x86_64): $WHEELS"
if [ "$DOWNLOAD" = 1 ]; then
    for w in $WHEELS; do
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu/whl "$w" \
            || "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
                --platform any -d .gpu/whl "$w"
    done
fi

# 3. the size that travels: tracked + untracked-not-ignored files + .gpu (limit 64 MiB)
# (files moved aside are listed by git but absent: du skips them and exits 1, hence the `|| true`)
tree=$( (git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null || true) | tail -1 | cut -f1)
carry=$(du -sb .gpu | cut -f1)
total=$(( (tree + carry) / 1048576 ))
echo "travels: checkout $((tree / 1048576)) MiB + .gpu $((carry / 1048576)) MiB = $total MiB (limit 64)"
[ "$total" -lt 64 ] || { echo "too large for the device tool: add --aside, or carry fewer images or wheels" >&2; exit 1; }
