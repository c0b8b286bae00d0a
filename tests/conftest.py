"""Shared fixtures: small synthetic images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from runner.synthetic import make_dataset, random_blobs, render


@pytest.fixture
def blobs2d() -> np.ndarray:
    """(128, 128) uint32 label image of ~20 touching ellipses, radius 6..11 px."""
    return random_blobs((128, 128), 20, radius=(6.0, 11.0), seed=1)


@pytest.fixture
def blobs3d() -> np.ndarray:
    """(40, 64, 64) uint32 label image of ~12 touching ellipsoids, radius 6..9 px."""
    return random_blobs((40, 64, 64), 12, radius=(6.0, 9.0), seed=2)


@pytest.fixture
def image2d(blobs2d) -> np.ndarray:
    return render(blobs2d, seed=1)


@pytest.fixture
def dataset2d(tmp_path):
    """A tiny synthetic dataset folder with train/ and val/ splits (uint8 images, uint16 labels)."""
    make_dataset(tmp_path / "data", ndim=2, n_train=4, n_val=2, shape=(96, 96), n_objects=12)
    return tmp_path / "data"


@pytest.fixture
def dataset3d(tmp_path):
    make_dataset(tmp_path / "data3d", ndim=3, n_train=3, n_val=1, shape=(32, 64, 64), n_objects=10)
    return tmp_path / "data3d"
