"""bmz-runner: instance segmentation of microscopy images inside the BioImage Model Zoo ecosystem.

Heavy dependencies (torch, onnxruntime, bioimageio) are imported by the modules that use them, never here.
"""

import os as _os

__version__ = "0.1.0"

# numba's OpenMP threading layer aborts a forked child that runs a parallel kernel after its parent did;
# the work-queue layer is fork-safe (runner tune post-processes in forked workers).
_os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
