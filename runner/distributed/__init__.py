"""Volumes larger than memory and large image batches on dask.distributed.

- :mod:`runner.distributed.grid` - the block grid (cores aligned to output chunks, halos)
- :mod:`runner.distributed.block` - the pure per-block work: segment the extended region, keep the core,
  return what the stitcher needs (no Dask in it; the tests run it in a plain loop)
- :mod:`runner.distributed.stitch` - face matching, objects joined across faces, deterministic relabel
- :mod:`runner.distributed.engine` - the thin driver mapping the block work over a ``distributed.Client``
- :mod:`runner.distributed.cluster` - ``--cluster local:N | threads:N | tcp://host:port``
- :mod:`runner.distributed.model` - a package as a block segmenter (model loaded once per worker)
- :mod:`runner.distributed.volume` - ``runner predict`` on zarr / OME-Zarr volumes
- :mod:`runner.distributed.images` - ``runner predict --cluster`` on folders of images
- :mod:`runner.distributed.standin` - a deterministic stand-in model and touching-object volumes for tests

Nothing heavy is imported here; dask and ome-zarr come from the ``distributed`` extra.
"""
