"""A copy of a data folder with every subject, patient and record under a new name: symbolic links
to the signal, annotation and grade files, headers rewritten with the new names. Nothing is copied.

Running the test suite on it (``CARDIOSIM_DATA=DST python -m pytest -q -n 2``) shows what would
happen on recordings of the same kinds the project never had. Tests pinned to named shared records
skip. The others read the folder's own held-out subjects, patients and records, so a failure there
is a measurement (README, "The test suite on another folder").

Renames: textile subject SS -> SS + 10 (its header's ``# subject`` line too); CinC 2021 E075.. ->
E085.., HR06.. -> HR07.., JS20.. -> JS30..; CPSC 2021 patient P -> P + 200; CinC 2011 record R ->
9R (``REFERENCE.csv`` and ``RECORDS`` rewritten); MIT-BIH 100 -> 119; PTB s0010_re -> s0020_re.
A record of another name in those folders keeps it. Folders named by their database (``nstdb``, ``macecgdb``, ``tank``, ``ptbxl-metadata``) are linked
as they are.

    python scripts/renamed_data_copy.py SRC DST
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

LINKED_AS_IS = ("nstdb", "macecgdb", "tank", "ptbxl-metadata")


def link_record(src_dir: Path, src: str, dst_dir: Path, dst: str, lead_names: dict | None = None) -> None:
    """Record ``src`` of ``src_dir`` as ``dst`` of ``dst_dir``: the header rewritten with the new
    record and file names (``lead_names`` renames signals), every other file of the record a
    symbolic link."""
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i, line in enumerate((src_dir / f"{src}.hea").read_text().splitlines()):
        if line.startswith("#") or not line.strip():
            out.append(line)
        elif i == 0:
            out.append(re.sub(rf"^{re.escape(src)}\b", dst, line))
        else:
            line = re.sub(rf"^{re.escape(src)}\.", f"{dst}.", line)
            if lead_names:
                head, _, name = line.rpartition(" ")
                line = f"{head} {lead_names.get(name, name)}"
            out.append(line)
    (dst_dir / f"{dst}.hea").write_text("\n".join(out) + "\n")
    for f in src_dir.glob(f"{src}.*"):
        if f.suffix != ".hea":
            os.symlink(f.resolve(), dst_dir / (dst + f.name[len(src):]))


RENAMES = {
    "textile": lambda s: f"{int(s[:2]) + 10:02d}{s[2:]}",
    "cinc2021": lambda s: {"E075": "E085", "HR06": "HR07", "JS20": "JS30"}.get(s[:4], s[:4]) + s[4:],
    "cpsc2021": lambda s: re.sub(r"^data_(\d+)_", lambda m: f"data_{int(m.group(1)) + 200}_", s),
    "cinc2011": lambda s: "9" + s,
    "mitdb": lambda s: {"100": "119"}.get(s, s),
    "ptbdb": lambda s: {"s0010_re": "s0020_re"}.get(s, s),
}


def make_copy(src: Path, dst: Path) -> list[str]:
    """Build the renamed copy of ``src`` at ``dst`` (which must not exist); returns the folders made."""
    src, dst = Path(src).resolve(), Path(dst)
    if not src.is_dir():
        raise SystemExit(f"no data folder {src}")
    if dst.exists():
        raise SystemExit(f"{dst} exists: give a new folder")
    dst.mkdir(parents=True)
    made = []
    for sub, rename in RENAMES.items():
        if not (src / sub).is_dir():
            continue
        heads = sorted((src / sub).glob("*.hea"))
        for hea in heads:
            link_record(src / sub, hea.stem, dst / sub, rename(hea.stem))
        stems = {h.stem for h in heads}
        for f in (src / sub).iterdir():   # licences and lists that are no record's file
            if f.suffix != ".hea" and not any(f.name.startswith(s + ".") for s in stems):
                if f.name in ("REFERENCE.csv", "RECORDS"):
                    lines = f.read_text().splitlines()
                    if f.name == "REFERENCE.csv":
                        rows = [line.split(",", 1) for line in lines[1:]]
                        lines = lines[:1] + [",".join([rename(r[0]), *r[1:]]) for r in rows]
                    else:
                        lines = [rename(line) for line in lines if line.strip()]
                    (dst / sub / f.name).write_text("\n".join(lines) + "\n")
                else:
                    os.symlink(f.resolve(), dst / sub / f.name)
        made.append(sub)
    for hea in (dst / "textile").glob("*.hea") if (dst / "textile").is_dir() else ():
        text = hea.read_text()
        hea.write_text(re.sub(r"# subject (\d+)", lambda m: f"# subject {int(m.group(1)) + 10:02d}", text))
    for sub in LINKED_AS_IS:
        if (src / sub).is_dir():
            os.symlink(src / sub, dst / sub)
            made.append(sub)
    return made


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    args = ap.parse_args(argv)
    print(f"{args.dst}: {', '.join(make_copy(args.src, args.dst))}")


if __name__ == "__main__":
    sys.exit(main())
