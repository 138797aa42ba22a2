"""The validation entry points on real recordings of the same kinds under names the project has
never seen: other textile subjects, other CinC 2021 records, other CPSC 2021 patients, other
CinC 2011 records, other MIT-BIH records.

Every folder here is built in ``tmp_path`` from the shared recordings (``$CARDIOSIM_DATA``): each
record's signal, annotation and grade files are symbolic links to the shared ones under a new
name, and its header is rewritten with the new record name (a WFDB header names its own signal
file, so a linked header would still point at the old name). Nothing is copied into the
repository. Where the content is the same, renaming must not change a measurement; where
content is missing, the error must say what is missing.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from cardiosim.errors import ConfigError, DataFormatError
from conftest import PROJECT_ROOT, missing_shared_records

def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# a record under a new name: header rewritten, its other files symbolic links (the script's own)
link_record = _script("renamed_data_copy").link_record


def _need(data_dir: Path, *subdirs: str) -> None:
    for sub in subdirs:
        if not (data_dir / sub).is_dir():
            pytest.skip(f"{sub}/ not found in {data_dir} (set CARDIOSIM_DATA to the shared data folder)")




def _textile_as(data_dir: Path, folder: Path, subjects: dict) -> Path:
    """``folder/textile`` holding the shared subjects ``subjects`` (old -> new name)."""
    src = data_dir / "textile"
    for old, new in subjects.items():
        for hea in sorted(src.glob(f"{old}_*.hea")):
            link_record(src, hea.stem, folder / "textile", new + hea.stem[len(old):])
    return folder


# -- textile: other subjects -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def textile_folders(data_dir, tmp_path_factory):
    """``(renamed, original)``: subjects 04, 05 as 07, 08; and 04, 05 under their own names."""
    _need(data_dir, "textile")
    base = tmp_path_factory.mktemp("unseen_textile")
    return (_textile_as(data_dir, base / "renamed", {"04": "07", "05": "08"}),
            _textile_as(data_dir, base / "original", {"04": "04", "05": "05"}))


def test_textile_held_out_comparison_reads_the_folders_subjects(data_dir, textile_folders):
    """``--compare`` holds out every subject the validation fit (01-03) was not fitted on: new
    subjects 07, 08 are compared as 04, 05 are, with the same numbers (same recordings)."""
    from cardiosim.noise import textile

    renamed, _ = textile_folders
    assert textile.held_out_subjects(renamed / "textile") == ("07", "08")
    assert textile.held_out_subjects(data_dir / "textile") == ("04", "05")
    script = _script("fit_textile_noise")
    new = script.compare_held_out(renamed, n_records=2)
    old = script.compare_held_out(data_dir, n_records=2)
    assert len(new) == 15
    assert json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True)


def test_textile_default_fit_is_compared_with_subjects_it_never_saw(textile_folders):
    """The default fit (all five shared subjects) against new subjects: runs, nothing refused,
    the fit subjects' spread (not in the folder) reported as NaN rather than a crash."""
    from cardiosim.noise import textile

    renamed, _ = textile_folders
    rows = _script("fit_textile_noise").compare_held_out(renamed, n_records=2, fit_path=textile.FIT_FILE,
                                                         fit_subjects=True)
    assert len(rows) == 15 and all(r["real_median"] > 0 for r in rows)
    assert all(np.isnan(r["fit_within_rel_iqr"]) for r in rows)


def test_textile_fit_on_new_subjects_equals_the_fit_on_the_same_recordings(textile_folders):
    """Fitting subjects 07, 08 gives what fitting 04, 05 gives: only the names differ."""
    from cardiosim.noise import textile

    renamed, original = textile_folders
    new = textile.fit_textile(renamed / "textile", ("07", "08"))
    old = textile.fit_textile(original / "textile", ("04", "05"))
    assert new.pop("fit_subjects") == ["07", "08"] and old.pop("fit_subjects") == ["04", "05"]
    new.pop("about"), old.pop("about")
    assert json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True)


