"""Label maps: shipped defaults checked against the source tables, user TOML, reporting."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from cardiosim.errors import ConfigError, LabelMappingWarning
from cardiosim.sources import load_label_map, parse_label_map, read_wfdb, scp_label_map_toml, shipped_label_maps
from cardiosim.sources.labels import CODE_SYSTEMS

TEN = ("NORM", "AF", "AFL", "IAVB", "LBBB", "RBBB", "PAC", "PVC", "STTC", "LVH")
ODE_CLASSES = ("SR", "SB", "STACH", "AF", "AFL", "PVC", "PAC", "IAVB",      # rhythms
               "NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH")         # morphologies


def test_shipped_maps():
    assert {"ten_class", "ptbxl_superclasses", "ptbxl_subclasses"} <= set(shipped_label_maps())
    assert load_label_map("ten_class").classes == TEN
    assert load_label_map("ptbxl_superclasses").classes == ("NORM", "MI", "STTC", "CD", "HYP")


@pytest.mark.parametrize("level,name", [("class", "ptbxl_superclasses"), ("subclass", "ptbxl_subclasses")])
def test_ptbxl_maps_are_generated_from_scp_statements(data_dir, level, name):
    """The shipped PTB-XL maps are exactly what the real scp_statements.csv gives."""
    csv = data_dir / "ptbxl-metadata" / "scp_statements.csv"
    shipped = load_label_map(name)
    assert shipped.source == scp_label_map_toml(csv, level)
    stm = pd.read_csv(csv, index_col=0)
    col = "diagnostic_class" if level == "class" else "diagnostic_subclass"
    for code, row in stm.iterrows():
        res = shipped.map_codes([code], "scp", warn=False)
        if row.diagnostic == 1:
            assert res.labels == (row[col],), code
        else:
            assert res.labels == () and res.ignored == (code,), code


def test_ten_class_aha_agrees_with_scp_via_ptbxl_aha_column(data_dir):
    """For every SCP code of the ten-class map with a numeric AHA code in scp_statements.csv,
    the AHA table maps that AHA code to the same class (independent cross-walk by PTB-XL)."""
    stm = pd.read_csv(data_dir / "ptbxl-metadata" / "scp_statements.csv", index_col=0)
    tm = load_label_map("ten_class")
    checked = 0
    for scp_code, classes in tm.table["scp"].items():
        aha = str(stm.loc[scp_code, "AHA code"]).split(".")[0]
        if aha.isdigit():
            assert tm.map_codes([aha], "aha", warn=False).labels == classes, (scp_code, aha)
            checked += 1
    assert checked >= 10


def test_ten_class_covers_every_ode_class():
    """Every ODE class name is either mapped or deliberately ignored, and every class is reachable."""
    tm = load_label_map("ten_class")
    for c in ODE_CLASSES:
        res = tm.map_codes([c], "ode", warn=False)
        assert res.labels or res.ignored == (c,), c
    reached = {lab for codes in tm.table["ode"].values() for lab in codes}
    assert reached == set(TEN)
    for system in ("scp", "aha", "snomed"):
        assert {lab for codes in tm.table[system].values() for lab in codes} == set(TEN), system
    assert tm.map_codes(["STE", "TINV", "SR"], "ode").labels == ("STTC",)


def test_unknown_codes_are_warned_and_returned():
    tm = load_label_map("ten_class")
    with pytest.warns(LabelMappingWarning, match=r"rec-7.*\['XYZ', '12345'\]"):
        res = tm.map_codes(["AFIB", "XYZ", "SR", "12345"], "scp", source_id="rec-7")
    assert res.labels == ("AF",) and res.unmapped == ("XYZ", "12345") and res.ignored == ("SR",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tm.map_codes(["AFIB", "SR"], "scp").unmapped == ()
    with pytest.raises(ConfigError, match="icd"):
        tm.map_codes(["x"], "icd")


@pytest.mark.shared_records("cinc2021/HR06000")
def test_user_toml_file_drives_a_reader(data_dir, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nclasses = ["ABNORMAL_T", "SINUS"]\n\n'
                    '[snomed]\nABNORMAL_T = ["164934002"]\nSINUS = ["426783006"]\n')
    rec = read_wfdb(data_dir / "cinc2021" / "HR06000", label_map=path)
    assert rec.labels == ("ABNORMAL_T", "SINUS")


@pytest.mark.parametrize("text,match", [
    ('classes = ["A"]\ncolour = 1\n', "unknown keys"),
    ('classes = ["A"]\n[scp]\nB = ["x"]\n', "class 'B'"),
    ('classes = []\n', "non-empty"),
    ('classes = ["A", "A"]\n', "duplicate"),
    ('classes = ["A"]\n[scp]\nA = ["x"]\n[ignore]\nscp = ["x"]\n', "both mapped and ignored"),
    ('classes = ["A"]\n[scp]\nA = "x"\n', "list of codes"),
    ('classes = ["A"\n', "not valid TOML"),
])
def test_malformed_maps_raise_config_error(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_label_map(text, "bad")


def test_unknown_map_name():
    with pytest.raises(ConfigError, match="shipped maps"):
        load_label_map("eleven_class")
    assert set(CODE_SYSTEMS) == {"scp", "aha", "snomed", "ode"}
