"""Montages against their textbook definitions (Einthoven, Goldberger, Wilson, Frank)."""

import numpy as np
import pytest

from cardiosim.errors import LeadError
from cardiosim.leads import make_montage, montage_names, normalize_lead_name


@pytest.fixture
def phi(rng):
    return rng.normal(size=(9, 200))


def test_einthoven_goldberger_and_wilson(phi):
    m = make_montage("standard12")
    leads = dict(zip(m.leads, m.apply(phi)))
    ra, la, ll = phi[0], phi[1], phi[2]
    np.testing.assert_allclose(leads["I"], la - ra)
    np.testing.assert_allclose(leads["II"], leads["I"] + leads["III"])  # Einthoven
    np.testing.assert_allclose(leads["aVR"] + leads["aVL"] + leads["aVF"], 0, atol=1e-12)  # Goldberger
    np.testing.assert_allclose(leads["aVF"], (leads["II"] + leads["III"]) / 2)
    np.testing.assert_allclose(leads["aVR"], -(leads["I"] + leads["II"]) / 2)
    wct = (ra + la + ll) / 3
    np.testing.assert_allclose(leads["V3"], phi[5] - wct)


def test_montage_ignores_common_mode(phi):
    for name in montage_names():
        m = make_montage(name)
        common = np.ones((len(m.electrodes), 50)) * 3.7
        np.testing.assert_allclose(m.apply(common), 0, atol=1e-12)


def test_frank_coefficients_match_published_network():
    m = make_montage("frank")
    # Frank (1956) as listed in PHYSICS.md section 1.
    x = dict(zip(m.electrodes, m.matrix[0]))
    assert x["A"] == 0.610 and x["C"] == 0.171 and x["I"] == -0.781
    np.testing.assert_allclose(m.matrix.sum(axis=1), [0.0, 0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("raw,canon", [("avr", "aVR"), ("AVL", "aVL"), ("MLII", "II"), (" v5 ", "V5"), ("vx", "X")])
def test_lead_names_normalised(raw, canon):
    assert normalize_lead_name(raw) == canon


def test_unknown_names_raise_clear_errors():
    with pytest.raises(LeadError, match="'V7x'"):
        normalize_lead_name("V7x")
    with pytest.raises(LeadError, match="'holter'"):
        make_montage("holter")
    with pytest.raises(LeadError, match="9 electrodes"):
        make_montage("standard12").apply(np.zeros((8, 10)))
