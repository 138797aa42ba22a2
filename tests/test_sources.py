"""Readers of real ECG: WFDB (incl. CinC 2021 .mat), PTB-XL folders, SPH HDF5, arrays; bad input."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb

from cardiosim.errors import (ConfigError, ConsistencyWarning, DataFormatError, LabelMappingWarning,
                              LeadError, SamplingRateError, SignalError)
from cardiosim.leads import STANDARD_LEADS
from cardiosim.sources import (Recording, from_array, open_source, read_ptbxl, read_sph, read_wfdb,
                               resample)

from conftest import PTBXL_FIXTURE_RECORDS

CINC = ("E07500", "HR06000", "HR06001", "HR06002", "HR06003", "HR06004", "JS20000")
# the reader tests read these fixture files of the shared folder and skip without them
# (conftest.pytest_runtest_setup); PTB-XL and SPH layouts are built from HR06000-HR06004
ALL_CINC = pytest.mark.shared_records(*(f"cinc2021/{n}" for n in CINC))
PTBXL_FIXTURE = pytest.mark.shared_records(*PTBXL_FIXTURE_RECORDS)
PTBXL_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]  # PTB-XL header spelling


def _quiet_read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelMappingWarning)
        return read_wfdb(path, **kw)


# --- WFDB on the real files ----------------------------------------------------------------

@ALL_CINC
def test_cinc2021_mat_matches_an_independent_matlab_read(data_dir):
    """Signals equal scipy.io.loadmat('val') / gain (1000 per mV); leads and fs from the header."""
    for name in CINC:
        rec = _quiet_read(data_dir / "cinc2021" / name)
        raw = scipy.io.loadmat(data_dir / "cinc2021" / f"{name}.mat")["val"].astype(np.float64)
        assert rec.leads == STANDARD_LEADS and rec.fs == 500.0 and rec.signal.dtype == np.float32
        np.testing.assert_allclose(rec.signal, raw / 1000.0, atol=1e-6)
        assert rec.metadata["age"] and rec.metadata["sex"]


@pytest.mark.shared_records("cinc2021/HR06000", "cinc2021/E07500")
def test_cinc2021_dx_codes_become_labels(data_dir):
    rec = read_wfdb(data_dir / "cinc2021" / "HR06000")
    assert rec.codes == ("164934002", "426783006")
    assert rec.labels == ("NORM", "STTC")  # sinus rhythm (CinC normal class) + T wave abnormal
    with pytest.warns(LabelMappingWarning, match=r"E07500.*67741000119109"):
        rec = read_wfdb(data_dir / "cinc2021" / "E07500")
    assert rec.labels == () and "67741000119109" in rec.codes  # kept, reported, not dropped


@pytest.mark.shared_records("ptbdb/s0010_re")
def test_ptbdb_dat_and_xyz_match_raw_int16(data_dir):
    """s0010_re: 12 leads in .dat and Frank vx, vy, vz in .xyz; format 16, gain 2000/mV."""
    rec = read_wfdb(data_dir / "ptbdb" / "s0010_re.hea")
    assert rec.leads == STANDARD_LEADS + ("X", "Y", "Z") and rec.fs == 1000.0
    dat = np.fromfile(data_dir / "ptbdb" / "s0010_re.dat", dtype="<i2").reshape(-1, 12).T
    xyz = np.fromfile(data_dir / "ptbdb" / "s0010_re.xyz", dtype="<i2").reshape(-1, 3).T
    np.testing.assert_allclose(rec.signal, np.vstack([dat, xyz]) / 2000.0, atol=1e-6)


@pytest.mark.shared_records("mitdb/100")
def test_mitdb_mlii_is_normalised_to_lead_ii(data_dir):
    rec = read_wfdb(data_dir / "mitdb" / "100", expected_fs=360)
    assert rec.leads == ("II", "V5") and rec.signal.shape == (2, 650000)
    with pytest.raises(LeadError, match=r"missing leads \['I'"):
        read_wfdb(data_dir / "mitdb" / "100", required_leads=STANDARD_LEADS)


def test_unknown_channel_names_need_explicit_leads(data_dir):
    with pytest.raises(LeadError, match="ECG 1"):
        read_wfdb(data_dir / "macecgdb" / "test01_00s")
    rec = read_wfdb(data_dir / "macecgdb" / "test01_00s", leads=["V1", "V2", "V3", "V4"])
    assert rec.leads == ("V1", "V2", "V3", "V4")


@ALL_CINC
@pytest.mark.shared_records("ptbdb/s0010_re")
def test_real_records_are_limb_consistent(data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConsistencyWarning)
        warnings.simplefilter("ignore", LabelMappingWarning)
        for name in CINC:
            read_wfdb(data_dir / "cinc2021" / name)
        read_wfdb(data_dir / "ptbdb" / "s0010_re")


@pytest.mark.shared_records("cinc2021/E07500", "cinc2021/JS20000")
def test_wfdb_folder_source_is_lazy_and_reports_unmapped(data_dir):
    names = sorted(p.stem for p in (data_dir / "cinc2021").glob("*.hea"))  # the shared folder grows
    assert set(CINC) <= set(names)
    seq = open_source(f"wfdb:{data_dir / 'cinc2021'}")
    assert len(seq) == len(names) and seq.classes[0] == "NORM" and len(seq.classes) == 10
    assert seq.unmapped == {}  # nothing read yet
    with pytest.warns(LabelMappingWarning):
        recs = seq[:]
    assert [Path(r.source_id).name for r in recs] == names
    # 426177001 (sinus bradycardia) is in the map's ignore list; the LAE code is reported
    assert seq.unmapped[str(data_dir / "cinc2021" / "E07500")] == ("67741000119109",)
    with pytest.warns(LabelMappingWarning, match="JS20000"):
        assert seq[names.index("JS20000")].source_id == recs[names.index("JS20000")].source_id
    with pytest.raises(IndexError):
        seq[len(names)]


# --- fixtures in native layouts built from real signals -------------------------------------

@PTBXL_FIXTURE
def test_ptbxl_reader_on_native_layout(ptbxl_folder, data_dir):
    db = pd.read_csv(ptbxl_folder / "ptbxl_database.csv", index_col="ecg_id")
    seq = open_source(f"ptbxl:{ptbxl_folder}")
    assert len(seq) == 5 and seq.classes == ("NORM", "AF", "AFL", "IAVB", "LBBB", "RBBB", "PAC", "PVC", "STTC", "LVH")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelMappingWarning)
        recs = list(seq)
    for k, rec in enumerate(recs):
        ecg_id = db.index[k]
        assert rec.source_id == f"ptbxl:{ecg_id}"
        assert rec.metadata["strat_fold"] == int(db.loc[ecg_id, "strat_fold"])
        assert rec.metadata["patient_id"] == int(db.loc[ecg_id, "patient_id"])
        assert rec.leads == STANDARD_LEADS and rec.fs == 500
        src = _quiet_read(data_dir / "cinc2021" / f"HR0600{k}").signal
        np.testing.assert_allclose(rec.signal, src, atol=0.5e-3 + 1e-6)  # 1 uV ADC step
        scp = eval(db.loc[ecg_id, "scp_codes"])  # noqa: S307 - trusted test fixture
        assert set(rec.codes) == set(scp)
    assert recs[0].labels == ("NORM",) and recs[0].metadata["superclasses"] == "NORM"


@PTBXL_FIXTURE
def test_ptbxl_superclasses_match_wagner_aggregation(ptbxl_folder):
    """Labels under the shipped superclass map = the aggregation of Wagner et al.'s example code."""
    stm = pd.read_csv(ptbxl_folder / "scp_statements.csv", index_col=0)
    stm = stm[stm.diagnostic == 1]
    db = pd.read_csv(ptbxl_folder / "ptbxl_database.csv", index_col="ecg_id")
    seq = read_ptbxl(ptbxl_folder, label_map="ptbxl_superclasses")
    for k, ecg_id in enumerate(db.index):
        expected = {stm.loc[c].diagnostic_class for c in eval(db.loc[ecg_id, "scp_codes"]) if c in stm.index}  # noqa: S307
        assert set(seq[k].labels) == expected
        assert seq.unmapped == {}  # non-diagnostic codes are in the map's [ignore] list


