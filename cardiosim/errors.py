"""Exceptions raised by cardiosim.

Every error names the offending input (key, lead, electrode, file, value) so a user can
fix it without reading the source. All inherit from :class:`CardiosimError`; most also
inherit from the builtin a caller would naturally catch (``ValueError``, ``OSError``).
"""

from __future__ import annotations


class CardiosimError(Exception):
    """Base class of every error cardiosim raises on purpose."""


class ConfigError(CardiosimError, ValueError):
    """A parameter, option or recipe key is unknown, of the wrong type or impossible."""


class GeometryError(CardiosimError, ValueError):
    """Bad geometry: open or inverted mesh, millimetre units, electrode off the torso,
    heart outside the torso."""


class LeadError(CardiosimError, ValueError):
    """Unknown, missing or inconsistent lead or electrode name."""


class SignalError(CardiosimError, ValueError):
    """A signal array is malformed: NaN/inf samples, wrong shape, empty."""


class SamplingRateError(SignalError):
    """A sampling rate differs from the one expected."""


class DataFormatError(CardiosimError, OSError):
    """A file is missing, truncated, corrupt or not in the expected layout."""


class LabelMappingWarning(UserWarning):
    """Source label codes that the active label map does not map to any class."""


class ConsistencyWarning(UserWarning):
    """Redundant data disagree (for example lead III != II - I in a record)."""