def test_textile_subject_splits_on_new_subjects(textile_folders):
    """Between-subject agreement (``--splits``) of 07 vs 08 is that of 04 vs 05."""
    renamed, original = textile_folders
    script = _script("fit_textile_noise")
    new = script.subject_splits(renamed, n_fit=1)
    old = script.subject_splits(original, n_fit=1)
    assert [n for *_, n in new["splits"]] == [n for *_, n in old["splits"]]
    assert list(new["leave_one_out"].values()) == list(old["leave_one_out"].values())
    with pytest.raises(ConfigError, match="need more than 3 subjects"):
        script.subject_splits(renamed)


def test_textile_missing_subjects_are_named(data_dir, textile_folders, tmp_path):
    from cardiosim.noise import textile

    renamed, _ = textile_folders
    with pytest.raises(ConfigError, match="at least 2 subjects"):
        textile.fit_textile(renamed / "textile", ("07",))
    with pytest.raises(DataFormatError, match=r"subject\(s\) 01, 02 have no record .*subjects found: 07, 08"):
        textile.fit_textile(renamed / "textile", ("01", "02"))
    # a folder of the validation fit's own subjects only: nothing is held out, and it says so
    only_fit = _textile_as(data_dir, tmp_path, {"01": "01", "02": "02", "03": "03"})
    with pytest.raises(ConfigError, match="not be held out"):
        _script("fit_textile_noise").compare_held_out(only_fit, n_records=2)
    with pytest.raises(ConfigError, match="no held-out subject"):
        textile.held_out_subjects(only_fit / "textile")


# -- CinC 2021: other 12-lead records --------------------------------------------------------------

NORM_RENAMED = {"E07503": "E09003", "E07511": "E09011", "E07512": "E09012", "HR06003": "HR07003",
                "JS20008": "JS29008"}


@pytest.fixture(scope="module")
def cinc2021_renamed(data_dir, tmp_path_factory):
    """The held-out normal-beat records under new names (their name order kept: the synthetic
    side cycles through the real records' rhythms in that order), a fitted record under its own
    name, and the RBBB pair (one signal twice) renamed."""
    _need(data_dir, "cinc2021")
    base = tmp_path_factory.mktemp("unseen_cinc2021")
    src = data_dir / "cinc2021"
    for old, new in {**NORM_RENAMED, "E07500": "E07500", "E07509": "Q0009", "E07510": "Q0010"}.items():
        link_record(src, old, base / "cinc2021", new)
    return base


def test_realism_table_reports_norm_on_records_it_never_saw(data_dir, cinc2021_renamed):
    """Other CinC 2021 records than ``HELD_OUT``: the NORM rows are measured on every
    normal-beat record the prior's fit never looked at (HELD_OUT names selected nothing there
    and the table came out empty, silently); same records, same rows."""
    from cardiosim.ode.prior import validation_prior
    from cardiosim.ode.realism import norm_held_out, real_records, realism_table

    assert [r["name"] for r in norm_held_out(real_records(cinc2021_renamed), validation_prior())] == \
        sorted(NORM_RENAMED.values())
    with pytest.warns(UserWarning, match=r"RBBB not compared: 1 distinct .*Q0009, Q0010"):
        new, md = realism_table(cinc2021_renamed, n_synth=4, classes=("NORM", "RBBB"))
    old, _ = realism_table(data_dir, n_synth=4, classes=("NORM",))
    assert list(new) == ["NORM"] and new["NORM"] == old["NORM"]
    assert "E09003, E09011, E09012, HR07003, JS29008" in md
    with pytest.warns(UserWarning, match="LVH not compared: 0"), \
            pytest.raises(ConfigError, match="no class of LVH has 2"):
        realism_table(cinc2021_renamed, n_synth=4, classes=("LVH",))


def test_real_records_read_lead_names_without_case_and_name_a_missing_lead(data_dir, tmp_path):
    from cardiosim.ode.realism import real_records

    link_record(data_dir / "cinc2021", "E07511", tmp_path / "a" / "cinc2021", "A0001",
                lead_names={"aVR": "AVR", "aVL": "AVL", "aVF": "AVF"})
    got = real_records(tmp_path / "a")[0]
    want = next(r for r in real_records(data_dir) if r["name"] == "E07511")
    assert np.array_equal(got["leads"], want["leads"]) and got["morphology"] == want["morphology"]
    link_record(data_dir / "cinc2021", "E07511", tmp_path / "b" / "cinc2021", "A0002", lead_names={"V6": "X6"})
    with pytest.raises(DataFormatError, match="A0002.hea: record lacks the standard lead.s. V6"):
        real_records(tmp_path / "b")