@PTBXL_FIXTURE
def test_ptbxl_100hz_records(ptbxl_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelMappingWarning)
        rec = read_ptbxl(ptbxl_folder, sampling_rate=100)[2]
    assert rec.fs == 100 and rec.signal.shape == (12, 1000)


@PTBXL_FIXTURE
def test_ptbxl_unexpected_sampling_rate(ptbxl_folder, tmp_path):
    bad = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_folder, bad)
    row = pd.read_csv(bad / "ptbxl_database.csv").iloc[0]
    hea = bad / f"{row.filename_hr}.hea"
    hea.write_text(hea.read_text().replace(" 12 500 5000", " 12 250 5000", 1))
    with pytest.raises(SamplingRateError, match="250"):
        read_ptbxl(bad)[0]


@pytest.fixture(scope="module")
def sph_folder(data_dir, tmp_path_factory):
    """An SPH folder: records/*.h5 with dataset 'ecg' (12, N) from real signals + metadata.csv."""
    root = tmp_path_factory.mktemp("sph")
    (root / "records").mkdir()
    rows = []
    codes = ["1", "50;147", "22;146+381", "82;999", "104"]
    for k, name in enumerate(CINC[1:6]):
        sig = _quiet_read(data_dir / "cinc2021" / name).signal
        eid = f"A{k + 1:05d}"
        with h5py.File(root / "records" / f"{eid}.h5", "w") as f:
            f.create_dataset("ecg", data=sig)
        rows.append({"ECG_ID": eid, "AHA_Code": codes[k], "Patient_ID": f"P{k:05d}", "Age": 40 + k,
                     "Sex": "M" if k % 2 else "F", "N": sig.shape[1]})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


