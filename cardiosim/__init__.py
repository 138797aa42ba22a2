"""cardiosim: physics-based simulator of wearable (shirt) ECG."""

from ._version import __version__

__all__ = ["__version__"]