# -- CPSC 2021 and MIT-BIH: other patients, other records ------------------------------------------

# new patient names that keep the records' sorted order (the prior pools the records in it)
PATIENTS = {"101": "1101", "21": "121", "35": "135", "84": "184", "8": "18", "92": "192"}

# Every folder here is built from named records of the shared folder: with another folder of the
# same kinds in $CARDIOSIM_DATA (which these tests stand in for) they skip, naming what is missing.
pytestmark = pytest.mark.shared_records(
    *(f"textile/{s}_{e}_{a}" for s in ("01", "02", "03", "04", "05") for e in ("AgAgCl", "textile")
      for a in ("rest", "walk")),
    *(f"cinc2021/{n}" for n in (*NORM_RENAMED, "E07500", "E07509", "E07510", "E07511")),
    *(f"cpsc2021/data_{q}_*.hea" for q in PATIENTS), "mitdb/100", "nstdb/ma", "cinc2011/REFERENCE.csv")


@pytest.fixture(scope="module")
def cpsc_renamed(data_dir, tmp_path_factory):
    """Every CPSC 2021 record with its patient renamed, and MIT-BIH 100 as record 119."""
    _need(data_dir, "cpsc2021", "mitdb")
    base = tmp_path_factory.mktemp("unseen_cpsc")
    for hea in sorted((data_dir / "cpsc2021").glob("*.hea")):
        _, patient, n = hea.stem.split("_")
        link_record(data_dir / "cpsc2021", hea.stem, base / "cpsc2021", f"data_{PATIENTS[patient]}_{n}")
    link_record(data_dir / "mitdb", "100", base / "mitdb", "119")
    assert sorted(p.stem for p in (base / "cpsc2021").glob("*.hea")) == \
        [f"data_{PATIENTS[p.stem.split('_')[1]]}_{p.stem.split('_')[2]}"
         for p in sorted((data_dir / "cpsc2021").glob("*.hea"))]
    return base


def test_drift_wander_reads_renamed_patients(data_dir, cpsc_renamed):
    """The drift's real-record measure (scripts/fit_holter_drift.py --report) finds the folder's
    own patients and reads a renamed patient's records as the original's; an absent one is named."""
    from cardiosim.noise import drift

    assert set(drift.cpsc_patients(cpsc_renamed)) == set(PATIENTS.values())
    np.testing.assert_array_equal(drift.cpsc_wander(cpsc_renamed, ["121"])["121"],
                                  drift.cpsc_wander(data_dir, ["21"])["21"])
    with pytest.raises(ConfigError, match="patient '21'"):
        drift.cpsc_wander(cpsc_renamed, ["21"])


def _without_names(prior: dict) -> dict:
    return {k: v for k, v in prior.items() if k not in ("sources", "held_out_patients")}


def test_rhythm_prior_on_renamed_patients_and_records(data_dir, cpsc_renamed):
    """The held-out patients are named by the caller in another folder (21 and 84 are absent:
    the default used to fit on every record and still claim them held out); with the same
    patients held out the prior is the same, MIT-BIH 119 read as 100 was (it was dropped)."""
    from cardiosim.ode.rhythm_prior import fit_rhythm_prior

    with pytest.raises(ConfigError, match=r"held-out patient\(s\) 21, 84 have no record .*1101, 121, 135"):
        fit_rhythm_prior(cpsc_renamed)
    new = fit_rhythm_prior(cpsc_renamed, held_out=("121", "184"))
    old = fit_rhythm_prior(data_dir)
    assert "mitdb/119" in new["sources"] and new["held_out_patients"] == ["121", "184"]
    assert _without_names(new) == _without_names(old)