@PTBXL_FIXTURE
def test_sph_reader_on_native_layout(sph_folder, data_dir):
    seq = open_source(f"sph:{sph_folder}")
    assert len(seq) == 5
    r0 = seq[0]
    assert r0.labels == ("NORM",) and r0.fs == 500 and r0.leads == STANDARD_LEADS
    np.testing.assert_array_equal(r0.signal, _quiet_read(data_dir / "cinc2021" / "HR06000").signal)
    assert seq[1].labels == ("AF", "STTC")
    r2 = seq[2]
    assert r2.codes == ("22", "146") and r2.labels == ("STTC",) and r2.metadata["aha_code"] == "22;146+381"
    with pytest.warns(LabelMappingWarning, match=r"A00004.*999"):
        r3 = seq[3]
    assert r3.labels == ("IAVB",) and seq.unmapped == {"sph:A00004": ("999",)}
    assert r3.metadata["patient_id"] == "P00003" and r3.metadata["age"] == 43.0


@PTBXL_FIXTURE
def test_sph_shape_mismatch_is_a_format_error(sph_folder, tmp_path):
    bad = tmp_path / "sph"
    shutil.copytree(sph_folder, bad)
    with h5py.File(bad / "records" / "A00001.h5", "w") as f:
        f.create_dataset("ecg", data=np.zeros((8, 5000), np.float32))
    with pytest.raises(DataFormatError, match=r"\(8, 5000\)"):
        read_sph(bad)[0]
    with pytest.raises(SamplingRateError):
        read_sph(bad, expected_fs=1000)


def test_open_source_rejects_bad_specs(tmp_path):
    for spec in ("ptbxl", "csv:/x", "wfdb:"):
        with pytest.raises(ConfigError):
            open_source(spec)
    with pytest.raises(DataFormatError):
        open_source(f"ptbxl:{tmp_path}")
    with pytest.raises(DataFormatError, match="no WFDB headers"):
        open_source(f"wfdb:{tmp_path}")


# --- bad input --------------------------------------------------------------------------

def _copy_record(data_dir, tmp_path, folder, name, exts):
    for e in exts:
        shutil.copy(data_dir / folder / f"{name}{e}", tmp_path / f"{name}{e}")
        (tmp_path / f"{name}{e}").chmod(0o644)
    return tmp_path / name


