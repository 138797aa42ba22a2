"""Kernels of the batched-engine work on the device stage and the noisy leads agree bit for
bit with their NumPy twins."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.device._kernels import KERNELS


def test_row_counts_twin(rng):
    kern, ref = KERNELS["row_counts"]
    for p in (0.0, 1e-3, 0.5, 1.0):
        flags = rng.random((12, 5001)) < p
        out = np.empty(12, dtype=np.intp)
        kern(flags, out)
        want = ref(flags)
        assert out.dtype == want.dtype and np.array_equal(out, want)


def _kinds(rng, n_e, n, layout):
    """Noise kinds as simulate_electrode_noise makes them: float32 arrays and broadcast
    constants (an event-free contact kind), in ``layout`` order ('a' array, 'z' zero, 'c'
    another constant)."""
    out = []
    for k in layout:
        if k == "a":
            out.append((rng.standard_normal((n_e, n)) * rng.uniform(1e-3, 10.0)).astype(np.float32))
        elif k == "z":
            out.append(np.broadcast_to(np.float32(0.0), (n_e, n)))
        else:
            out.append(np.broadcast_to(np.float32(-0.375), (n_e, n)))
    return out


@pytest.mark.parametrize("layout", ["aaaz", "aaa", "a", "zaa", "aza", "azac", "aaaa"])
@pytest.mark.parametrize("unit", [True, False])
def test_noisy_sum_montage_rows_twin_bit_identical(rng, layout, unit):
    """Leads of ``phi * contact + (float32 sum of the kinds)`` equal ``ElectrodeNoise.noise``
    (float32 sums in order, widened) through ``noisy_montage_rows`` bit for bit, chunk
    boundaries (T not a multiple of the chunk) and a -0.0 noise sum included."""
    from cardiosim.leads import make_montage
    from cardiosim.simulate import _noise_kinds

    kern, ref = KERNELS["noisy_sum_montage_rows"]
    m = make_montage("standard12")
    n_e, n = len(m.electrodes), 5001
    phi = rng.standard_normal((n_e, n))
    kinds = _kinds(rng, n_e, n, layout)
    if layout[0] == "a":
        kinds[0][0, :7] = -0.0
    contact = (np.broadcast_to(np.float32(1.0), (n_e, n)) if unit else
               (rng.random((n_e, n)) > 0.01).astype(np.float32))
    plan = _noise_kinds(dict(enumerate(kinds)), phi.shape)
    assert plan is not None
    out = np.empty((len(m.leads) + 3, n))
    assert kern(m.matrix, phi, contact, unit, *plan, out, 3) == 0
    want = ref(m.matrix, phi, contact, kinds)
    assert out[3:].tobytes() == want.tobytes()


def test_noisy_leads_into_matches_electrode_noise_apply(rng):
    """simulate._noisy_leads_into (the fused kernel) equals montage.apply(en.apply(phi)) of
    an ElectrodeNoise from the default config, bit for bit; non-finite values take the
    NumPy path."""
    from cardiosim.leads import make_montage
    from cardiosim.noise import simulate_electrode_noise
    from cardiosim.simulate import _noisy_leads_into

    m = make_montage("standard12")
    n_e, n = len(m.electrodes), 5000
    en = simulate_electrode_noise(n_e, n, 500.0, rng)
    phi = rng.standard_normal((n_e, n))
    rows = np.empty((2 * len(m.leads), n))
    got = _noisy_leads_into(m, en, phi, rows)
    want = m.apply(en.apply(phi))
    assert got.tobytes() == want.tobytes()
    phi[2, 10] = np.inf
    got = _noisy_leads_into(m, en, phi, rows)
    want = m.apply(en.apply(phi))
    np.testing.assert_array_equal(got, want)


def test_apply_device_still_names_the_non_finite_sample(rng):
    from cardiosim.device import apply_device, load_device
    from cardiosim.errors import SignalError

    prof = load_device("shirt12_500hz")
    x = rng.standard_normal((12, 2000))
    x[3, 77] = np.nan
    with pytest.raises(SignalError, match="lead 3, sample 77"):
        apply_device(prof, x, 500.0)
    with pytest.raises(SignalError, match="clean leads have a non-finite sample at lead 3, sample 77"):
        apply_device(prof, np.zeros((12, 2000)), 500.0, clean=x)


@pytest.mark.parametrize("keys", [("_snr_definition", "fs", "snr_db.white", "snr_lead_db.white.I", "snr_db.activity"),
                                  ("_x",), ("fs",), (), ("snr_db.em", "_a", "w.e0")])
def test_noise_params_equal_the_comprehensions(keys):
    """simulate._noise_params gives the dicts (values and key order) of the comprehensions
    simulate_record used before, for any key layout, twice (the cached layout)."""
    from cardiosim.simulate import _noise_params

    p = {k: float(i) + 0.5 for i, k in enumerate(keys)}
    want_snr = {k.split(".", 1)[1]: float(v) for k, v in p.items() if k.startswith("snr_db.")}
    want = {f"noise_{k}": v for k, v in p.items() if not k.startswith("_")}
    for _ in range(2):
        snr, items = _noise_params(p)
        got = dict(items)
        assert snr == want_snr and list(snr) == list(want_snr)
        assert got == want and list(got) == list(want)
