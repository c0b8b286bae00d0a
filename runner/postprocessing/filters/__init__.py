"""Filters: label image -> label image steps composable after any post-processor (``--filter NAME:k=v``).

- :mod:`~runner.postprocessing.filters.filtering`: the filter registry, parsing and :func:`apply_filters`;
- :mod:`~runner.postprocessing.filters.basic` (remove_small, remove_large, fill_holes, size_range),
  :mod:`~runner.postprocessing.filters.merge` (repair_large, voronoi),
  :mod:`~runner.postprocessing.filters.properties` (properties), :mod:`~runner.postprocessing.filters.stack`
  (z/yz medians): the filters, registered when the registry is first looked up.
"""

from runner.postprocessing.filters.filtering import (
    FILTERS,
    Filter,
    FilterStep,
    apply_filters,
    get_filter,
    list_filters,
    parse_filter,
    prepare_filters,
    register_filter,
)

REGISTERING_MODULES = ("basic", "merge", "properties", "stack")
"""Submodules the registry imports on its first lookup (their ``register_filter`` calls run)."""

__all__ = [
    "FILTERS",
    "Filter",
    "FilterStep",
    "apply_filters",
    "get_filter",
    "list_filters",
    "parse_filter",
    "prepare_filters",
    "register_filter",
]
