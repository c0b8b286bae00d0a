"""A small column table (one row per object) with CSV output; no pandas needed."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


@dataclass
class PropertyTable:
    """Columns of equal length, in insertion order; ``table["npixels"]`` is an ``(n,)`` array.

    Row ``i`` describes the object whose id is ``table["label"][i]``.
    """

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    """Physical unit (or ``"px"``) of the columns that have one, for documentation."""

    def __len__(self) -> int:
        return 0 if not self.columns else len(next(iter(self.columns.values())))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return list(self.columns)

    def add(self, name: str, values) -> None:
        """Add (or replace) a column of ``len(self)`` values."""
        values = np.asarray(values)
        if self.columns and len(values) != len(self) and name not in self.columns:
            raise ValueError(f"column {name!r} has {len(values)} values, the table has {len(self)} rows")
        self.columns[name] = values

    def select(self, rows) -> PropertyTable:
        """A new table with the rows picked by a boolean mask or index array."""
        return PropertyTable({k: v[rows] for k, v in self.columns.items()}, dict(self.units))

    def row(self, i: int) -> dict:
        """Row ``i`` as a ``{column: python value}`` dict."""
        return {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in self.columns.items()}

    def rows(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self.row(i)

    def to_csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.names)
        cols = list(self.columns.values())
        for i in range(len(self)):
            writer.writerow([_fmt(c[i]) for c in cols])
        return buf.getvalue()

    def to_csv(self, path: str | Path) -> Path:
        """Write the table as CSV (atomically)."""
        from runner.io import write_text_atomic

        write_text_atomic(path, self.to_csv_text())
        return Path(path)

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.columns)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping]) -> PropertyTable:
        """A table of dict rows; the columns are the union of the keys (in order), missing values empty."""
        table = cls()
        keys = list(dict.fromkeys(k for r in rows for k in r))
        for key in keys:
            values = [r.get(key) for r in rows]
            table.columns[key] = np.asarray(values, dtype=object if None in values else None)
        return table
