"""PatchPerPix (Hirsch et al. 2020): dense shape patches -> instances.

- :mod:`~runner.postprocessing.ppp.patchperpix`: the registered ``patchperpix`` post-processor and its params;
- :mod:`~runner.postprocessing.ppp.patches`, :mod:`~runner.postprocessing.ppp.consensus`,
  :mod:`~runner.postprocessing.ppp.select`, :mod:`~runner.postprocessing.ppp.graph`: its steps (numba);
- :mod:`~runner.postprocessing.ppp.reference`: the dense, paper-layout implementation that tests and
  ``benchmarks/bench_patchperpix.py`` compare against; never imported by a registry lookup.
"""

REGISTERING_MODULES = ("patchperpix",)
"""Submodules the post-processor registry imports on its first lookup (their ``register`` calls run)."""
