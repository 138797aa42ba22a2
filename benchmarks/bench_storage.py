"""Storage: bytes per record, write and read speed per compression, and random access.

1. Encodings, side by side in one run: one block of simulated default records (10 s,
   12 leads, 500 Hz, every variable cardiosim writes) written with ``write_netcdf`` for
   each compression (zstd, blosc_lz4, zlib, none) with float32 and with int16 packing:
   bytes per record, write time per record, write MB/s (of the block's in-memory bytes),
   read-back time per record. Best of ``--repeats``.
2. Random access on a 20-shard folder (the block written 20 times under consecutive
   record ranges, with a manifest as ``generate`` writes it): one random record's ``ecg``
   through the previous reader (``xarray.open_mfdataset``, dask), through
   ``cardiosim.open_dataset`` (lazy, no dask), through ``RecordReader``, and with plain
   netCDF4 on the shard holding it (the floor). Target: <= 5 ms per record.

    python benchmarks/bench_storage.py [--records 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import report  # noqa: E402

from cardiosim.dataset import Recipe, simulate_block  # noqa: E402
from cardiosim.dataset.io import RecordReader, open_dataset, sha256_file, shard_name, write_json_atomic, \
    write_netcdf  # noqa: E402
from cardiosim.dataset.schema import encoding_for  # noqa: E402
from cardiosim.dataset.storage import COMPRESSIONS, filter_available, quantise_signals  # noqa: E402

N_SHARDS = 20


def encodings(block, tmp: Path, repeats: int) -> list:
    import xarray as xr

    n = block.sizes["record"]
    rows = []
    for pack in (False, True):
        ds = quantise_signals(block.copy(deep=True), 400.0)[0] if pack else block
        mem = ds.nbytes
        for comp in COMPRESSIONS:
            if not filter_available(comp):
                rows.append({"storage": f"{comp} ({'int16' if pack else 'float32'})", "note": "filter missing"})
                continue
            enc = encoding_for(ds, compression=comp, complevel=1, pack_int16=pack, full_scale_mv=400.0)
            path = tmp / f"{comp}-{pack}.nc"
            w = r = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                write_netcdf(ds, path, enc)
                w = min(w, time.perf_counter() - t0)
                t0 = time.perf_counter()
                with xr.open_dataset(path) as back:
                    back["ecg"].values
                r = min(r, time.perf_counter() - t0)
            size = path.stat().st_size
            rows.append({"storage": f"{comp} ({'int16' if pack else 'float32'})", "bytes_per_record": size / n,
                         "write_ms_per_record": 1e3 * w / n, "write_mb_per_s": mem / w / 1e6,
                         "read_ecg_ms_per_record": 1e3 * r / n, "size_vs_float32_none": None})
    base = next(r for r in rows if r["storage"] == "none (float32)")["bytes_per_record"]
    for r in rows:
        if r.get("bytes_per_record"):
            r["size_vs_float32_none"] = r["bytes_per_record"] / base
    return rows


def twenty_shards(block, folder: Path) -> int:
    """The block written as 20 shards (consecutive record ranges) with a manifest."""
    folder.mkdir()
    n = block.sizes["record"]
    ds = quantise_signals(block.copy(deep=True), 400.0)[0]
    enc = encoding_for(ds, compression="zstd", complevel=1, pack_int16=True, full_scale_mv=400.0)
    shards = {}
    for k in range(N_SHARDS):
        part = ds.assign_coords(record=np.arange(k * n, (k + 1) * n))
        path = folder / shard_name(k)
        write_netcdf(part, path, enc)
        shards[path.name] = {"start": k * n, "stop": (k + 1) * n, "n_records": n, "failed": [],
                             "sha256": sha256_file(path), "bytes": path.stat().st_size}
    write_json_atomic({"format": "cardiosim-shards-1", "n_records": N_SHARDS * n, "shard_size": n,
                       "n_shards": N_SHARDS, "shards": shards}, folder / "manifest.json")
    return N_SHARDS * n


def random_access(folder: Path, n_total: int, n_per: int, trials: int = 40) -> list:
    import netCDF4
    import xarray as xr

    rng = np.random.default_rng(0)
    picks = rng.integers(0, n_total, trials)
    rows = []

    def timed(name, opener, get):
        t0 = time.perf_counter()
        handle = opener()
        t_open = time.perf_counter() - t0
        # First touch of every shard (lazy readers open its handle then): the first epoch's cost.
        t0 = time.perf_counter()
        for k in range(N_SHARDS):
            get(handle, k * n_per)
        first = (time.perf_counter() - t0) / N_SHARDS
        t0 = time.perf_counter()
        for i in picks:
            get(handle, int(i))
        per = (time.perf_counter() - t0) / trials
        rows.append({"reader": name, "open_s": t_open, "first_touch_ms_per_shard": 1e3 * first,
                     "ms_per_random_record": 1e3 * per})

    files = sorted(folder.glob("shard-*.nc"))
    try:
        import dask  # noqa: F401
        timed("xarray.open_mfdataset (previous open_dataset)",
              lambda: xr.open_mfdataset(files, engine="netcdf4", combine="nested", concat_dim="record",
                                        data_vars="minimal", coords="minimal", compat="override",
                                        join="override", combine_attrs="override"),
              lambda ds, i: ds["ecg"].isel(record=i).values)
    except ImportError:
        rows.append({"reader": "xarray.open_mfdataset", "note": "dask not installed"})
    timed("cardiosim.open_dataset (lazy shards, no dask)", lambda: open_dataset(folder),
          lambda ds, i: ds["ecg"].isel(record=i).values)
    timed("cardiosim RecordReader", lambda: RecordReader(folder, variables=("ecg",)),
          lambda r, i: r[i])
    handles = {}

    def plain(_, i):
        k = i // n_per
        nc = handles.get(k) or handles.setdefault(k, netCDF4.Dataset(files[k]))
        return nc.variables["ecg"][i - k * n_per]

    timed("plain netCDF4 on the right shard (floor)", lambda: None, plain)
    for nc in handles.values():
        nc.close()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    recipe = Recipe.from_dict({"records": args.records, "duration": 10.0, "seed": 1,
                               "output": {"pack_int16": False}})
    block = simulate_block(recipe, 0, args.records)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = encodings(block, tmp, args.repeats)
        n_total = twenty_shards(block, tmp / "twenty")
        access = random_access(tmp / "twenty", n_total, args.records)
    report("storage_encodings", rows, ["storage", "bytes_per_record", "size_vs_float32_none", "write_ms_per_record",
                                       "write_mb_per_s", "read_ecg_ms_per_record", "note"],
           notes=f"{args.records} default records (10 s, 12 leads, 500 Hz, every variable written), complevel 1, "
                 f"best of {args.repeats}; MB/s of the block's in-memory bytes; cpu count {os.cpu_count()} (shared)")
    report("storage_random_access", access, ["reader", "open_s", "first_touch_ms_per_shard", "ms_per_random_record",
                                             "note"],
           notes=f"{N_SHARDS} shards x {args.records} records (int16 + zstd); one random record's ecg once every "
                 f"shard was touched (handles stay open, as in a training loop's later epochs); target <= 5 ms")


if __name__ == "__main__":
    main()