@pytest.mark.shared_records("ptbdb/s0010_re", "cinc2021/HR06001")
def test_truncated_dat_and_mat(data_dir, tmp_path):
    base = _copy_record(data_dir, tmp_path, "ptbdb", "s0010_re", (".hea", ".dat", ".xyz"))
    with open(tmp_path / "s0010_re.dat", "r+b") as f:
        f.truncate(100_000)
    with pytest.raises(DataFormatError, match=r"s0010_re\.dat.*truncated: 100000 bytes"):
        read_wfdb(base)
    base = _copy_record(data_dir, tmp_path, "cinc2021", "HR06001", (".hea", ".mat"))
    with open(tmp_path / "HR06001.mat", "r+b") as f:
        f.truncate(60_000)
    with pytest.raises(DataFormatError, match="truncated"):
        read_wfdb(base)


@pytest.mark.shared_records("cinc2021/HR06002")
def test_header_with_fewer_leads(data_dir, tmp_path):
    # a header line removed: the file holds more channels than the header describes
    base = _copy_record(data_dir, tmp_path, "cinc2021", "HR06002", (".hea", ".mat"))
    lines = (tmp_path / "HR06002.hea").read_text().splitlines()
    lines[0] = lines[0].replace(" 12 ", " 11 ", 1)
    del lines[12]  # V6
    (tmp_path / "HR06002.hea").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="fewer channels"):
        read_wfdb(base)
    # a consistent record with 11 leads: a clear LeadError when the 12 are required
    sig = _quiet_read(data_dir / "cinc2021" / "HR06002").signal[:11].astype(np.float64)
    wfdb.wrsamp("short", fs=500, units=["mV"] * 11, sig_name=PTBXL_NAMES[:11], p_signal=sig.T, fmt=["16"] * 11,
                adc_gain=[1000.0] * 11, baseline=[0] * 11, write_dir=str(tmp_path))
    with pytest.raises(LeadError, match=r"missing leads \['V6'\]"):
        read_wfdb(tmp_path / "short", required_leads=STANDARD_LEADS)
    assert read_wfdb(tmp_path / "short").leads == STANDARD_LEADS[:11]


