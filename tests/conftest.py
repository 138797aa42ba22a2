"""Shared fixtures: real-data location, temporary outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

try:  # property tests draw the same examples on every run: CI is reproducible
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("cardiosim", derandomize=True, database=None)
    _hyp_settings.load_profile("cardiosim")
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


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


PTBXL_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]  # PTB-XL header spelling


def _write_ptbxl_record(folder: Path, rel: str, sig_mv: np.ndarray, fs: int):
    import wfdb

    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(path.name, fs=fs, units=["mV"] * 12, sig_name=PTBXL_NAMES, p_signal=sig_mv.T.astype(np.float64),
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(path.parent))


@pytest.fixture(scope="session")
def ptbxl_folder(data_dir, tmp_path_factory):
    """A PTB-XL folder in the native layout: the first 5 rows of the real database table,
    signals of the real CinC 2021 PTB-XL records HR06000-HR06004 (500 Hz and 100 Hz)."""
    import shutil
    import warnings

    import pandas as pd

    from cardiosim.errors import LabelMappingWarning
    from cardiosim.sources import read_wfdb, resample

    root = tmp_path_factory.mktemp("ptbxl")
    meta = data_dir / "ptbxl-metadata"
    db = pd.read_csv(meta / "ptbxl_database_first520.csv").iloc[:5]
    db.to_csv(root / "ptbxl_database.csv", index=False)
    shutil.copy(meta / "scp_statements.csv", root / "scp_statements.csv")
    for k, row in enumerate(db.itertuples()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabelMappingWarning)
            sig = read_wfdb(data_dir / "cinc2021" / f"HR0600{k}").signal.astype(np.float64)
        _write_ptbxl_record(root, row.filename_hr, sig, 500)
        _write_ptbxl_record(root, row.filename_lr, resample(sig, 500, 100), 100)
    return root
