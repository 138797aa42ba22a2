"""Cardiac sources: readers of real ECG (WFDB, PTB-XL, SPH, arrays), label maps, and the
CardiacSource type every generator consumes."""

from ._sequence import RecordingSequence
from .adapter import estimate_heart_rate, recording_to_source
from .base import CardiacSource
from .labels import LabelMap, LabelResult, load_label_map, parse_label_map, shipped_label_maps
from .open import SOURCE_KINDS, open_source
from .ptbxl import read_ptbxl, scp_label_map_toml
from .recording import (REQUIRED_12, Recording, check_leads, check_limb_consistency, from_array,
                        resample)
from .sph import read_sph
from .synthetic import synthetic_source
from .wfdb_reader import open_wfdb, read_wfdb

__all__ = [
    "CardiacSource", "LabelMap", "LabelResult", "REQUIRED_12", "Recording", "RecordingSequence",
    "SOURCE_KINDS", "check_leads", "check_limb_consistency", "from_array", "load_label_map",
    "open_source", "open_wfdb", "parse_label_map", "read_ptbxl", "read_sph", "read_wfdb",
    "estimate_heart_rate", "recording_to_source", "resample", "scp_label_map_toml", "shipped_label_maps",
    "synthetic_source",
]
