"""Real-record throughput: records/s read and reconstructed (dipole + residual) from a PTB-XL folder.

Builds a PTB-XL-layout folder (``ptbxl_database.csv`` rows of the real table, 12-lead
500 Hz WFDB records written from the real CinC 2021 PTB-XL signals) in a temporary
directory, then times side by side:

- ``wfdb.rdrecord`` alone (baseline: the raw file read),
- ``read_ptbxl`` (file checks, lead/NaN/consistency checks, label mapping),
- ``read_ptbxl`` + ``recording_to_source`` (least-squares dipole and residual; heart rate).

    python benchmarks/bench_sources.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import report, skip  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data")).resolve()


def build_folder(root: Path, n: int) -> None:
    import pandas as pd
    import wfdb

    from cardiosim.sources import read_wfdb

    db = pd.read_csv(DATA / "ptbxl-metadata" / "ptbxl_database_first520.csv").iloc[:n]
    db.to_csv(root / "ptbxl_database.csv", index=False)
    shutil.copy(DATA / "ptbxl-metadata" / "scp_statements.csv", root / "scp_statements.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sigs = [read_wfdb(DATA / "cinc2021" / f"HR0600{k}").signal.astype(np.float64) for k in range(5)]
    names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    for k, rel in enumerate(db.filename_hr):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(path.name, fs=500, units=["mV"] * 12, sig_name=names, p_signal=sigs[k % 5].T, fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(path.parent))


def model():
    """The project's BEM torso if available, else an infinite-medium stand-in (named in the output)."""
    try:
        from cardiosim.forward import make_bem_model
        from cardiosim.geometry import make_layout, make_torso
        torso = make_torso()
        return make_bem_model(torso), make_layout("standard12", torso), "BEM torso"
    except ImportError:
        from types import SimpleNamespace
        pos = np.array([(-158.0, -30.8, 135.5), (136.5, -52.9, 135.5), (106.1, -95.8, -208.6), (-41.9, -120.0, 8.9),
                        (6.6, -117.0, 8.9), (49.0, -126.5, -15.5), (85.8, -120.0, -39.5), (132.3, -80.9, -39.5),
                        (157.0, -14.5, -39.5)]) * 1e-3
        r0 = np.array([0.025, -0.045, -0.02])

        def lead_field(points):
            d = np.asarray(points) - r0
            return d / (4 * np.pi * 0.2 * np.linalg.norm(d, axis=1, keepdims=True) ** 3)

        layout = SimpleNamespace(name="standard12", electrodes=("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6"),
                                 positions=pos)
        return SimpleNamespace(lead_field=lead_field), layout, "infinite medium (forward module absent)"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100)
    args = ap.parse_args()
    needed = [DATA / "ptbxl-metadata" / "ptbxl_database_first520.csv", DATA / "cinc2021" / "HR06000.hea"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        skip(f"shared recordings not found ({', '.join(missing)}); set CARDIOSIM_DATA to the shared data folder")
    import pandas as pd
    import wfdb

    from cardiosim.sources import read_ptbxl, recording_to_source

    fwd, layout, what = model()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_folder(root, args.records)
        files = list(pd.read_csv(root / "ptbxl_database.csv").filename_hr)

        def run(label, fn):
            fn(files[:2])  # warm caches
            t0 = time.perf_counter()
            fn(files)
            dt = time.perf_counter() - t0
            rows.append({"stage": label, "records": len(files), "seconds": dt, "records_per_s": len(files) / dt})

        def raw(fs):
            for f in fs:
                wfdb.rdrecord(str(root / f))

        def read(fs):
            seq = read_ptbxl(root, label_map="ptbxl_superclasses")
            for i in range(len(fs)):
                seq[i]

        def reconstruct(fs):
            seq = read_ptbxl(root, label_map="ptbxl_superclasses")
            for i in range(len(fs)):
                recording_to_source(seq[i], fwd, layout)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run("wfdb.rdrecord (baseline)", raw)
            run("read_ptbxl", read)
            run("read_ptbxl + recording_to_source", reconstruct)
    base = rows[0]["seconds"]
    for r in rows:
        r["time_vs_baseline"] = r["seconds"] / base
    report("bench_sources", rows, ["stage", "records", "seconds", "records_per_s", "time_vs_baseline"],
           notes=f"10 s, 12-lead, 500 Hz PTB-XL records; forward model: {what}")


if __name__ == "__main__":
    main()
