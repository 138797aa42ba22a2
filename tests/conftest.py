"""Shared fixtures: real-data location, temporary outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("CARDIOSIM_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of real PhysioNet recordings (CARDIOSIM_DATA, default ../shared/data); skip if absent."""
    path = _data_dir()
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path} (set CARDIOSIM_DATA to the shared data folder)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)
