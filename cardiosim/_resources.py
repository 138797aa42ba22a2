"""Locate the data files shipped with cardiosim (torso geometry, electrode layouts).

The repository keeps them in ``geometry/`` at its root (plain, reviewable files); the
wheel carries the same folder as ``cardiosim/_geometry`` (pyproject.toml,
``force-include``). An installed package finds them inside itself; a source checkout or
an editable install finds them at the repository root.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataFormatError

_PACKAGE_DIR = Path(__file__).resolve().parent


def geometry_dir() -> Path:
    """The folder holding cardiosim's geometry data files."""
    for candidate in (_PACKAGE_DIR / "_geometry", _PACKAGE_DIR.parent / "geometry"):
        if candidate.is_dir():
            return candidate
    raise DataFormatError(f"cardiosim's geometry data are missing: neither {_PACKAGE_DIR / '_geometry'} nor "
                          f"{_PACKAGE_DIR.parent / 'geometry'} exists; reinstall the package")


def geometry_file(name: str) -> Path:
    """Path of one geometry data file, with a clear error naming it when it is absent."""
    path = geometry_dir() / name
    if not path.is_file():
        raise DataFormatError(f"geometry data file {name!r} not found in {path.parent}")
    return path
