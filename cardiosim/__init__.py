"""cardiosim: physics-based simulator of wearable (shirt) ECG."""

from ._version import __version__

__all__ = ["__version__", "parameters"]


def parameters(ds):
    """Per-record simulation parameters of a cardiosim dataset as a ``pandas.DataFrame``
    (:func:`cardiosim.dataset.schema.parameters`)."""
    from .dataset.schema import parameters as _parameters

    return _parameters(ds)