def test_af_leave_one_patient_out_on_renamed_patients(data_dir, cpsc_renamed, tmp_path):
    from cardiosim.ode.rhythm_prior import af_leave_one_patient_out

    new = af_leave_one_patient_out(cpsc_renamed, n_draws=500)
    old = af_leave_one_patient_out(data_dir, n_draws=500)
    assert new == {PATIENTS[p]: v for p, v in old.items()}
    # a folder without AF patients: said, not an empty result
    for hea in sorted((data_dir / "cpsc2021").glob("data_21_*.hea")):
        link_record(data_dir / "cpsc2021", hea.stem, tmp_path / "cpsc2021", hea.stem.replace("_21_", "_121_"))
    with pytest.raises(ConfigError, match="at least 2 patients .*found them for none"):
        af_leave_one_patient_out(tmp_path)


def test_prior_rhythm_cli_on_a_renamed_folder(data_dir, cpsc_renamed, tmp_path, capsys):
    """``cardiosim prior rhythm FOLDER`` reads whatever records the folder holds."""
    from cardiosim.cli import main
    from cardiosim.ode.rhythm_prior import read_rhythm_prior, rhythm_prior_from_records

    out = tmp_path / "rhythm.json"
    assert main(["prior", "rhythm", str(cpsc_renamed / "cpsc2021"), "-o", str(out)]) == 0
    want = rhythm_prior_from_records(sorted(h.with_suffix("") for h in (data_dir / "cpsc2021").glob("*.hea")))
    want = json.loads(json.dumps(want))   # as written to the file (tuples become lists)
    assert _without_names(read_rhythm_prior(out))["af"] == _without_names(want)["af"]


# -- sim-to-real benchmark: every real test set from another folder --------------------------------

@pytest.fixture(scope="module")
def bench_folder(data_dir, tmp_path_factory):
    """A folder of the benchmark's kinds under new names: textile subjects 04, 05 as 07, 08 and
    subject 01 under its own name (a fit subject: training, never testing); CPSC 2021 held-out
    patients 21, 84 as 121, 184 (the others keep their names); MIT-BIH 100 as 119; NSTDB as is
    (its noise records are named by the database); 12 CinC 2011 records renamed, graded by the
    challenge's RECORDS-acceptable / RECORDS-unacceptable lists instead of REFERENCE.csv."""
    import pandas as pd

    _need(data_dir, "textile", "cpsc2021", "mitdb", "nstdb", "cinc2011")
    base = tmp_path_factory.mktemp("unseen_bench")
    _textile_as(data_dir, base, {"01": "01", "04": "07", "05": "08"})
    for hea in sorted((data_dir / "cpsc2021").glob("*.hea")):
        _, patient, n = hea.stem.split("_")
        link_record(data_dir / "cpsc2021", hea.stem, base / "cpsc2021",
                    f"data_{ {'21': '121', '84': '184'}.get(patient, patient)}_{n}")
    link_record(data_dir / "mitdb", "100", base / "mitdb", "119")
    (base / "nstdb").mkdir()
    for f in sorted((data_dir / "nstdb").iterdir()):
        os.symlink(f, base / "nstdb" / f.name)
    ref = pd.read_csv(data_dir / "cinc2011" / "REFERENCE.csv", dtype={"record": str})
    for q in ("acceptable", "unacceptable"):
        names = list(ref.loc[ref["quality"] == q, "record"][:6])
        for name in names:
            link_record(data_dir / "cinc2011", name, base / "cinc2011", f"x{name}")
        (base / "cinc2011" / f"RECORDS-{q}").write_text("".join(f"x{n}\n" for n in names))
    return base


def _run_mod():
    return importlib.import_module("cardiosim.sim2real.run")


def _budget():
    from cardiosim.sim2real.train import get_budget

    # the quick budget's af_records name shared records: every record of the folder instead
    return dataclasses.replace(get_budget("quick"), af_records=None)


def _by_key(s, key):
    """Windows of a real set keyed by ``key(record, start)``."""
    return {key(r, int(a)): (x, y) for r, a, x, y in zip(s.meta["record"], s.meta["start"], s.x, s.y)}


