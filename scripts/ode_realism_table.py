"""Print the README's table: 12-lead features of real records against synthetic ones
(``cardiosim.ode.realism.realism_table``), and draw the NORM median-beat overlay.

NORM is drawn from the validation prior (``prior.VALIDATION_PRIOR_PATH``, fitted on the fit-set
records only; today the shipped default itself) and reported on the held-out records
(``realism_table`` refuses a prior fitted on the records it reports on). LVH, RBBB and TINV are
the hand-built classes on the shipped default prior, against every record of the class (no NORM
prior is fitted on them).

Usage: ``python scripts/ode_realism_table.py [--data DIR] [--n-synth 40] [--png PATH] [--qt]``

``--qt`` prints, instead, the QT of every real CinC 2021 record by three readings (docs/VALIDATION.md,
"A global T end"): NeuroKit2's wavelet T end of lead II (``qt_ii``), the global T end that
``measure`` uses (tangent method on the 12 leads' spatial magnitude), and the median of lead-by-lead
tangent T ends on the three leads with the largest T wave (``realism.lead_t_ends``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cardiosim.ode.realism import (  # noqa: E402
    lead_matrix,
    measure,
    norm_held_out,
    real_records,
    realism_table,
)


def qt_table(data_dir):
    """Markdown: per real CinC 2021 record, HR, QT by lead II's wavelet T end, the global T end and
    the lead-by-lead tangent (three largest T waves), and QTc (Fridericia) by the first two."""
    from cardiosim.ode.realism import lead_t_ends

    rows = ["| record | rhythm | beat | HR | QT lead II (dwt) | QT global | QT lead tangent | QTc lead II | "
            "QTc global |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rec in real_records(data_dir):
        fs = rec["fs"]
        m = measure(rec["leads"], fs)
        ends, amps = lead_t_ends(m["beat_b"], m["q_off"], m["r"], fs, m["rr_median"])
        qt_lead = (np.nanmedian(ends[np.argsort(-amps)[:3]]) - m["q_on"]) / fs
        c = m["rr_median"] ** (1.0 / 3.0)
        ms = [f"{1e3 * v:.0f}" if np.isfinite(v) else "–" for v in (m["qt_ii"], m["qt"], qt_lead,
                                                                    m["qt_ii"] / c, m["qtc"])]
        rows.append(f"| {rec['name']} | {', '.join(sorted(rec['rhythm'])) or '–'} | "
                    f"{', '.join(sorted(rec['morphology'])) or 'other'} | {m['hr']:.0f} | " + " | ".join(ms) + " |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--n-synth", type=int, default=40)
    ap.add_argument("--png", type=Path, help="NORM median beats, real (held out) vs synthetic")
    ap.add_argument("--qt", action="store_true", help="QT of every real record by three readings, then exit")
    args = ap.parse_args(argv)
    if args.qt:
        print(qt_table(args.data))
        return
    _, md = realism_table(args.data, n_synth=args.n_synth)
    print(md)
    if args.png:
        from cardiosim.ode import synthesize
        from cardiosim.ode.prior import validation_prior
        from cardiosim.plot import plot_median_beats, save_png

        fs = 500.0
        # the records the table's NORM rows report on (HELD_OUT here; every normal-beat record
        # of a folder of other records), not names fixed to today's folder
        real = [measure(r["leads"], r["fs"])["beat_b"] for r in norm_held_out(real_records(args.data),
                                                                              validation_prior())]
        rng = np.random.default_rng(1)
        syn = [measure(lead_matrix() @ synthesize(10.0, fs, rng, prior=validation_prior()).vcg, fs)["beat_b"]
               for _ in range(20)]
        fig = plot_median_beats(np.stack(real), np.stack(syn), fs, title="NORM: held-out real vs synthetic")
        print(f"wrote {save_png(fig, args.png)}")


if __name__ == "__main__":
    main()
