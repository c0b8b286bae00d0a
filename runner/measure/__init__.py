"""Per-object measurements and property filters.

* :func:`measure_labels` - one row per object: npixels, area/volume, diameter, perimeter/surface area,
  circularity/elongation (2D), sphericity (3D), centroid, bounding box, intensities (see
  :mod:`runner.measure.properties` for the exact definitions).
* :func:`parse_conditions` / :func:`remove_by_properties` - BiaPy-style ``--remove-if`` filtering: a list of
  groups of conditions (``"npixels lt 100 and circularity le 0.7"``); an object is removed when any group
  holds in full.

Example
-------
>>> from runner.measure import measure_labels, remove_by_properties
>>> table = measure_labels(labels, resolution=(0.5, 0.5))            # doctest: +SKIP
>>> kept, report = remove_by_properties(labels, ["npixels lt 100 and circularity le 0.7"])  # doctest: +SKIP
"""

from runner.measure.filters import (
    FILTER_PROPERTIES,
    Condition,
    apply_conditions,
    parse_conditions,
    remove_by_properties,
)
from runner.measure.properties import ALL_PROPERTIES, measure_labels, perimeter_2d
from runner.measure.table import PropertyTable

__all__ = [
    "ALL_PROPERTIES",
    "FILTER_PROPERTIES",
    "Condition",
    "PropertyTable",
    "apply_conditions",
    "measure_labels",
    "parse_conditions",
    "perimeter_2d",
    "remove_by_properties",
]