def test_af_test_sets_hold_out_the_patients_no_prior_saw(data_dir, bench_folder):
    """Held-out patients are those the validation rhythm prior was not fitted on: 121 and 184
    here (21 and 84 renamed; the fixed names left the held-out set empty, silently)."""
    run = _run_mod()
    new = run.load_test_sets("af", _budget(), bench_folder)
    old = run.load_test_sets("af", _budget(), data_dir)
    assert sorted(set(new["cpsc2021_heldout"].groups)) == ["121", "184"]
    back = {"121": "21", "184": "84"}

    def orig(record, start):
        _, p, n = record.split("_")
        return f"data_{back.get(p, p)}_{n}", start
    for name in ("cpsc2021", "cpsc2021_heldout"):
        a, b = _by_key(new[name], orig), _by_key(old[name], lambda r, s: (r, s))
        assert a.keys() == b.keys() and len(a) == len(old[name])
        assert all(np.array_equal(a[k][0], b[k][0]) and a[k][1] == b[k][1] for k in a)
    assert "'held out' = patients 121, 184 only" in run.describe_test_sets("af", new)["how"]


def test_quality_and_beats_test_sets_from_new_subjects_and_records(data_dir, bench_folder):
    """Textile test subjects 07, 08 (04, 05 renamed; 01 is a fit subject and stays out), CinC
    2011 graded by RECORDS lists, MIT-BIH 119 (100 renamed): the same windows as the shared
    folder's, under the new names."""
    run = _run_mod()
    tasks = importlib.import_module("cardiosim.sim2real.tasks")
    b = _budget()
    new = run.load_test_sets("quality", b, bench_folder)
    old_textile = tasks.load_textile_segments(data_dir, b.fs, subjects=("04", "05"), electrodes=b.textile_electrodes)
    t = new["textile"]
    assert sorted(set(t.groups)) == ["07", "08"]
    assert np.array_equal(t.x, old_textile.x) and np.array_equal(t.y, old_textile.y)
    assert "textile: subjects 07, 08 only" in run.describe_test_sets("quality", new)["how"]
    c = new["cinc2011"]
    old_c = tasks.load_cinc2011(data_dir, b.fs)
    idx = {n: i for i, n in enumerate(old_c.groups)}
    assert len(c) == 12 and int(np.sum(c.y)) == 6
    for k, name in enumerate(c.groups):
        assert np.array_equal(c.x[k], old_c.x[idx[name[1:]]]) and c.y[k] == old_c.y[idx[name[1:]]]
    beats = run.load_test_sets("beats", b, bench_folder)
    old_m = tasks.load_mitdb_noisy(data_dir, b.fs, snrs_db=b.mitdb_snrs, seconds=b.mitdb_seconds)
    m = beats["mitdb_nstdb"]
    assert m.name == "mitdb119+nstdb" and set(m.groups) == {"119"}
    assert np.array_equal(m.x, old_m.x) and all(np.array_equal(p, q) for p, q in zip(m.peaks, old_m.peaks))
    assert sorted(set(beats["textile"].groups)) == ["07", "08"]


def test_benchmark_names_what_another_folder_lacks(data_dir, bench_folder, tmp_path):
    """The quick budget's named CPSC records, train-on-real and unlabeled textile subjects,
    graded CinC 2011 records: each absence is a clear error or a condition marked n/a."""
    from cardiosim.sim2real.conditions import NotApplicable
    from cardiosim.sim2real.learned import load_unlabeled
    from cardiosim.sim2real.train import get_budget

    run = _run_mod()
    tasks = importlib.import_module("cardiosim.sim2real.tasks")
    with pytest.raises(DataFormatError, match="data_21_7, data_84_3 not in .*af_records=None.*--budget full"):
        run.load_test_sets("af", get_budget("quick"), bench_folder)
    # only new subjects: nothing of the fit subjects to train on or to learn from unlabeled
    only_new = _textile_as(data_dir, tmp_path / "new", {"04": "07", "05": "08"})
    with pytest.raises(NotApplicable, match="fit subjects"):
        run._train_real_cv("quality", _budget().for_task("quality"), 0, {}, only_new, None)
    with pytest.raises(NotApplicable, match="subjects 01, 02, 03"):
        load_unlabeled("quality", _budget().for_task("quality"), only_new)
    # MIT-BIH 119 is the af task's unlabeled Holter data as 100 is
    assert np.array_equal(load_unlabeled("af", _budget().for_task("af"), bench_folder),
                          load_unlabeled("af", _budget().for_task("af"), data_dir))
    # CinC 2011 graded only by its headers' '# quality:' comments; a list naming an absent record
    link_record(data_dir / "cinc2011", "1002603", tmp_path / "c" / "cinc2011", "y1")
    ref = tasks.cinc2011_reference(tmp_path / "c" / "cinc2011")
    assert list(ref["record"]) == ["y1"] and list(ref["quality"]) == ["unacceptable"]
    (tmp_path / "c" / "cinc2011" / "RECORDS-acceptable").write_text("y1\ny2\n")
    with pytest.raises(DataFormatError, match="without a header there: y2"):
        tasks.cinc2011_reference(tmp_path / "c" / "cinc2011")


