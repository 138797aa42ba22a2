"""The labeled classes the ODE source can synthesize, with the criteria they encode.

Names are the shared class vocabulary of cardiosim's label maps. SNOMED CT codes are
those of the PhysioNet/CinC Challenge 2021 ``dx_mapping_scored.csv`` /
``dx_mapping_unscored.csv`` (Reyna et al. 2021); SCP codes are PTB-XL's
``scp_statements.csv`` (Wagner et al. 2020). Equivalent codes the Challenge scores as
the same diagnosis are listed after the primary one.

Interval criteria (seconds) are what the generator guarantees on noise-free output and
what ``tests/test_ode_classes.py`` measures: ``pr`` P onset → QRS onset, ``qrs`` QRS
onset → offset, ``qtc`` QT corrected with Fridericia (QT / RR^(1/3)), ``hr`` bpm.
Numbers follow the AHA/ACCF/HRS recommendations for the standardisation and
interpretation of the ECG (Surawicz et al. 2009, Rautaharju et al. 2009 parts III–V)
and the ESC AF/flutter definitions, simplified to what a dipole model can express.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClassInfo:
    """One synthesizable class.

    Attributes
    ----------
    name : str
        Shared vocabulary name ("SR", "AF", "LBBB", ...).
    kind : str
        "rhythm" or "morphology".
    description : str
    criteria : str
        The rule, in words, the generator encodes.
    snomed : tuple of str
        SNOMED CT codes (first is primary), as in the CinC 2021 headers' ``# Dx:`` line.
    scp : str
        PTB-XL SCP statement code, or "" when PTB-XL has none.
    limits : dict
        Measurable bounds ``{quantity: (low, high)}`` (s or bpm) guaranteed on
        noise-free output; ``None`` for an open side.
    """

    name: str
    kind: str
    description: str
    criteria: str
    snomed: tuple[str, ...]
    scp: str
    limits: dict = field(default_factory=dict)


# QRS from 50 ms: the global QRS (12-lead or VCG spatial velocity above 15 % of its peak)
# of the shared real normal-beat CinC 2021 records measures 56-82 ms (a clinical program's
# onset-to-offset reads longer; the normal criterion has only the upper limit)
_NORMAL_INTERVALS = {"pr": (0.12, 0.20), "qrs": (0.05, 0.11), "qtc": (0.35, 0.46)}
_NORMAL_QRS = {"qrs": (0.05, 0.11)}

# STE's 12-lead criterion is per lead, as the recommendations it follows (Rautaharju et al.,
# AHA/ACCF/HRS recommendations part IV, Circulation 2009;119:e241; the Fourth Universal
# Definition of MI uses the same cut-points): ST elevation (here at J + 60 ms) in two
# contiguous standard leads of >= STE_ST_MIN, where a lead of V2-V3 counts only from
# STE_ST_MIN_V2V3. The recommended V2-V3 cut-point depends on sex and age (0.2 mV men
# >= 40 y, 0.25 mV men < 40 y, 0.15 mV women); the model has neither, so a record labelled
# STE must be abnormal for every adult: the largest, 0.25 mV -- the mirror of the NORM
# screen's V2-V3 limit (prior.LEAD_ST_LIMITS_V2V3, 0.15 mV: the smallest, normal for every
# adult). The two labels cannot overlap (NORM <= 0.15 < 0.25 in V2-V3, <= 0.08 < 0.10 in
# the other screened leads; since 2026-12-06, before a single 0.10 mV in every lead).
STE_ST_MIN = 0.10  # mV
STE_ST_MIN_V2V3 = 0.25  # mV
STE_V2V3 = ("V2", "V3")


def ste_lead_levels(leads, margin=0.0):
    """STE's per-lead elevation cut-points (mV) for lead names ``leads``.

    Parameters
    ----------
    leads : sequence of str
        Standard lead names ("I", ..., "V6").
    margin : float, optional
        Added to every cut-point (mV): the generator builds its STE beats with one.

    Returns
    -------
    tuple of float
        :data:`STE_ST_MIN_V2V3` for V2 and V3, :data:`STE_ST_MIN` for every other lead,
        each plus ``margin`` (rounded to 1e-9 mV: 0.10 + 0.05 is 0.15, not 0.15000000000000002).
    """
    return tuple(round((STE_ST_MIN_V2V3 if n in STE_V2V3 else STE_ST_MIN) + margin, 9) for n in leads)


CLASSES: dict[str, ClassInfo] = {c.name: c for c in [
    # --- rhythms -----------------------------------------------------------------
    ClassInfo("SR", "rhythm", "normal sinus rhythm",
              "P before every QRS, regular RR with McSharry LF/HF variability, rate 60-100 bpm",
              ("426783006",), "SR", {"hr": (60.0, 100.0), **_NORMAL_INTERVALS}),
    ClassInfo("SB", "rhythm", "sinus bradycardia",
              "sinus rhythm at 40-59 bpm (< 60 bpm)", ("426177001",), "SBRAD",
              {"hr": (40.0, 60.0), **_NORMAL_INTERVALS}),
    ClassInfo("STACH", "rhythm", "sinus tachycardia",
              "sinus rhythm at 101-150 bpm (> 100 bpm)", ("427084000",), "STACH",
              {"hr": (100.0, 150.0), **_NORMAL_QRS}),
    ClassInfo("AF", "rhythm", "atrial fibrillation",
              "no P waves; fibrillatory f-waves 4-9 Hz, 0.03-0.12 mV; RR intervals independent, "
              "ventricular rate 50-170 bpm and RR coefficient of variation 0.08-0.45 drawn jointly "
              "from the prior fitted to CPSC 2021 AF episodes (rhythm_prior.py)",
              ("164889003",), "AFIB", {"hr": (50.0, 170.0), **_NORMAL_QRS}),
    ClassInfo("AFL", "rhythm", "atrial flutter",
              "no P waves; saw-tooth flutter waves at 250-350 /min, 0.06-0.27 mV (dipole; lead II's "
              "negative F-wave component, 0.161 +- 0.052 mV published, Liu et al. 2021), "
              "negative in the inferior leads; every QRS a conducted flutter wave (its nadir "
              "0.20-0.32 s before the R): fixed 2:1, 3:1 or 4:1 conduction (regular RR) or variable "
              "2:1/4:1 (RR of 2 or 4 atrial cycles)",
              ("164890007",), "AFLT", {"hr": (62.5, 175.0), **_NORMAL_QRS}),
    ClassInfo("PVC", "rhythm", "premature ventricular complexes",
              "sinus rhythm with ectopic ventricular beats: no P, wide QRS (>= 0.12 s, "
              "0.14-0.17 s), T discordant to the QRS, coupling 0.45-0.85 RR, full compensatory "
              "pause (pre + post = 2 RR); ectopics follow FECGSYN's two-state Markov chain",
              ("427172004", "17338001"), "PVC", {"pvc_qrs": (0.12, None)}),
    ClassInfo("PAC", "rhythm", "premature atrial complexes",
              "sinus rhythm with early beats of an ectopic (inverted-axis) P wave, normal QRS, "
              "coupling 0.45-0.88 RR (fitted to MIT-BIH/CPSC 2021 annotated PACs), non-compensatory "
              "pause (sinus node reset)",
              ("284470004", "63593006"), "PAC", dict(_NORMAL_QRS)),
    ClassInfo("IAVB", "rhythm", "first-degree AV block",
              "sinus rhythm with PR > 0.20 s (0.22-0.32 s), every P conducted",
              ("270492004",), "1AVB", {"pr": (0.20, None), **_NORMAL_QRS}),
    # --- morphologies -------------------------------------------------------------
    ClassInfo("NORM", "morphology", "normal ECG",
              "patient drawn from the fitted normal prior; PR 0.12-0.20 s, QRS < 0.11 s, "
              "QTc 0.35-0.46 s", (), "NORM", dict(_NORMAL_INTERVALS)),
    ClassInfo("LBBB", "morphology", "complete left bundle branch block",
              "QRS >= 0.12 s (0.13-0.17 s), septum activated right to left (initial forces "
              "left-anterior, no septal q), then a slow left-posterior LV free wall: broad notched or "
              "slurred R in I, V6, deep S in V1, ST-T discordant to the QRS", ("164909002", "733534002"), "CLBBB",
              {"qrs": (0.12, None)}),
    ClassInfo("RBBB", "morphology", "complete right bundle branch block",
              "QRS >= 0.12 s (0.12-0.15 s), late terminal forces directed right-anterior "
              "(rSR' in V1, wide S in I/V6)", ("59118001", "713427006"), "CRBBB",
              {"qrs": (0.12, None)}),
    ClassInfo("STE", "morphology", "ST elevation",
              "ST segment (J + 60 ms) shifted 0.15-0.30 mV along the QRS axis, more (up to 0.6 mV) "
              "where needed for >= 0.15 mV in two contiguous standard leads (V2-V3: >= 0.30 mV; "
              "the criterion: >= 0.10 mV, in V2-V3 >= 0.25 mV, Rautaharju et al. 2009)", ("164931005",),
              "STE_", {**_NORMAL_QRS, "st": (0.10, None)}),
    ClassInfo("STD", "morphology", "ST depression",
              "ST segment (J + 60 ms) shifted 0.15-0.25 mV against the QRS axis, more (up to 0.6 mV) "
              "where needed for >= 0.08 mV depression in two contiguous standard leads", ("429622005",),
              "STD_", {**_NORMAL_QRS, "st": (None, -0.10)}),
    ClassInfo("TINV", "morphology", "T-wave inversion",
              "T inverted (-0.13...-0.45 mV) in two contiguous leads of one territory (inferior, "
              "anterior or lateral), the patient's own T moved away from it, upright elsewhere "
              "(CinC 2021 scores 'T wave abnormal' 164934002 as a separate class)",
              ("59931005",), "INVT", dict(_NORMAL_QRS)),
    ClassInfo("LVH", "morphology", "left ventricular hypertrophy",
              "leftward and posterior QRS forces x1.8-2.6 of normal, inferior ones kept (max spatial "
              "QRS vector > 2.5 mV), "
              "QRS 5-20 % longer than the patient's normal one where the beat stays delineable "
              "(else as drawn)", ("164873001", "55827005"), "LVH",
              {"qrs": (0.05, 0.12), "qrs_peak_mv": (2.5, None)}),
]}

RHYTHMS = tuple(n for n, c in CLASSES.items() if c.kind == "rhythm")
MORPHOLOGIES = tuple(n for n, c in CLASSES.items() if c.kind == "morphology")

# Long names accepted by synthesize(rhythm=..., morphology=...).
RHYTHM_ALIASES = {"sinus": "SR", "normal": "SR", "bradycardia": "SB", "tachycardia": "STACH",
                  "af": "AF", "afib": "AF", "flutter": "AFL", "afl": "AFL", "pvc": "PVC",
                  "pac": "PAC", "iavb": "IAVB", "1avb": "IAVB"}
MORPHOLOGY_ALIASES = {"normal": "NORM", "norm": "NORM", "lbbb": "LBBB", "rbbb": "RBBB",
                      "ste": "STE", "std": "STD", "tinv": "TINV", "lvh": "LVH"}


# a record of a morphology class whose beat another class reshapes more is not an example
# of it: a bundle branch block rebuilds the whole QRS-T, AF / flutter remove the P wave
_DOMINANT = ("LBBB", "RBBB", "AF", "AFL")


def class_record_filter(name: str, system: str):
    """Selector of real records showing morphology class ``name`` (a class prior's records).

    Parameters
    ----------
    name : str — a morphology class of :data:`CLASSES` other than NORM (NORM records are
        those labelled only NORM, selected by their labels)
    system : {"scp", "snomed"} — the records' code system (PTB-XL SCP statements; CinC 2021
        SNOMED CT)

    Returns
    -------
    callable(codes) -> (bool, str) — whether a record with these codes is one of the class's,
    and why a record carrying the class's code is left out ("" otherwise): it also carries a
    code of a class that reshapes its beat more (:data:`_DOMINANT`: LBBB, RBBB, AF, AFL),
    unless that class is ``name`` itself.
    """
    from ..errors import ConfigError

    known = [n for n in MORPHOLOGIES if n != "NORM"]
    if name not in known:
        raise ConfigError(f"unknown class {name!r} for a class prior; known classes: {', '.join(known)} "
                          f"(NORM is the default prior: leave --class out)")
    if system not in ("scp", "snomed"):
        raise ConfigError(f"code system must be 'scp' or 'snomed', got {system!r}")

    def codes_of(c):
        info = CLASSES[c]
        return {info.scp} - {""} if system == "scp" else set(info.snomed)

    mine = codes_of(name)
    others = {c: codes_of(c) for c in _DOMINANT if c != name}

    def select(codes):
        cs = set(map(str, codes))
        if not cs & mine:
            return False, ""
        also = sorted(c for c, k in others.items() if cs & k)
        return (False, "also " + ", ".join(also)) if also else (True, "")

    return select
