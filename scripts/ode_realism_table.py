"""Print the README's table: 12-lead features of real records against synthetic ones
(``cardiosim.ode.realism.realism_table``), and draw the NORM median-beat overlay.

NORM is drawn from the validation prior (``prior.VALIDATION_PRIOR_PATH``, fitted on the fit-set
records only; today the shipped default itself) and reported on the held-out records
(``realism_table`` refuses a prior fitted on the records it reports on). LVH, RBBB and TINV are
the hand-built classes on the shipped default prior, against every record of the class (no NORM
prior is fitted on them).

Usage: ``python scripts/ode_realism_table.py [--data DIR] [--n-synth 40] [--png PATH]``
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--n-synth", type=int, default=40)
    ap.add_argument("--png", type=Path, help="NORM median beats, real (held out) vs synthetic")
    args = ap.parse_args(argv)
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
