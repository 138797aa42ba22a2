"""Files the field can read: CF compliance (checked by the IOOS compliance-checker, offline),
one class vocabulary with SNOMED CT / SCP codes, typed per-record parameters, ground-truth
annotations and the clean signal beside the noisy one (issue 17)."""

import json

import numpy as np
import pytest

import cardiosim
from cardiosim.dataset import Recipe, generate, open_dataset
from cardiosim.sources import load_label_map


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Four ODE records (PVC, AF and sinus classes), noisy, with the clean signal stored."""
    path = tmp_path_factory.mktemp("cf") / "cf.nc"
    recipe = Recipe.from_dict({"records": 4, "duration": 3.0, "seed": 6, "forward": "infinite",
                               "source": {"classes": {"PVC+NORM": 1.0, "AF+NORM": 1.0, "SR+LBBB": 1.0,
                                                      "SB+NORM": 1.0}},
                               "output": {"store_clean": True}})
    generate(recipe, path, progress=False)
    return recipe, path


def _failures(section):
    return [(r["name"], r["msgs"]) for r in section if r["value"][0] < r["value"][1]]


@pytest.mark.slow
def test_compliance_checker_cf_has_no_errors(written, tmp_path):
    """The CF checker runs on the written file with no errors, no warnings and no crash.
    (Before issue 17 it crashed on the string coordinates and reported non-UDUNITS units.)
    Slow: the checker's cost grows steeply with the number of variables (~30 s of CPU for
    this file's ~120), so it runs once, on a file with every kind of variable."""
    pytest.importorskip("compliance_checker", reason="compliance-checker is not installed (pip install "
                                                     "compliance-checker, part of the test extra)")
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    _, path = written
    CheckSuite().load_all_available_checkers()
    report = tmp_path / "cf.json"
    # The checker's CF suite uses its bundled standard-name table: no network access.
    _, crashed = ComplianceChecker.run_checker(str(path), ["cf:1.11"], 0, "normal", output_filename=str(report),
                                               output_format="json")
    result = json.loads(report.read_text())["cf:1.11"]
    assert not crashed, "a CF check raised an exception inside compliance-checker"
    assert _failures(result["high_priorities"]) == []
    assert _failures(result["medium_priorities"]) == []


def test_cf_encoding_units_flags_and_fill_values(written):
    """What the checker cannot judge: units parse in UDUNITS to the intended quantity,
    labels are auxiliary coordinates, missing integers are declared."""
    import netCDF4

    _, path = written
    with netCDF4.Dataset(path) as nc:
        assert nc.Conventions == "CF-1.11"
        assert "lead_name" in nc["ecg"].coordinates.split() and "lead" not in nc.variables
        assert nc["heart_rate"].units == "min-1" and nc["snr_db"].units == "1"
        assert list(nc["label"].flag_values) == [0, 1] and nc["label"].flag_values.dtype == np.int8
        assert nc["label"].flag_meanings == "absent present"
        assert nc["fold"]._FillValue == -1 and nc["beat_r_peak"]._FillValue == -1
    cf_units = pytest.importorskip("cf_units", reason="cf-units (installed with compliance-checker) is absent")
    # one beat per second is 60 min-1: UDUNITS agrees that min-1 is a frequency
    assert cf_units.Unit("min-1").convert(60.0, cf_units.Unit("Hz")) == pytest.approx(1.0)


def test_one_class_vocabulary_with_snomed_and_scp_codes(written):
    """ODE datasets use the ten-class map like real sources; the class axis carries the codes
    the label map gives (PhysioNet/CinC 2021 SNOMED CT, PTB-XL SCP statements)."""
    _, path = written
    tm = load_label_map("ten_class")
    with open_dataset(path) as ds:
        assert tuple(map(str, ds["class"].values)) == tm.classes
        snomed = dict(zip(map(str, ds["class"].values), map(str, ds["class_snomed"].values)))
        scp = dict(zip(map(str, ds["class"].values), map(str, ds["class_scp"].values)))
        assert snomed["AF"] == "164889003" and scp["AF"] == "AFIB"
        assert set(snomed["LBBB"].split()) == {"164909002", "733534002"}
        assert scp["PVC"] == "PVC" and "NST_" in scp["STTC"].split()
        # each record's labels are its raw ODE class mapped by the [ode] table (SB is ignored)
        raw = cardiosim.parameters(ds)["source_ode_class"]
        for k in range(ds.sizes["record"]):
            expected = tm.map_codes(raw.iloc[k].split("+"), "ode").labels
            got = tuple(c for c, v in zip(tm.classes, ds["label"].values[k]) if v)
            assert got == expected, (raw.iloc[k], got)


