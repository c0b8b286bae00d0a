"""The CLI's value parsers: :mod:`runner.parsing` (kept importable here for the command modules)."""

from runner.parsing import parse_floats, parse_ints, parse_params, parse_value

__all__ = ["parse_floats", "parse_ints", "parse_params", "parse_value"]