# -- a user's own WFDB records under any name --------------------------------------------------------

def test_measure_and_noise_model_of_a_record_under_any_name(data_dir, tmp_path, capsys):
    """``cardiosim measure`` and a recorded noise model read a record by its path, whatever its
    name: a textile record and an NSTDB noise record renamed give the same measures and fit."""
    from cardiosim.cli import main
    from cardiosim.noise.fit import nstdb_noise_model, recorded_noise_model

    _need(data_dir, "textile", "nstdb")
    link_record(data_dir / "textile", "04_textile_walk", tmp_path, "patient9_walk")
    link_record(data_dir / "nstdb", "ma", tmp_path, "my_muscle_noise")
    outs = []
    for path in (tmp_path / "patient9_walk", data_dir / "textile" / "04_textile_walk"):
        assert main(["measure", str(path), "--json", str(tmp_path / "m.json")]) == 0
        outs.append(json.loads((tmp_path / "m.json").read_text())["leads"])
    assert outs[0] == outs[1]
    mine = recorded_noise_model(f"wfdb:{tmp_path / 'my_muscle_noise'}")
    ref = nstdb_noise_model("ma", data_dir)
    assert np.array_equal(mine.freqs, ref.freqs) and np.array_equal(mine.psd, ref.psd)
    assert mine.bursts == ref.bursts


def test_pinned_records_are_looked_up_by_name_extension_or_pattern(tmp_path):
    """``@pytest.mark.shared_records`` names a record with or without its extension, or by a glob
    pattern; what the folder lacks is returned in the given order (the skip reason names it)."""
    (tmp_path / "cinc2021").mkdir()
    (tmp_path / "cinc2021" / "HR06000.hea").write_text("")
    (tmp_path / "cinc2021" / "HR06000.mat").write_text("")
    names = ["cinc2021/HR06000", "cinc2021/HR06000.hea", "cinc2021/HR0600*.hea", "cinc2021/HR06001",
             "cpsc2021/data_21_*.hea", "cinc2021/HR0600"]
    assert missing_shared_records(tmp_path, names) == ["cinc2021/HR06001", "cpsc2021/data_21_*.hea", "cinc2021/HR0600"]


def test_renamed_copy_holds_the_same_recordings_under_new_names(data_dir, tmp_path):
    """``scripts/renamed_data_copy.py``: every subject, patient and record under a new name, the
    signals the same bytes; the textile fit's held-out subjects are then all five renamed ones."""
    import wfdb

    from cardiosim.noise import textile

    _need(data_dir, "textile", "cinc2021", "cpsc2021")
    dst = tmp_path / "copy"
    _script("renamed_data_copy").make_copy(data_dir, dst)
    assert textile.held_out_subjects(dst / "textile") == ("11", "12", "13", "14", "15")
    new, old = ({p.stem for p in (d / "cinc2021").glob("*.hea")} for d in (dst, data_dir))
    assert len(new) == len(old) and not new & old
    a = wfdb.rdrecord(str(data_dir / "cpsc2021" / "data_84_1"))
    b = wfdb.rdrecord(str(dst / "cpsc2021" / "data_284_1"))
    assert np.array_equal(a.p_signal, b.p_signal) and b.record_name == "data_284_1"
