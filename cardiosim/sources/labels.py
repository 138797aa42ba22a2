"""Label maps: user-editable TOML files from source statement codes to target classes.

A label map file looks like::

    name = "ten_class"
    classes = ["NORM", "AF", ...]          # the target vocabulary, in output order

    [scp]                                   # one table per code system
    NORM = ["NORM"]                         # class = [codes...]
    AF = ["AFIB"]

    [ignore]                                # codes known but deliberately not mapped
    scp = ["SR"]

Code systems: ``scp`` (PTB-XL SCP-ECG statements), ``aha`` (AHA/ACC/HRS statement codes,
SPH), ``snomed`` (SNOMED CT, PhysioNet/CinC 2021), ``ode`` (cardiosim ODE classes).
Codes that are neither mapped nor ignored are *reported*: a :class:`LabelMappingWarning`
naming the record and the codes, and listed in the returned :class:`LabelResult`.
Ignored codes produce no warning but are listed too, so nothing is dropped silently.
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, LabelMappingWarning

CODE_SYSTEMS: tuple[str, ...] = ("scp", "aha", "snomed", "ode")
_LABELMAP_DIR = Path(__file__).resolve().parent / "labelmaps"
_TOP_KEYS = {"name", "description", "classes", "ignore", *CODE_SYSTEMS}


@dataclass(frozen=True)
class LabelResult:
    """Outcome of mapping one record's codes.

    Attributes
    ----------
    labels : tuple of str
        Target classes, in the map's class order, without duplicates.
    unmapped : tuple of str
        Codes neither mapped nor ignored (these were warned about).
    ignored : tuple of str
        Codes the map lists as deliberately unmapped.
    """

    labels: tuple[str, ...]
    unmapped: tuple[str, ...]
    ignored: tuple[str, ...]


@dataclass(frozen=True)
class LabelMap:
    """A mapping from (code system, code) to target classes.

    Attributes
    ----------
    name : str
    classes : tuple of str
        Target vocabulary in output order.
    table : dict
        ``{system: {code: tuple of classes}}``.
    ignore : dict
        ``{system: frozenset of codes}`` deliberately not mapped.
    source : str
        TOML text the map was read from (for provenance in datasets).
    """

    name: str
    classes: tuple[str, ...]
    table: dict
    ignore: dict
    source: str = ""

    def map_codes(self, codes, system: str, source_id: str = "", warn: bool = True) -> LabelResult:
        """Map ``codes`` of ``system`` to classes; warn about unmapped codes.

        Parameters
        ----------
        codes : iterable of str
        system : {'scp', 'aha', 'snomed', 'ode'}
        source_id : str
            Named in the warning.
        warn : bool
            Emit :class:`LabelMappingWarning` for unmapped codes (default True).
        """
        if system not in CODE_SYSTEMS:
            raise ConfigError(f"unknown code system {system!r}; expected one of {CODE_SYSTEMS}")
        table = self.table.get(system, {})
        ignore = self.ignore.get(system, frozenset())
        found: set[str] = set()
        unmapped: list[str] = []
        ignored: list[str] = []
        for code in codes:
            code = str(code).strip()
            if not code:
                continue
            if code in table:
                found.update(table[code])
            elif code in ignore:
                ignored.append(code)
            else:
                unmapped.append(code)
        if unmapped and warn:
            warnings.warn(f"record {source_id!r}: {system} codes {unmapped} are not mapped by label map "
                          f"{self.name!r} (classes {list(self.classes)})", LabelMappingWarning, stacklevel=2)
        labels = tuple(c for c in self.classes if c in found)
        return LabelResult(labels, tuple(unmapped), tuple(ignored))

    def codes_for(self, cls: str, system: str) -> tuple[str, ...]:
        """Codes of ``system`` mapped to class ``cls``."""
        return tuple(sorted(c for c, k in self.table.get(system, {}).items() if cls in k))


def parse_label_map(text: str, name: str = "") -> LabelMap:
    """Parse label-map TOML text (format in the module docstring); ``ConfigError`` on any mistake."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"label map {name!r} is not valid TOML: {exc}") from None
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"label map {name!r}: unknown keys {sorted(unknown)}; allowed {sorted(_TOP_KEYS)}")
    classes = doc.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"label map {name!r}: 'classes' must be a non-empty list of strings, got {classes!r}")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"label map {name!r}: duplicate classes in {classes}")
    table: dict[str, dict[str, tuple[str, ...]]] = {}
    for system in CODE_SYSTEMS:
        sect = doc.get(system, {})
        if not isinstance(sect, dict):
            raise ConfigError(f"label map {name!r}: [{system}] must be a table of class = [codes]")
        inv: dict[str, list[str]] = {}
        for cls, codes in sect.items():
            if cls not in classes:
                raise ConfigError(f"label map {name!r}: [{system}] maps to class {cls!r}, "
                                  f"which is not in classes {classes}")
            if not isinstance(codes, list):
                raise ConfigError(f"label map {name!r}: [{system}].{cls} must be a list of codes, got {codes!r}")
            for code in codes:
                inv.setdefault(str(code), []).append(cls)
        table[system] = {c: tuple(k) for c, k in inv.items()}
    ign = doc.get("ignore", {})
    if not isinstance(ign, dict) or set(ign) - set(CODE_SYSTEMS):
        raise ConfigError(f"label map {name!r}: [ignore] must map code systems {CODE_SYSTEMS} to lists")
    ignore = {s: frozenset(str(c) for c in ign.get(s, [])) for s in CODE_SYSTEMS}
    for s in CODE_SYSTEMS:
        both = ignore[s] & set(table[s])
        if both:
            raise ConfigError(f"label map {name!r}: {s} codes {sorted(both)} are both mapped and ignored")
    return LabelMap(str(doc.get("name", name)), tuple(classes), table, ignore, text)


def shipped_label_maps() -> tuple[str, ...]:
    """Names of the label maps shipped with cardiosim (``labelmaps/*.toml``)."""
    return tuple(sorted(p.stem for p in _LABELMAP_DIR.glob("*.toml")))


def load_label_map(name_or_path="ten_class") -> LabelMap:
    """Load a shipped label map by name (``'ten_class'``, ``'ptbxl_superclasses'``) or a TOML file path.

    Returns a :class:`LabelMap` as is if given one.
    """
    if isinstance(name_or_path, LabelMap):
        return name_or_path
    s = str(name_or_path)
    path = Path(s)
    if not (path.suffix == ".toml" or path.exists()):
        path = _LABELMAP_DIR / f"{s}.toml"
        if not path.exists():
            raise ConfigError(f"unknown label map {s!r}; shipped maps: {shipped_label_maps()} "
                              "(or give the path of a .toml file)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read label map {str(path)!r}: {exc}") from None
    return parse_label_map(text, name=path.stem)