@pytest.mark.shared_records("cinc2021/HR06003")
def test_nan_samples(data_dir, tmp_path):
    sig = _quiet_read(data_dir / "cinc2021" / "HR06003").signal.astype(np.float64)
    sig[4, 1000:1010] = np.nan  # written as WFDB's missing-sample value, read back as NaN
    wfdb.wrsamp("gap", fs=500, units=["mV"] * 12, sig_name=PTBXL_NAMES, p_signal=sig.T, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    with pytest.raises(SignalError, match=r"10 NaN.*\['aVL'\].*sample 1000"):
        read_wfdb(tmp_path / "gap")
    with pytest.raises(SignalError, match="aVL"):
        from_array(sig, 500, STANDARD_LEADS)


@pytest.mark.shared_records("cinc2021/HR06004")
def test_unexpected_sampling_rate(data_dir):
    with pytest.raises(SamplingRateError, match=r"HR06004.*500.*expected 250"):
        read_wfdb(data_dir / "cinc2021" / "HR06004", expected_fs=250)
    with pytest.raises(SamplingRateError):
        from_array(np.zeros((12, 10)), 500, STANDARD_LEADS, expected_fs=1000)


@pytest.mark.shared_records("cinc2021/HR06000")
def test_swapped_limb_electrodes_warn_naming_the_record(data_dir):
    rec = _quiet_read(data_dir / "cinc2021" / "HR06000")
    sig = rec.signal.copy()
    sig[[0, 1]] = sig[[1, 0]]  # I and II swapped: III != II - I
    with pytest.warns(ConsistencyWarning, match=r"my-record.*III by"):
        out = from_array(sig, 500, [n.lower() for n in STANDARD_LEADS], source_id="my-record")
    assert out.leads == STANDARD_LEADS  # 'avr' normalised, data kept
    np.testing.assert_array_equal(out.signal, sig)
    sig = rec.signal.copy()
    sig[[4, 5]] = sig[[5, 4]]  # aVL and aVF labels swapped; III still = II - I
    with pytest.warns(ConsistencyWarning, match=r"my-record.*aVL by .*aVF by") as rec_w:
        from_array(sig, 500, STANDARD_LEADS, source_id="my-record")
    assert "III by" not in str(rec_w[0].message)


# --- arrays and resampling ------------------------------------------------------------------

def test_from_array_and_recording_checks():
    x = np.zeros((3, 100))
    rec = from_array(x, 250, ["I", "MLII", "V2"], labels=("NORM",), metadata={"patient_id": 7})
    assert rec.leads == ("I", "II", "V2") and rec.signal.dtype == np.float32 and rec.duration == 0.4
    with pytest.raises(LeadError, match="'V7'"):
        from_array(x, 250, ["I", "II", "V7"])
    with pytest.raises(LeadError, match="duplicate"):
        from_array(x, 250, ["I", "II", "ii"])
    with pytest.raises(SignalError, match="metadata 'a'"):
        Recording(x, 250, ("I", "II", "V1"), metadata={"a": [1]})
    with pytest.raises(LeadError, match=r"missing leads \['V1'\]"):
        rec.select(["I", "V1"])


def test_resample_has_an_anti_aliasing_filter():
    """500 -> 100 Hz: a 180 Hz tone must not alias to 20 Hz; a 5 Hz tone passes unchanged."""
    fs = 500
    t = np.arange(10 * fs) / fs
    low, high = np.sin(2 * np.pi * 5 * t), np.sin(2 * np.pi * 180 * t)
    y = resample((low + high).astype(np.float32), fs, 100)
    assert y.dtype == np.float32 and y.shape == (1000,)
    t2 = np.arange(1000) / 100
    mid = slice(100, 900)
    alias = 2 * abs(np.mean(y[mid] * np.exp(-2j * np.pi * 20 * t2[mid])))
    tone = 2 * abs(np.mean(y[mid] * np.exp(-2j * np.pi * 5 * t2[mid])))
    assert alias < 1e-2 and abs(tone - 1) < 1e-2
    naive = (low + high)[::5]  # what decimation without a filter would give
    assert 2 * abs(np.mean(naive[mid] * np.exp(-2j * np.pi * 20 * t2[mid]))) > 0.9
    with pytest.raises(SamplingRateError):
        resample(y, 0, 100)


@pytest.mark.shared_records("cinc2021/HR06000", "cinc2021/HR06001")
def test_iter_records_reports_failures_and_skips_them(data_dir, tmp_path):
    for name in ("HR06000", "HR06001"):
        _copy_record(data_dir, tmp_path, "cinc2021", name, (".hea", ".mat"))
    with open(tmp_path / "HR06001.mat", "r+b") as f:
        f.truncate(1000)
    seq = open_source(f"wfdb:{tmp_path}")
    with pytest.raises(DataFormatError):
        list(seq.iter_records())
    got = [rec.source_id for _, rec in seq.iter_records(on_error="report")]
    assert got == [str(tmp_path / "HR06000")]
    assert list(seq.failed) == [str(tmp_path / "HR06001")] and "truncated" in seq.failed[str(tmp_path / "HR06001")]


@PTBXL_FIXTURE
def test_ptbxl_selection_and_likelihood_threshold(ptbxl_folder):
    db = pd.read_csv(ptbxl_folder / "ptbxl_database.csv", index_col="ecg_id")
    ids = list(db.index[[3, 1]])
    seq = read_ptbxl(ptbxl_folder, label_map="ptbxl_superclasses", ecg_ids=ids)
    assert seq.ids == tuple(ids) and seq[0].metadata["ecg_id"] == ids[0]
    with pytest.raises(DataFormatError, match="999999"):
        read_ptbxl(ptbxl_folder, ecg_ids=[999999])
    # a threshold above every likelihood maps nothing but keeps every code
    rec = read_ptbxl(ptbxl_folder, label_map="ptbxl_superclasses", min_likelihood=101)[0]
    assert rec.labels == () and rec.codes == tuple(eval(db.iloc[0].scp_codes))  # noqa: S307


@pytest.mark.shared_records("cinc2021/HR06004")
def test_recording_resampled_keeps_the_ecg(data_dir):
    """500 -> 250 Hz of a real record: same duration, same waveform at the common samples."""
    rec = _quiet_read(data_dir / "cinc2021" / "HR06004")
    low = rec.resampled(250)
    assert low.fs == 250 and low.signal.shape == (12, 2500) and low.labels == rec.labels
    a, b = low.signal[:, 50:-50], rec.signal[:, ::2][:, 50:-50]
    for k in range(12):
        assert np.corrcoef(a[k], b[k])[0, 1] > 0.99, rec.leads[k]
    assert rec.resampled(500) is rec


@pytest.mark.shared_records("cinc2021/HR06004", "mitdb/100")
def test_units_and_channel_selection(data_dir, tmp_path):
    """A record stored in uV is returned in mV; unknown units are a format error; channels= selects."""
    sig = _quiet_read(data_dir / "cinc2021" / "HR06004").signal[:2].astype(np.float64)
    wfdb.wrsamp("micro", fs=500, units=["uV", "uV"], sig_name=["I", "II"], p_signal=sig.T * 1000, fmt=["16", "16"],
                adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(tmp_path))
    np.testing.assert_allclose(read_wfdb(tmp_path / "micro").signal, sig, atol=1e-3)
    wfdb.wrsamp("odd", fs=500, units=["mmHg", "mV"], sig_name=["I", "II"], p_signal=sig.T, fmt=["16", "16"],
                adc_gain=[1000.0, 1000.0], baseline=[0, 0], write_dir=str(tmp_path))
    with pytest.raises(DataFormatError, match="'mmHg'"):
        read_wfdb(tmp_path / "odd")
    rec = read_wfdb(data_dir / "mitdb" / "100", channels=["V5"])
    assert rec.leads == ("V5",) and rec.signal.shape == (1, 650000)
    with pytest.raises(LeadError, match="V9"):
        read_wfdb(data_dir / "mitdb" / "100", channels=["V9"])


def test_synthetic_source_caches_the_frank_matrix_bit_for_bit():
    """The ODE source's dipole is ``dipole_from_vcg`` of its VCG bit for bit, with the Frank
    lead matrix built once per forward model and layout (another layout or model is not
    served a stale matrix)."""
    import dataclasses

    from cardiosim.inverse import dipole_from_vcg
    from cardiosim.ode import synthesize
    from cardiosim.simulate import make_context
    from cardiosim.sources import synthetic, synthetic_source

    ctx = make_context("shirt12_500hz")
    lay = ctx.frank_layout
    moved = dataclasses.replace(lay, positions=lay.positions * 1.0005)  # just off the surface: still within reach
    synthetic._FRANK_G.clear()
    for layout in (lay, lay, moved):
        src = synthetic_source(4.0, 500.0, np.random.default_rng(3), ctx.forward, layout, rhythm="SR")
        beats = synthesize(4.0, 500.0, np.random.default_rng(3), rhythm="SR")
        assert np.array_equal(src.dipole, dipole_from_vcg(beats.vcg, ctx.forward, layout))
    hits = [g for (fwd, g) in synthetic._FRANK_G.values() if fwd is ctx.forward]
    assert len(hits) == 2 and not np.array_equal(hits[0], hits[1])
    with pytest.raises(SignalError, match="NaN"):
        synthetic._dipole_from_vcg(np.full((3, 10), np.nan), ctx.forward, lay)


def test_ode_source_class_draw_is_generator_choice():
    """``dataset.plan``'s cached class draw picks what ``rng.choice(n, p=w / w.sum())`` picked
    and leaves the generator where ``choice`` left it (zero and uneven weights too)."""
    from cardiosim.dataset.plan import _class_cdf
    from cardiosim.dataset.recipe import DEFAULT_ODE_CLASSES

    mixes = [dict(DEFAULT_ODE_CLASSES), {"SR+NORM": 3.0, "AF+NORM": 0.0, "SR+LVH": 0.25, "PVC+NORM": 1e-9},
             {"IAVB+RBBB": 1.0}]
    for classes in mixes:
        combos, cdf = _class_cdf(tuple(classes.items()))
        names = sorted(classes)
        w = np.array([classes[c] for c in names], dtype=float)
        for seed in range(300):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            want = names[int(a.choice(len(names), p=w / w.sum()))]
            import bisect

            got = combos[bisect.bisect_right(cdf, b.random())]
            assert "+".join(got) == want
            assert a.random() == b.random()
