"""Reader of a PTB-XL folder (Wagner et al., Scientific Data 7, 154, 2020; CC BY 4.0).

Layout: ``ptbxl_database.csv`` (one row per ``ecg_id``: ``patient_id``, ``scp_codes`` as a
Python-dict string code -> likelihood 0-100, ``strat_fold`` 1-10, ``filename_lr``,
``filename_hr``), ``scp_statements.csv`` (SCP code -> ``diagnostic_class``,
``diagnostic_subclass``, ``diagnostic``/``form``/``rhythm`` flags), and WFDB records under
``records100/`` and ``records500/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, DataFormatError
from ..leads import STANDARD_LEADS
from ._sequence import RecordingSequence
from .labels import load_label_map
from .recording import Recording, check_limb_consistency
from .wfdb_reader import read_wfdb_signal

_DB_COLUMNS = ("patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")


def read_scp_statements(path) -> pd.DataFrame:
    """``scp_statements.csv`` indexed by SCP code (``DataFormatError`` if absent or malformed)."""
    path = Path(path)
    try:
        df = pd.read_csv(path, index_col=0)
    except (OSError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"cannot read SCP statements {str(path)!r}: {exc}") from None
    need = {"diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"}
    if need - set(df.columns):
        raise DataFormatError(f"{str(path)!r} lacks columns {sorted(need - set(df.columns))}")
    return df


def scp_label_map_toml(statements_csv, level: str = "class") -> str:
    """Label-map TOML from PTB-XL's ``scp_statements.csv``: diagnostic SCP codes -> class or subclass.

    Non-diagnostic statements (form and rhythm only) go to ``[ignore]``. The shipped
    ``ptbxl_superclasses.toml`` / ``ptbxl_subclasses.toml`` are this function's output.

    Parameters
    ----------
    level : {'class', 'subclass'}
    """
    if level not in ("class", "subclass"):
        raise ConfigError(f"level must be 'class' or 'subclass', got {level!r}")
    df = read_scp_statements(statements_csv)
    col = "diagnostic_class" if level == "class" else "diagnostic_subclass"
    diag = df[df["diagnostic"] == 1]
    if level == "class":
        classes = ["NORM", "MI", "STTC", "CD", "HYP"]  # order of Wagner et al. 2020
    else:
        classes = sorted(diag[col].unique())
    lines = [f'name = "ptbxl_{"superclasses" if level == "class" else "subclasses"}"',
             f'description = "PTB-XL diagnostic {"superclasses" if level == "class" else "subclasses"} '
             f'(Wagner et al. 2020), generated from scp_statements.csv by '
             f'cardiosim.sources.ptbxl.scp_label_map_toml(level={level!r})"',
             "classes = [" + ", ".join(f'"{c}"' for c in classes) + "]", "", "[scp]"]
    for c in classes:
        codes = sorted(diag.index[diag[col] == c])
        lines.append(f'"{c}" = [' + ", ".join(f'"{x}"' for x in codes) + "]")
    lines += ["", "[ignore]", "scp = [" + ", ".join(f'"{x}"' for x in sorted(df.index[df["diagnostic"] != 1])) + "]"]
    return "\n".join(lines) + "\n"


def _parse_scp(text, ecg_id) -> dict:
    try:
        d = ast.literal_eval(text) if isinstance(text, str) else {}
    except (ValueError, SyntaxError):
        raise DataFormatError(f"PTB-XL ecg_id {ecg_id}: scp_codes {text!r} is not a dict literal") from None
    if not isinstance(d, dict):
        raise DataFormatError(f"PTB-XL ecg_id {ecg_id}: scp_codes {text!r} is not a dict literal")
    return {str(k): float(v) for k, v in d.items()}


def read_ptbxl(folder, sampling_rate: int = 500, *, label_map="ten_class", min_likelihood: float = 0.0,
               ecg_ids=None) -> RecordingSequence:
    """Lazy sequence of PTB-XL records as :class:`Recording` (12 leads, mV).

    Parameters
    ----------
    folder : str or Path
        Holds ``ptbxl_database.csv``, ``scp_statements.csv`` and ``records500/`` or ``records100/``.
    sampling_rate : {500, 100}
        Which record set to read (``filename_hr`` or ``filename_lr``); every record is
        checked to be at this rate (:class:`SamplingRateError` otherwise).
    label_map : str, Path or LabelMap
        Maps SCP codes (system ``scp``) to ``labels``. Default ``'ten_class'``;
        ``'ptbxl_superclasses'`` gives NORM/MI/STTC/CD/HYP.
    min_likelihood : float
        SCP codes with a likelihood below this (0-100) are not mapped (they stay in
        ``codes`` and ``metadata['scp_codes']``). PTB-XL gives likelihood 0 to
        non-diagnostic statements, so the default 0 keeps all.
    ecg_ids : sequence of int, optional
        Restrict to these records.

    Returns
    -------
    RecordingSequence
        ``metadata`` per record: ``ecg_id``, ``patient_id``, ``strat_fold``, ``age``, ``sex``,
        ``scp_codes`` (``'NORM:100;SR:0'``), ``superclasses``, ``subclasses`` (``;``-joined),
        ``filename``.
    """
    folder = Path(folder)
    if sampling_rate not in (100, 500):
        raise ConfigError(f"PTB-XL sampling_rate must be 100 or 500, got {sampling_rate!r}")
    db_path = folder / "ptbxl_database.csv"
    try:
        db = pd.read_csv(db_path, index_col="ecg_id")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"cannot read PTB-XL database {str(db_path)!r}: {exc}") from None
    missing = [c for c in _DB_COLUMNS if c not in db.columns]
    if missing:
        raise DataFormatError(f"{str(db_path)!r} lacks PTB-XL columns {missing}")
    stmts = read_scp_statements(folder / "scp_statements.csv")
    diag = stmts[stmts["diagnostic"] == 1]
    if ecg_ids is not None:
        unknown = sorted(set(int(i) for i in ecg_ids) - set(db.index))
        if unknown:
            raise DataFormatError(f"ecg_ids {unknown[:10]} are not in {str(db_path)!r}")
        db = db.loc[[int(i) for i in ecg_ids]]
    lmap = load_label_map(label_map)
    col = "filename_hr" if sampling_rate == 500 else "filename_lr"

    def reader(ecg_id):
        row = db.loc[ecg_id]
        sid = f"ptbxl:{int(ecg_id)}"
        scp = _parse_scp(row["scp_codes"], ecg_id)
        sig, fs, leads, _ = read_wfdb_signal(folder / str(row[col]), sampling_rate, required_leads=STANDARD_LEADS)
        use = [c for c, lk in scp.items() if lk >= min_likelihood]
        res = lmap.map_codes(use, "scp", sid)
        sup = sorted({str(diag.at[c, "diagnostic_class"]) for c in scp if c in diag.index})
        sub = sorted({str(diag.at[c, "diagnostic_subclass"]) for c in scp if c in diag.index})
        meta = {"ecg_id": int(ecg_id), "patient_id": int(row["patient_id"]),
                "strat_fold": int(row["strat_fold"]), "format": "ptbxl",
                "scp_codes": ";".join(f"{c}:{lk:g}" for c, lk in scp.items()),
                "superclasses": ";".join(sup), "subclasses": ";".join(sub), "filename": str(row[col])}
        for key in ("age", "sex"):
            if key in row and pd.notna(row[key]):
                meta[key] = float(row[key]) if key == "age" else int(row[key])
        rec = Recording(sig, fs, tuple(leads), res.labels, tuple(scp), sid, meta)
        check_limb_consistency(rec.signal, rec.leads, sid)
        return rec, res.unmapped

    return RecordingSequence([int(i) for i in db.index], reader, lmap, f"ptbxl:{folder}")
