"""QTc (Fridericia) of the ODE beat model against heart rate (issue 13: the QT-RR relation).

Draws ``--n`` NORM patients from the default prior (seed ``--seed``), synthesizes each at fixed
rates (SB 50, SR 70 and 95, STACH 120 and 145 bpm; ``heart_rate_std`` 0.5 bpm; 10 s at 500 Hz,
no noise), projects to 12 leads (``realism.lead_matrix``) and prints, per rate, the median QTc
(QT / RR^(1/3), ms) read by ``realism.measure`` (global 12-lead T end, independent of the
generator) and by the generator's own fiducials (``QRS_onset`` to ``T_offset`` of each beat,
over that beat's RR to the next beat, the RR the model scales its ST-T slots with).

Usage: ``python scripts/qt_rate.py [--n 12] [--seed 13]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cardiosim.ode.prior import sample_patient  # noqa: E402
from cardiosim.ode.realism import lead_matrix, measure  # noqa: E402
from cardiosim.ode.synth import synthesize  # noqa: E402

RATES = (("SB", 50.0), ("SR", 70.0), ("SR", 95.0), ("STACH", 120.0), ("STACH", 145.0))


def qtc_rows(n=12, seed=13, fs=500.0, rates=RATES):
    """``{bpm: (measured QTc ms per patient, generator QTc ms per patient)}``."""
    rng = np.random.default_rng(seed)
    patients = [sample_patient(rng, "NORM") for _ in range(n)]
    M = lead_matrix()
    out = {}
    for rhythm, hr in rates:
        meas, gen = [], []
        for k, p in enumerate(patients):
            b = synthesize(10.0, fs, np.random.default_rng(1000 + k), heart_rate=hr, rhythm=rhythm,
                           patient=p, heart_rate_std=0.5)
            meas.append(measure(M @ b.vcg, fs)["qtc"] * 1e3)
            a = b.annotations
            ok = (a["QRS_onset"] >= 0) & (a["T_offset"] >= 0)
            qt = (a["T_offset"][ok] - a["QRS_onset"][ok]) / fs
            gen.append(float(np.median(qt / b.rr[ok] ** (1.0 / 3.0))) * 1e3)
        out[hr] = (np.array(meas), np.array(gen))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)
    rows = qtc_rows(args.n, args.seed)
    ref = np.median(rows[70.0][0])
    print("| bpm | QTc measure, median (IQR) ms | minus 70 bpm | QTc generator fiducials, median ms |")
    print("|---|---|---|---|")
    for hr, (m, g) in rows.items():
        q1, q3 = np.percentile(m, [25, 75])
        print(f"| {hr:.0f} | {np.median(m):.1f} ({q1:.1f}-{q3:.1f}) | {np.median(m) - ref:+.1f} | {np.median(g):.1f} |")


if __name__ == "__main__":
    main()
