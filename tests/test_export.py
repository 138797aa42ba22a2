"""`cardiosim export DATASET --format wfdb`: PhysioNet tools read what cardiosim wrote."""

import numpy as np
import pytest

from cardiosim.cli import main
from cardiosim.dataset import Recipe, generate, open_dataset
from cardiosim.errors import ConfigError

wfdb = pytest.importorskip("wfdb", reason="wfdb is a runtime dependency of cardiosim")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = root / "ds"
    recipe = Recipe.from_dict({"records": 3, "duration": 3.0, "seed": 6, "forward": "infinite",
                               "output": {"shard_size": 2},
                               "source": {"classes": {"PVC+NORM": 1.0, "AF+NORM": 1.0, "SR+LBBB": 1.0,
                                                      "SB+NORM": 1.0}}})  # seed 6: PVC, SB, LBBB
    generate(recipe, data, progress=False)
    out = root / "wfdb"
    assert main(["--quiet", "export", str(data), "--format", "wfdb", "--output", str(out)]) == 0
    return data, out


def test_wfdb_records_read_back_with_the_dataset_samples(exported):
    data, out = exported
    names = (out / "RECORDS").read_text().split()
    with open_dataset(data) as ds:
        assert names == [f"rec{int(r):06d}" for r in ds["record"].values]
        fs = float(ds.attrs["sampling_rate"])
        for k, name in enumerate(names):
            rec = wfdb.rdrecord(str(out / name))
            assert rec.fs == fs and rec.sig_name == [str(x) for x in ds["lead"].values]
            assert rec.units == ["mV"] * len(rec.sig_name)
            x = ds["ecg"].values[k].T.astype(np.float64)
            step = 1.0 / np.asarray(rec.adc_gain)
            # 16-bit storage: every sample within half a quantisation step of the dataset's
            assert np.all(np.abs(rec.p_signal - x) <= step / 2 + 1e-9)
            assert any(str(ds["source_id"].values[k]) in c for c in rec.comments)


def test_wfdb_annotations_are_the_ground_truth(exported):
    data, out = exported
    with open_dataset(data) as ds:
        for k in range(ds.sizes["record"]):
            name = f"rec{int(ds['record'].values[k]):06d}"
            types = ds["beat_type"].values[k]
            n = int((types != "").sum())
            atr = wfdb.rdann(str(out / name), "atr")
            np.testing.assert_array_equal(atr.sample, ds["beat_r_peak"].values[k][:n])
            assert atr.symbol == [str(t) for t in types[:n]]
            wave = wfdb.rdann(str(out / name), "wave")
            assert np.all(np.diff(wave.sample) >= 0)
            onsets = wave.sample[np.array(wave.symbol) == "("]
            expected = np.concatenate([ds["beat_p_onset"].values[k][:n], ds["beat_qrs_onset"].values[k][:n]])
            np.testing.assert_array_equal(np.sort(onsets), np.sort(expected[expected >= 0]))
            t_peaks = wave.sample[np.array(wave.symbol) == "t"]
            t_expected = ds["beat_t_peak"].values[k][:n]
            np.testing.assert_array_equal(t_peaks, t_expected[t_expected >= 0])
        assert "V" in "".join(map(str, ds["beat_type"].values.ravel())), "the PVC record carries a V beat"


def test_neurokit_reads_the_export(exported):
    """A peer tool's pipeline runs on the exported records and finds the annotated normal
    beats (NeuroKit2's detector may skip a premature ventricular beat 0.5 s after the last:
    that is the peer's refractory rule, not the export). It reads each record's lead of
    largest peak-to-peak amplitude, as a user picks the lead for a single-lead detector: in
    lead II of this recipe's LBBB record (QRS 0.38 mV, P 0.21 mV, noise 0.05 mV RMS, since the
    LBBB beat of 1875fc8) NeuroKit2 took the P waves for R."""
    nk = pytest.importorskip("neurokit2", reason="neurokit2 is not installed")
    data, out = exported
    n_inner = 0
    for name in (out / "RECORDS").read_text().split():
        rec = wfdb.rdrecord(str(out / name))
        ii = rec.p_signal[:, int(np.argmax(np.ptp(rec.p_signal, axis=0)))]
        atr = wfdb.rdann(str(out / name), "atr")
        _, info = nk.ecg_peaks(nk.ecg_clean(ii, sampling_rate=rec.fs), sampling_rate=rec.fs)
        found = np.asarray(info["ECG_R_Peaks"])
        normal = atr.sample[np.asarray(atr.symbol) == "N"]
        inner = normal[(normal > rec.fs / 2) & (normal < len(ii) - rec.fs / 2)]
        assert found.size, name
        assert all(np.min(np.abs(found - s)) <= 0.05 * rec.fs for s in inner), (name, inner, found)
        n_inner += inner.size
    assert n_inner >= 4


def test_export_refuses_to_mix_into_a_non_empty_directory(exported, tmp_path):
    data, out = exported
    before = sorted(p.name for p in out.iterdir())
    assert main(["export", str(data), "--output", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == before
    from cardiosim.dataset.export import export_dataset
    with pytest.raises(ConfigError, match="unknown export format"):
        export_dataset(data, tmp_path / "x", format="edf")
    assert not (tmp_path / "x").exists()
