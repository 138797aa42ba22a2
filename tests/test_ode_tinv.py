"""T-wave inversion (TINV) as a regional repolarisation change (``model._territorial_t_inversion``):
T inverted in two contiguous leads of one anatomic territory, the leads that look away from it
keeping their upright T; judged against the shared real T-inversion records where they are."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.ode import model
from cardiosim.ode.model import QRS_WAVES, REPOL, TINV_TERRITORIES, apply_morphology
from cardiosim.ode.prior import sample_patient
from cardiosim.ode.realism import LI, lead_matrix

FS = 500.0


def _lead_t(p):
    """Each of the 12 leads' T as a reader takes it on the beat template at RR 1 s: the largest
    deflection of the ST-T from 80 ms after the QRS end (``realism.measure``'s window start)."""
    t, v = p.track(REPOL, fs=FS)
    _, q1 = p.span(QRS_WAVES)
    w = lead_matrix() @ v[:, t >= q1 + 0.08]
    return w[np.arange(12), np.argmax(np.abs(w), axis=1)]


@pytest.fixture(scope="module")
def drawn():
    """60 normal patients (fresh seed) and their TINV versions with the drawn parameters."""
    rng = np.random.default_rng([20261207, 60])
    out = []
    for _ in range(60):
        p = sample_patient(rng, morphology="NORM")
        q, prm = apply_morphology(p, "TINV", rng)
        out.append((p, q, prm))
    return out


def test_every_territory_is_drawn_and_inverts_its_own_pair(drawn):
    seen = set()
    for _, q, prm in drawn:
        seen.add(prm["t_territory"])
        a, b = prm["t_pair"].split("-")
        assert (a, b) in TINV_TERRITORIES[prm["t_territory"]], prm
        t = _lead_t(q)
        # the class criterion (T <= -0.10 mV in two contiguous leads) with the template's margin
        assert t[LI[a]] <= -0.12 and t[LI[b]] <= -0.12, (prm, t[LI[a]], t[LI[b]])
    assert seen == set(TINV_TERRITORIES)


def test_leads_looking_away_from_the_territory_keep_an_upright_t(drawn):
    """A regional change adds a T force pointing away from the region: a lead whose direction
    is opposite to the inverted pair's (cosine < -0.3) and whose T was upright (>= 0.1 mV) keeps
    it upright. The global inversion used until 2026-12-07 (T turned >= 125 deg from the QRS
    axis) inverted T in I, II and V3-V6 together and fails this."""
    M = lead_matrix()
    kept = total = 0
    for p, q, prm in drawn:
        pairs, _, units, _ = model._tinv_pairs(prm["t_territory"])
        u = units[pairs.index(tuple(prm["t_pair"].split("-")))]
        before, after = _lead_t(p), _lead_t(q)
        cos = (M @ u) / np.linalg.norm(M, axis=1)
        away = (cos < -0.3) & (before >= 0.1)
        total += int(away.sum())
        kept += int((after[away] > 0.0).sum())
    assert total >= 60 and kept == total, (kept, total)


def test_qt_is_the_patients_own(drawn):
    """Primary T inversion turns repolarisation, not its time course: the 12-lead T end stays
    within 5 ms of the normal patient's."""
    d = np.array([model._t_end12(q) - model._t_end12(p) for p, q, _ in drawn])
    assert np.abs(d).max() <= 0.005, d


@pytest.mark.shared_records("cinc2021/JS20007", "cinc2021/JS20010")
def test_real_t_inversion_records_median_t_inside_the_synthetic_iqr(data_dir):
    """The issue's distribution criterion on the T features of the two shared real T-inversion
    records (CinC 2021 JS20007, JS20010: T inverted in V3, and in V6 with III and aVF; upright in
    I, II, V2 and V5): their median T in I, II, V2 and V5 lies inside the synthetic TINV
    interquartile range (80 records of ``realism_table``) in at least 3 of the 4. Nothing was
    fitted to these records. Measured: T in I, V2 and V5 inside; T in II, where the real records'
    T is flattened (0.08 and 0.19 mV), just below it in this draw (synthetic IQR 0.20-0.50 mV;
    inside in two other draws of 80). With the global inversion used until 2026-12-07 none of
    the four was (synthetic IQR of T in I -0.24...-0.11 mV against the real median +0.09)."""
    from cardiosim.ode.realism import realism_table

    tables, _ = realism_table(data_dir, classes=("TINV",), n_synth=80)
    rows = {r["feature"]: r for r in tables["TINV"]}
    inside = [f for f in ("T_I", "T_II", "T_V2", "T_V5") if rows[f]["median_in_iqr"]]
    assert all(rows[f]["n_real"] == 2 for f in ("T_I", "T_II", "T_V2", "T_V5"))
    assert len(inside) >= 3, {f: (rows[f]["syn_q1"], rows[f]["real_med"], rows[f]["syn_q3"]) for f in rows}
