"""napari plugin (npe2 manifest ``napari.yaml``): a reader for results folders and OME-Zarr with labels, a
writer for labels, and a widget that runs ``runner predict`` on an image layer.

Install with ``pip install "bmz-runner[napari]"``. Nothing is imported here: napari imports each command by
the dotted path in the manifest when it is used.
"""
