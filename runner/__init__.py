"""bmz-runner: instance segmentation of microscopy images inside the BioImage Model Zoo ecosystem.

Heavy dependencies (torch, onnxruntime, bioimageio) are imported by the modules that use them, never here.
"""

__version__ = "0.1.0"
