"""Remove objects by measured properties (shared with ``runner measure --remove-if``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from runner.postprocessing.filters.filtering import register_filter
from runner.postprocessing.registry import Params


class PropertiesParams(Params):
    remove_if: str | list[str] = Field(
        ...,
        description="Conditions: 'npixels lt 100 and circularity le 0.7; area gt 5000' (';' or 'or' between "
        "groups; an object is removed when any group holds in full). Properties as in runner measure; "
        "mean_intensity_c<k> reads prediction channel k.",
    )

    @field_validator("remove_if")
    @classmethod
    def _parse(cls, v):
        from runner.measure import parse_conditions

        parse_conditions(v)  # a UserError names the unknown property or operator
        return v


@register_filter("properties", params=PropertiesParams)
def properties(labels, params: PropertiesParams, *, prediction=None, resolution=None, **_):
    """Remove objects matching property conditions (npixels, area, circularity, sphericity, ...)."""
    from runner.measure import remove_by_properties

    kept, _table = remove_by_properties(labels, params.remove_if, resolution=resolution, image=prediction)
    return kept
