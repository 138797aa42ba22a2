"""The per-record glue after the device: a record's source metadata become its ``source_*``
params exactly as the dict comprehension they replace formed them (names, values, order)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cardiosim.simulate import SimulationConfig, _finish_record


def _record(metadata, params):
    source = SimpleNamespace(metadata=metadata, heart_rate=61.0, labels=("NORM",), source_id="s0")
    return SimpleNamespace(cfg=SimulationConfig(), params=params, recorded=np.zeros((2, 8), np.float32),
                           motion=None, source=source, clean_recorded=None, fs_out=500.0,
                           montage=SimpleNamespace(leads=("I", "II")), electrodes=("LA", "RA", "LL"),
                           displacement=np.zeros((3, 3), np.float32), snr_db={}, annotations={}, beat_types=())


def test_source_params_are_the_comprehension_they_replace():
    meta = {"ode_class": "NORM", "ode_heart_rate_bpm": 61.5, "n": 3, "flag": True, "arr": np.zeros(3),
            "np64": np.float64(0.25), "none": None, 1: "one", True: "shadowed?", 2.5: 7, "tail": "end"}
    want_params = {"source_fs": 500.0, "source_ode_class": "stale"}
    want_params.update({f"source_{k}": v for k, v in meta.items() if isinstance(v, (int, float, str, bool))})
    for _ in range(3):    # the second and third times from the name cache
        params = {"source_fs": 500.0, "source_ode_class": "stale"}
        rec = _finish_record(_record(meta, params))
        assert list(rec.params.items()) == list(want_params.items())
        assert all(type(a) is type(b) for a, b in zip(rec.params.values(), want_params.values()))


def _annotations_twin(ann, fs, fs_out, n_out):
    """The per-key NumPy steps ``_annotations_at`` took before (its twin)."""
    out = {}
    ratio = fs_out / fs
    for key, idx in ann.items():
        idx = np.asarray(idx, dtype=np.int64)
        at = idx if ratio == 1.0 else np.round(idx * ratio).astype(np.int64)
        moved = np.where(idx >= 0, at, -1)
        out[key] = np.where(moved < n_out, moved, -1)
    return out


def test_annotations_moved_in_one_pass_are_the_per_key_steps():
    """All keys moved at once equal the per-key steps bit for bit (values, dtype, order of keys):
    unchanged and changed rates, indices below 0 and past the output, empty keys, int32 and
    list inputs, a single key and 2-D indices (the per-key path)."""
    from cardiosim.simulate import _annotations_at

    rng = np.random.default_rng(0)
    for trial in range(200):
        n_out = int(rng.integers(0, 6000))
        n_keys = int(rng.integers(1, 9))
        ann = {}
        for k in range(n_keys):
            idx = np.sort(rng.integers(-3, 6500, int(rng.integers(0, 20))))
            ann[f"k{k}"] = idx.astype(np.int32) if k % 3 == 1 else (idx.tolist() if k % 3 == 2 else idx)
        if trial % 17 == 0:
            ann["two_d"] = np.arange(6).reshape(2, 3)
        fs, fs_out = (500.0, 500.0) if trial % 2 else (float(rng.choice([250.0, 360.0, 1000.0])), 500.0)
        source = SimpleNamespace(annotations=ann, beat_types=("N",) * 3)
        got, types = _annotations_at(source, np.zeros((2, 10)), fs, fs_out, n_out)
        want = _annotations_twin(ann, fs, fs_out, n_out)
        assert list(got) == list(want) and types == ("N",) * 3
        for key in want:
            assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape
            assert got[key].tobytes() == want[key].tobytes()
