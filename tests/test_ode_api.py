"""The synthesize() contract: Beats fields, annotations, labels, params, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError
from cardiosim.ode import (
    ANNOTATION_KEYS,
    CLASSES,
    MORPHOLOGIES,
    RHYTHMS,
    Beats,
    default_patient,
    synthesize,
    synthesize_batch,
)


def test_contract_fields(rng):
    b = synthesize(8.0, 500.0, rng)
    assert isinstance(b, Beats)
    assert b.vcg.shape == (3, 4000) and b.vcg.dtype == np.float64
    assert b.fs == 500.0 and b.labels == ("SR", "NORM")
    assert set(b.annotations) == set(ANNOTATION_KEYS)
    n = len(b.rr)
    assert n >= 7 and all(v.shape == (n,) and v.dtype == np.int64 for v in b.annotations.values())
    assert all(isinstance(k, str) and isinstance(v, (int, float, str)) for k, v in b.params.items())
    assert b.params["rhythm"] == "SR" and 60 <= b.params["heart_rate_bpm"] <= 100
    # normal QRS loop: main vector left and (mostly) inferior (Frank +X, +Y); peak 0.5-3 mV
    r = b.annotations["R_peak"]
    # (frontal angle of the peak vector inside the normal axis range, -30..90 deg: between
    # -30 and 0 deg it points slightly superior)
    x, y = np.median(b.vcg[0, r]), np.median(b.vcg[1, r])
    assert x > 0 and -30.0 <= np.degrees(np.arctan2(y, x)) <= 90.0
    assert 0.5 < np.linalg.norm(b.vcg, axis=0).max() < 3.0


@pytest.mark.parametrize("rhythm", RHYTHMS)
def test_annotation_order_every_rhythm(rhythm):
    b = synthesize(10.0, 500.0, np.random.default_rng(7), rhythm=rhythm)
    a = b.annotations
    full = np.all(np.stack([a[k] for k in ANNOTATION_KEYS[2:]]) >= 0, axis=0)
    for k1, k2 in zip(ANNOTATION_KEYS[2:], ANNOTATION_KEYS[3:]):
        assert np.all(a[k1][full] < a[k2][full]), (k1, k2)
    has_p = a["P_onset"] >= 0
    assert np.all(a["P_onset"][has_p] < a["P_peak"][has_p])
    assert np.all(a["P_peak"][has_p] < a["QRS_onset"][has_p])
    if rhythm in ("AF", "AFL"):
        assert not has_p.any()  # no P waves
    if rhythm == "PVC":
        assert np.all(a["P_onset"][b.beat_types == "V"] == -1)
    # R_peak annotation sits on the QRS: spatial magnitude there is near its local maximum
    mag = np.linalg.norm(b.vcg, axis=0)
    for r in a["R_peak"][(a["R_peak"] > 25) & (a["R_peak"] < b.vcg.shape[1] - 25)]:
        assert mag[r] >= 0.3 * mag[r - 25:r + 25].max()


def test_same_seed_same_record_and_batch_matches_sequence():
    a = synthesize(5.0, 250.0, np.random.default_rng(3), rhythm="PVC", morphology="LBBB")
    b = synthesize(5.0, 250.0, np.random.default_rng(3), rhythm="PVC", morphology="LBBB")
    np.testing.assert_array_equal(a.vcg, b.vcg)
    assert a.params == b.params
    rng1, rng2 = np.random.default_rng(11), np.random.default_rng(11)
    batch = synthesize_batch(3, 5.0, 250.0, rng1, rhythm="AF")
    seq = [synthesize(5.0, 250.0, rng2, rhythm="AF") for _ in range(3)]
    for x, y in zip(batch, seq):
        np.testing.assert_allclose(x.vcg, y.vcg, atol=1e-12)
        assert x.params == y.params


def test_given_patient_is_used_exactly():
    p = default_patient()
    b = synthesize(4.0, 500.0, np.random.default_rng(0), patient=p, beat_jitter=0.0,
                   heart_rate=60.0, heart_rate_std=0.0)
    assert b.params["patient_source"] == "given"
    assert b.params["patient.X.QRS3.amp_mV"] == p.amp[0, 4]
    # at constant 60 bpm each beat is the template up to respiratory amplitude modulation
    r = b.annotations["R_peak"][1]
    t = (np.arange(-100, 200) / 500.0)
    tmpl = p.render(t)
    seg = b.vcg[:, r - 100:r + 200]
    assert np.corrcoef(seg.ravel(), tmpl.ravel())[0, 1] > 0.999


def test_every_class_has_codes_and_criteria():
    for c in CLASSES.values():
        assert c.kind in ("rhythm", "morphology") and c.criteria and c.description
        assert all(code.isdigit() for code in c.snomed)
    assert set(RHYTHMS) == {"SR", "SB", "STACH", "AF", "AFL", "PVC", "PAC", "IAVB"}
    assert set(MORPHOLOGIES) == {"NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"}


def test_codes_agree_with_real_headers_and_scp_table(data_dir):
    """SNOMED codes we use for classes present in the CinC 2021 sample headers appear
    there, and every SCP code exists in PTB-XL's scp_statements.csv."""
    import csv
    dx = set()
    for hea in (data_dir / "cinc2021").glob("*.hea"):
        for line in hea.read_text().splitlines():
            if line.startswith("# Dx:"):
                dx.update(x.strip() for x in line[5:].split(","))
    for name in ("SR", "SB", "STACH", "PAC"):
        assert CLASSES[name].snomed[0] in dx, name
    with open(data_dir / "ptbxl-metadata" / "scp_statements.csv", newline="") as f:
        scp = {row[""] for row in csv.DictReader(f)}
    for c in CLASSES.values():
        assert c.scp in scp, c.name