def test_parameters_are_a_typed_table(written):
    recipe, path = written
    with open_dataset(path) as ds:
        df = cardiosim.parameters(ds)
        n = ds.sizes["record"]
        assert len(df) == n and list(df.index) == list(ds["record"].values)
        assert str(df["body_index"].dtype) == "Int64" and df["garment_slip_m"].dtype == np.float64
        assert str(df["activity"].dtype) == "string"
        # per-electrode and per-wave families come back as the original flat keys
        n_el = ds.sizes["electrode"]
        families = {c.rsplit(".e", 1)[0] for c in df.columns if c.rsplit(".e", 1)[-1].isdigit()}
        assert families, "per-electrode noise parameters are stored"
        for fam in families:
            assert {f"{fam}.e{k}" for k in range(n_el)} <= set(df.columns), fam
        assert "source_ode_patient.X.QRS3.amp_mV" in df.columns
        # PVC-only parameters are missing (not zero) for the other records
        pvc = df["source_ode_class"] == "PVC+NORM"
        assert pvc.any() and (~pvc).any()
        col = "source_ode_pvc.X.QRS3.amp_mV"
        assert df.loc[pvc, col].notna().all() and df.loc[~pvc, col].isna().all()
        # the stored heart rate is the parameter the ODE drew
        np.testing.assert_allclose(ds["heart_rate"].values, df["source_ode_heart_rate_bpm"], rtol=0.2)
        # typed storage is a fraction of the former JSON string per record
        nbytes = sum(ds[v].values.nbytes for v in ds.data_vars if str(v).startswith("param_")
                     and ds[v].dtype != object)
        json_bytes = len(json.dumps({c: (None if df[c].isna().iloc[0] else str(df[c].iloc[0])) for c in df}))
        assert nbytes / n < json_bytes


def test_stored_beats_have_their_r_peak_inside_their_qrs(written):
    """Every record has >= 2 beats, the padding past them is -1, and each stored R peak
    lies inside its own QRS (onset <= R <= offset, output time base)."""
    _, path = written
    with open_dataset(path) as ds:
        for k in range(ds.sizes["record"]):
            n_beats = int((ds["beat_type"].values[k] != "").sum())
            r = ds["beat_r_peak"].values[k]
            assert n_beats >= 2 and np.all(r[:n_beats] >= 0) and np.all(r[n_beats:] == -1)
            q0, q1 = ds["beat_qrs_onset"].values[k][:n_beats], ds["beat_qrs_offset"].values[k][:n_beats]
            ok = (q0 >= 0) & (q1 >= 0)
            assert ok.sum() >= 1
            assert np.all(q0[ok] <= r[:n_beats][ok]) and np.all(r[:n_beats][ok] <= q1[ok]), k


