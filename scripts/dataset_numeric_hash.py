"""SHA-256 over every numeric variable (and coordinate) of a dataset generated from the
default recipe: a change that must not alter the default dataset (e.g. a new optional recipe
setting) is checked by running this on both sides of it.

Usage: ``PYTHONPATH=CHECKOUT python scripts/dataset_numeric_hash.py [--records 24] [--seed 0] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

# no sys.path change: the cardiosim on PYTHONPATH (or installed) is the one measured, so the
# same script hashes either side of a change (PYTHONPATH=/path/to/checkout)


def numeric_hash(ds) -> tuple[str, int]:
    """(hex digest, number of variables hashed) over the numeric data variables and
    coordinates of ``ds``, in name order (name, dtype, shape and bytes of each)."""
    h = hashlib.sha256()
    n = 0
    for name in sorted(list(ds.data_vars) + list(ds.coords)):
        a = np.asarray(ds[name].values)
        if a.dtype.kind not in "biuf":
            continue
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
        n += 1
    return h.hexdigest(), n


def main(argv=None):
    import xarray as xr

    from cardiosim.dataset import Recipe
    from cardiosim.dataset.generate import generate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="folder to keep the generated file in")
    args = ap.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp())
    out = folder / "default.nc"
    generate(Recipe(records=args.records, seed=args.seed), out)
    with xr.open_dataset(out) as ds:
        digest, n = numeric_hash(ds.load())
    print(f"{digest}  ({n} numeric variables, {args.records} records, seed {args.seed}, cardiosim from "
          f"{Path(sys.modules['cardiosim'].__file__).parent})")


if __name__ == "__main__":
    main()
