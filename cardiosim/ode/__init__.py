"""ODE beat synthesis: Gaussian-wave dipole beats (Sameni 2007), McSharry's ECGSYN,
RR tachograms, rhythm and morphology classes, and patient priors fitted to real beats.

Contract (docs/ARCHITECTURE.md): ``synthesize(duration, fs, rng, ...) -> Beats`` with
``Beats.vcg`` float64 ``[3, T]`` in Frank axes (X left, Y feet, Z back), mV.
"""

from .classes import CLASSES, MORPHOLOGIES, RHYTHMS, ClassInfo
from .dipole import render_dipole, render_dipole_batch
from .ecgsyn import ecgsyn
from .fit import FitResult, fit_beat, fit_prior
from .model import WAVES, Patient, default_patient
from .prior import Prior, default_prior, read_prior, sample_patient, write_prior
from .rhythm import rr_process, rr_tachogram
from .synth import ANNOTATION_KEYS, Beats, synthesize, synthesize_batch

__all__ = [
           "ANNOTATION_KEYS",
           "CLASSES",
           "MORPHOLOGIES",
           "RHYTHMS",
           "WAVES",
           "Beats",
           "ClassInfo",
           "FitResult",
           "Patient",
           "Prior",
           "default_patient",
           "default_prior",
           "ecgsyn",
           "fit_beat",
           "fit_prior",
           "read_prior",
           "render_dipole",
           "render_dipole_batch",
           "rr_process",
           "rr_tachogram",
           "sample_patient",
           "synthesize",
           "synthesize_batch",
           "write_prior",
]
