"""Helpers for the distributed tests."""

from __future__ import annotations

import numpy as np


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings (background counted as one more cluster)."""
    from scipy.sparse import coo_matrix

    _, ia = np.unique(a.ravel(), return_inverse=True)
    _, ib = np.unique(b.ravel(), return_inverse=True)
    table = coo_matrix((np.ones(ia.size), (ia, ib))).tocsr()

    def pairs(x):
        x = np.asarray(x, float)
        return float((x * (x - 1) / 2).sum())

    index = pairs(table.data)
    rows, cols = pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / pairs([a.size])
    return (index - expected) / ((rows + cols) / 2 - expected)