def test_errors_name_the_value(rng):
    with pytest.raises(ConfigError, match="'VF'"):
        synthesize(5, 500, rng, rhythm="VF")
    with pytest.raises(ConfigError, match="morphology 'WPW'"):
        synthesize(5, 500, rng, morphology="WPW")
    with pytest.raises(ConfigError, match="heart_rate=90"):
        synthesize(5, 500, rng, rhythm="SB", heart_rate=90)
    with pytest.raises(ConfigError, match="duration"):
        synthesize(-1, 500, rng)
    with pytest.raises(ConfigError, match="Generator"):
        synthesize(5, 500, 42)
    with pytest.raises(ConfigError, match="unknown synthesize_batch option"):
        synthesize_batch(2, 5, 500, rng, colour="red")


def test_patient_sampler_option_reaches_the_records(tmp_path):
    """``patient_sampler`` picks how ODE patients are drawn (the prior's screened proposal
    or exact rejection), from synthesize up to a dataset recipe, and is stored per record."""
    from cardiosim.dataset import Recipe, generate, open_dataset

    a = synthesize(2.0, 250.0, np.random.default_rng(8), patient_sampler="rejection")
    b = synthesize(2.0, 250.0, np.random.default_rng(8))
    assert a.params["patient_sampler"] == "rejection" and b.params["patient_sampler"] == "proposal"
    assert a.params["patient.X.QRS3.amp_mV"] != b.params["patient.X.QRS3.amp_mV"]
    with pytest.raises(ConfigError, match="unknown sampling method"):
        synthesize(2.0, 250.0, np.random.default_rng(8), patient_sampler="mcmc")
    with pytest.raises(ConfigError, match="patient_sampler"):
        Recipe.from_dict({"source": {"patient_sampler": "mcmc"}})
    recipe = Recipe.from_dict({"records": 2, "duration": 2.0, "source": {"patient_sampler": "rejection"}})
    generate(recipe, tmp_path / "r.nc", progress=False)
    ds = open_dataset(tmp_path / "r.nc")
    import cardiosim
    assert (cardiosim.parameters(ds)["source_ode_patient_sampler"] == "rejection").all()