# Until 2026-12-05 this failed (an xfail): the generator drew P waves up to 0.55 mV in II
# (20 % of NORM patients >= 0.25 mV, the normal limit) and NeuroKit2 took the SR+LBBB
# record's P waves for R. The ODE screen now bounds the lead-II P (0.08-0.22 mV, one hump,
# upright; prior.LEAD_P_LIMITS) and the normal prior leaves out a record with an axis
# deviation; NeuroKit2 now agrees on every record of this recipe.
# Since the LBBB beat turns its QRS vector without a pause (1875fc8: septum right to left,
# then the free wall) its QRS in II is wider and slower; on this recipe's LBBB record
# (QRS 0.38 mV peak to peak in II, P 0.21 mV) NeuroKit2's lead-II detector took 3 P waves
# for R (on 30 LBBB records it found every QRS in II in 24, 28 before). NeuroKit2's detector
# now reads the leads' spatial velocity (cardiosim.ode.realism.r_peaks, the beats issue's
# independent delineator), in which QRS complexes of every shape and axis stand out.
def test_annotations_match_an_independent_detector_on_the_clean_signal(written):
    """Every R wave NeuroKit2 finds in the stored clean signal (its detector on the leads'
    spatial velocity, :func:`cardiosim.ode.realism.r_peaks`) lies inside a stored beat's
    P-QRS (P onset .. QRS offset, output time base), most of them inside the stored QRS, and
    every stored interior conducted beat is found there: the annotations are in the output's
    time base, not the source's. (The stored R peak is the peak of the spatial QRS magnitude,
    which in one lead can sit ~15 ms from the lead's own R wave in a bundle-branch block; the
    QRS interval is the lead-independent check.)

    Why the P wave counts: in some synthetic LBBB patients NeuroKit2's detector takes the P
    wave, ~110 ms before the broad QRS, for the R wave (measured 2026-12-06 on this fixture's
    recipe at 10 s, seeds 6-13: the LBBB record of seed 7 10 of 11 peaks, of seed 9 3 of 13, the
    others none; 0 of 190 peaks in 16 LBBB records of another seed; this fixture's 3-s LBBB
    record 1 of 3 since the ST/T rate scaling changed which patients are drawn). There the P's
    12-lead spatial velocity reaches half the slurred QRS's: a question for the LBBB beats'
    realism, not for the time base, which a peak on a stored P still confirms.
    """
    pytest.importorskip("neurokit2", reason="neurokit2 (validation oracle) is not installed")
    from cardiosim.ode.realism import r_peaks

    _, path = written
    with open_dataset(path) as ds:
        fs = float(ds.attrs["sampling_rate"])
        slack = int(round(0.004 * fs))  # the device's causal filter delays the recorded waves ~1-2 ms
        in_qrs = in_beat = found_n = total = n_interior = 0
        for k in range(ds.sizes["record"]):
            types = ds["beat_type"].values[k]
            n_beats = int((types != "").sum())
            q0, q1 = ds["beat_qrs_onset"].values[k][:n_beats], ds["beat_qrs_offset"].values[k][:n_beats]
            p0 = ds["beat_p_onset"].values[k][:n_beats]
            ok = (q0 >= 0) & (q1 >= 0)  # beat order and R inside QRS: the test above
            start = np.where(p0 >= 0, np.minimum(p0, q0), q0)  # beats without a P (PVC, AF): the QRS
            clean = ds["clean_ecg"].values[k].astype(float)
            peaks = r_peaks(clean, fs)
            for p in peaks[(peaks > fs / 4) & (peaks < clean.shape[-1] - fs / 4)]:
                total += 1
                in_qrs += bool(np.any(ok & (q0 - slack <= p) & (p <= q1 + slack)))
                in_beat += bool(np.any(ok & (start - slack <= p) & (p <= q1 + slack)))
            # found: the conducted beats (NeuroKit2's detector may skip a premature ventricular
            # beat ~0.5 s after the last -- its refractory rule, not the annotations')
            interior = ok & (types[:n_beats] == "N") & (q0 > fs / 2) & (q1 < clean.shape[-1] - fs / 2)
            n_interior += int(interior.sum())
            for a, b in zip(start[interior], q1[interior]):
                found_n += bool(np.any((peaks >= a - slack) & (peaks <= b + slack)))
        assert total >= 6
        assert in_beat == total, f"{total - in_beat} of {total} NeuroKit2 R peaks fall outside every stored P-QRS"
        assert in_qrs >= 0.75 * total, f"only {in_qrs} of {total} NeuroKit2 R peaks inside a stored QRS"
        assert n_interior >= 4 and found_n == n_interior, f"NeuroKit2 found {found_n} of {n_interior} stored beats"


def test_clean_signal_is_the_noisy_record_without_noise(written, tmp_path):
    """With noise off, ecg and clean_ecg are the same array; with noise on they differ by the
    noise only (same garment, motion and device), so they correlate strongly."""
    recipe, path = written
    with open_dataset(path) as ds:
        noisy, clean = ds["ecg"].values, ds["clean_ecg"].values
        assert noisy.shape == clean.shape and clean.dtype == np.float32
        assert not np.array_equal(noisy, clean)
        r = [np.corrcoef(noisy[k, 1], clean[k, 1])[0, 1] for k in range(noisy.shape[0])]
        assert min(r) > 0.3
    data = recipe.to_dict()
    data["records"] = 2
    data["simulation"]["add_noise"] = False
    quiet = Recipe.from_dict(data)
    out = tmp_path / "quiet.nc"
    generate(quiet, out, progress=False)
    with open_dataset(out) as ds:
        np.testing.assert_array_equal(ds["ecg"].values, ds["clean_ecg"].values)
