"""A user's body and electrodes from files: torso meshes and electrode coordinates.

* :func:`read_torso` reads a closed triangle surface (OBJ, PLY, STL, VTK/VTU, OFF -- any
  format meshio reads) in explicit ``units``, rewinds it outward whatever the file's
  winding, and validates it loudly (:func:`cardiosim.geometry.topology.prepare_surface`:
  open, non-manifold, several pieces, self-intersecting, degenerate triangles; plus an
  implausible size, the usual sign of wrong units).
* :func:`read_electrodes` reads electrode coordinates (CSV ``name,x,y,z`` or TOML) in
  explicit units, snaps them onto a torso and names any electrode lying more than 1 cm
  off the surface.

Units are never guessed: a mesh file carries none, and a millimetre torso read as metres
is 1.6 km tall. The mesh must be in the patient LPS frame (+x left, +y posterior,
+z superior); its origin may be anywhere.

Heart and landmarks of a user mesh (used to place the heart dipole and the named layouts
``standard12`` / ``frank`` that real and synthetic sources are estimated with) come, in
order of precedence, from the arguments, from a JSON sidecar ``<mesh file>.json``, or
from :func:`proportional_anatomy`: the built-in adult torso's heart and landmarks carried
over by the affine map between the two bounding boxes (landmarks then projected onto the
user's surface). On the parametric female torso this puts the heart 4.4 mm from its own
(landmarks median 2.4 mm, worst 12 mm; standard-12 electrodes within 12 mm); on the Utah torso tank it puts
the heart 49 mm from the centroid of the electrode cage around the real heart (the tank
is not a human chest), so for a real body pass the heart position if you know it.
"""

from __future__ import annotations

import json
import tomllib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError, GeometryError
from ._kernels import TriangleGrid, closest_point_brute_numpy
from .layouts import ElectrodeLayout
from .mesh import Heart, TorsoMesh
from .surface import ON_SURFACE_TOL
from .topology import prepare_surface

#: Length of one unit in metres.
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
#: Plausible largest extent of a body surface (m): a neonate's trunk to a whole adult body.
BODY_EXTENT = (0.1, 2.5)


def _unit_factor(units, what: str) -> float:
    if units not in UNITS:
        raise ConfigError(f"{what}: units must be one of {', '.join(map(repr, UNITS))}, got {units!r}")
    return UNITS[units]


def check_body_size(vertices_m: np.ndarray, units: str, name: str) -> None:
    """Raise :class:`GeometryError` unless the largest extent lies in :data:`BODY_EXTENT`,
    suggesting the units that would make it plausible."""
    ext = np.ptp(vertices_m, axis=0)
    size = float(ext.max())
    lo, hi = BODY_EXTENT
    if lo <= size <= hi:
        return
    raw = size / UNITS[units]
    better = [u for u, f in UNITS.items() if u != units and lo <= raw * f <= hi]
    hint = f": did you mean units={better[0]!r}?" if better else "; check the file's units"
    how = "tall" if int(np.argmax(ext)) == 2 else "across"
    raise GeometryError(f"{name}: torso is {size:,.4g} m {how} read with units={units!r} (a body is "
                        f"{lo:g}-{hi:g} m){hint}")


def proportional_anatomy(vertices: np.ndarray, faces: np.ndarray) -> tuple[Heart, dict]:
    """Heart and landmarks of the built-in adult torso carried onto another LPS surface.

    The affine map taking the adult torso's bounding box onto this surface's carries the
    heart centre and the landmarks over; landmarks that lie on the adult surface (all but
    ``body_axis``) are then moved to the closest point of this surface. A heuristic for a
    torso-shaped mesh without anatomy; see the module docstring for its accuracy.

    Returns
    -------
    heart : Heart (identity orientation); landmarks : dict name -> ndarray (3,) metres
    """
    lo, hi, heart, names, on_surface, axis = _reference_anatomy()
    lo2, hi2 = vertices.min(0), vertices.max(0)

    def carry(p):
        return (p - lo) / (hi - lo) * (hi2 - lo2) + lo2

    tri = vertices[faces]
    pts = carry(on_surface)
    idx, bary, _ = TriangleGrid(tri, 0.1).query(pts)     # carried landmarks lie within centimetres
    miss = idx < 0
    if np.any(miss):
        idx[miss], bary[miss], _ = closest_point_brute_numpy(pts[miss], tri)
    landmarks = dict(zip(names, np.einsum("nk,nkj->nj", bary, tri[idx])))
    landmarks["body_axis"] = carry(axis)
    return Heart(carry(heart)), landmarks


@lru_cache(maxsize=1)
def _reference_anatomy():
    """Bounding box, heart centre and landmarks of the built-in adult torso (built once)."""
    from .torso import make_torso

    ref = make_torso()
    names = tuple(k for k in ref.landmarks if k != "body_axis")
    return (ref.vertices.min(0), ref.vertices.max(0), ref.heart.position, names,
            np.array([ref.landmarks[k] for k in names]), ref.landmarks["body_axis"])


def _read_triangles(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import meshio

    try:
        mesh = meshio.read(path)
    except Exception as exc:  # meshio raises many kinds of errors on bad files
        raise DataFormatError(f"cannot read torso mesh {str(path)!r}: {exc}") from exc
    blocks = []
    for c in mesh.cells:
        if c.type == "triangle":
            blocks.append(np.asarray(c.data, dtype=np.int64))
        elif c.type == "quad":           # split along the 0-2 diagonal, keeping the winding
            q = np.asarray(c.data, dtype=np.int64)
            blocks += [q[:, [0, 1, 2]], q[:, [0, 2, 3]]]
        elif c.type not in ("vertex", "line"):
            raise GeometryError(f"{path}: cells of type {c.type!r} are not a surface of triangles or quads "
                                "(a torso is its boundary surface, not a volume mesh)")
    if not blocks:
        raise GeometryError(f"{path}: no triangle cells (found {[c.type for c in mesh.cells]})")
    points = np.asarray(mesh.points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise GeometryError(f"{path}: points have shape {points.shape}, expected (n, 3)")
    if points.shape[1] == 2:
        raise GeometryError(f"{path}: the mesh is two-dimensional; a torso needs x, y and z")
    if not np.all(np.isfinite(points)):
        raise GeometryError(f"{path}: vertices contain NaN or infinite coordinates")
    return points, np.concatenate(blocks)


def read_torso(path, *, units: str, name: str | None = None, heart=None, landmarks: dict | None = None,
               check_intersections: bool = True) -> TorsoMesh:
    """Read a user's torso surface from a mesh file.

    Parameters
    ----------
    path : str or Path
        OBJ, PLY, STL, VTK, VTU, OFF or any surface format meshio reads; triangles or quads
        (quads are split in two; point and line cells, which carry no surface, are
        ignored; volume or polygon cells raise). Vertices in the LPS frame.
    units : {'m', 'cm', 'mm'}
        Unit of the file's coordinates. Required: a mesh file does not say, and a wrong
        guess makes every electrode position wrong by 10-1000x.
    name : str, optional
        Defaults to the file name without extension.
    heart : Heart or sequence of 3 floats, optional
        A :class:`Heart` (metres, as everywhere in cardiosim) or the heart centre in the
        file's ``units``. Default: the sidecar's ``heart_position``, else
        :func:`proportional_anatomy`.
    landmarks : dict of str -> (3,), optional
        In the file's ``units``; added to (and overriding) the sidecar's and the
        proportional ones.
    check_intersections : bool
        Test that the surface does not cross itself (default True; a 100k-triangle scan
        takes about a second).

    Returns
    -------
    TorsoMesh
        Vertices in metres, faces counter-clockwise seen from outside (outward normals)
        whatever the file's winding; duplicated vertices (STL) merged.

    Raises
    ------
    ConfigError
        Unknown ``units``.
    DataFormatError
        File missing or unreadable; bad sidecar.
    GeometryError
        Open (not watertight), non-manifold, several pieces, non-orientable, self-intersecting,
        degenerate triangles, implausible size ("torso is 1,600 m tall: did you mean
        units='mm'?"), heart outside the surface.

    Notes
    -----
    The sidecar ``<path>.json`` (e.g. ``torso.obj.json``) may hold ``landmarks``
    ({name: [x, y, z]}), ``heart_position`` ([x, y, z]) and ``heart_orientation`` (3x3
    rotation heart frame -> torso frame), positions in the file's ``units``.
    """
    path = Path(path)
    name = name or path.stem
    factor = _unit_factor(units, f"torso mesh {str(path)!r}")
    if not path.is_file():
        raise DataFormatError(f"torso mesh file {str(path)!r} not found")
    points, faces = _read_triangles(path)
    if faces.min() < 0 or faces.max() >= len(points):
        raise GeometryError(f"{path}: face indices must lie in [0, {len(points) - 1}]")
    vertices = points * factor
    check_body_size(vertices[np.unique(faces)], units, name)
    vertices, faces = prepare_surface(vertices, faces, name=name, unit=units, to_unit=factor,
                                      check_intersections=check_intersections)

    side = path.with_name(path.name + ".json")
    meta = {}
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"cannot read the torso sidecar {str(side)!r}: {exc}") from None
        unknown = set(meta) - {"landmarks", "heart_position", "heart_orientation"}
        if unknown:
            raise DataFormatError(f"{side}: unknown keys {sorted(unknown)}; expected landmarks, heart_position, "
                                  "heart_orientation")
    default_heart, lm = proportional_anatomy(vertices, faces)
    for k, p in {**meta.get("landmarks", {}), **(landmarks or {})}.items():
        lm[k] = np.asarray(p, dtype=np.float64) * factor
    if heart is None and "heart_position" in meta:
        heart = Heart(np.asarray(meta["heart_position"], dtype=np.float64) * factor,
                      np.asarray(meta.get("heart_orientation", np.eye(3)), dtype=np.float64))
    elif heart is not None and not isinstance(heart, Heart):
        heart = Heart(np.asarray(heart, dtype=np.float64) * factor)
    guessed = heart is None
    try:
        return TorsoMesh(vertices, faces, name=name, landmarks=lm, heart=default_heart if guessed else heart)
    except GeometryError as exc:
        if guessed and "heart" in str(exc):
            raise GeometryError(f"{exc} (the default heart position is carried from the built-in torso by "
                                "bounding box; pass heart=[x, y, z] in the file's units)") from None
        raise


# --------------------------------------------------------------------------------- electrodes
_NAME_COLUMNS = ("name", "electrode", "label", "channel")


def _electrodes_from_csv(path: Path, units):
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype={c: str for c in _NAME_COLUMNS}, skipinitialspace=True)
    except Exception as exc:  # pandas raises several kinds on malformed files
        raise DataFormatError(f"cannot read electrode file {str(path)!r}: {exc}") from exc
    cols = {c.strip().lower(): c for c in table.columns}
    name_col = next((cols[c] for c in _NAME_COLUMNS if c in cols), None)
    if name_col is None:
        raise DataFormatError(f"{path}: no electrode name column (one of {', '.join(_NAME_COLUMNS)}); "
                              f"columns are {list(table.columns)}")
    xyz, file_units = [], set()
    for axis in "xyz":
        hits = [c for c in cols if c == axis or (c.startswith(axis + "_") and c[2:] in UNITS)]
        if len(hits) != 1:
            raise DataFormatError(f"{path}: need exactly one column for {axis} ({axis} or {axis}_mm, {axis}_cm, "
                                  f"{axis}_m); columns are {list(table.columns)}")
        xyz.append(cols[hits[0]])
        if hits[0] != axis:
            file_units.add(hits[0][2:])
    if len(file_units) > 1:
        raise DataFormatError(f"{path}: coordinate columns mix units {sorted(file_units)}")
    names = table[name_col].astype(str).str.strip().tolist()
    try:
        pos = table[xyz].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise DataFormatError(f"{path}: coordinates must be numbers: {exc}") from None
    return names, pos, (file_units.pop() if file_units else None), None


def _electrodes_from_toml(path: Path):
    try:
        spec = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataFormatError(f"cannot read electrode file {str(path)!r}: {exc}") from None
    unknown = set(spec) - {"name", "description", "units", "electrodes"}
    if unknown:
        raise DataFormatError(f"{path}: unknown keys {sorted(unknown)}; expected name, description, units, "
                              "electrodes")
    els = spec.get("electrodes")
    if not isinstance(els, dict) or not els:
        raise DataFormatError(f"{path}: needs an [electrodes] table of NAME = [x, y, z]")
    names, pos = [], []
    for k, p in els.items():
        if not isinstance(p, list) or len(p) != 3 or not all(isinstance(x, (int, float)) for x in p):
            raise DataFormatError(f"{path}: electrode {k!r} must be [x, y, z] (three numbers), got {p!r}")
        names.append(k)
        pos.append(p)
    return names, np.asarray(pos, dtype=np.float64), spec.get("units"), spec.get("name")


def read_electrodes(path, torso: TorsoMesh, *, units: str | None = None, name: str | None = None,
                    max_distance: float = ON_SURFACE_TOL) -> ElectrodeLayout:
    """Read electrode coordinates and snap them onto ``torso``.

    Parameters
    ----------
    path : str or Path
        ``.csv`` with a header: a name column (``name``, ``electrode``, ``label`` or ``channel``) and
        ``x, y, z`` (or ``x_mm, y_mm, z_mm``, ``_cm``, ``_m``: the suffix gives the units);
        or ``.toml``::

            name = "my shirt"
            units = "mm"
            [electrodes]
            RA = [-180.0, -60.0, 150.0]

        Coordinates in the torso's LPS frame.
    torso : TorsoMesh
    units : {'m', 'cm', 'mm'}, optional
        Required unless the file states them (column suffix or ``units`` key); must agree
        with the file when both do.
    name : str, optional
        Layout name (default: the TOML ``name`` or the file name).
    max_distance : float, metres
        Electrodes farther than this from the surface raise (default 1 cm).

    Returns
    -------
    ElectrodeLayout
        Electrodes in file order at their closest surface points.

    Raises
    ------
    GeometryError
        Naming every electrode farther than ``max_distance`` from the surface, with its
        distance.
    DataFormatError, ConfigError
        Unreadable file, missing columns, duplicate names, missing or conflicting units.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"electrode file {str(path)!r} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        names, pos, file_units, file_name = _electrodes_from_csv(path, units)
    elif suffix == ".toml":
        names, pos, file_units, file_name = _electrodes_from_toml(path)
    else:
        raise DataFormatError(f"electrode file {str(path)!r}: expected .csv or .toml")
    if units is not None and file_units is not None and units != file_units:
        raise ConfigError(f"{path}: the file says units={file_units!r} but units={units!r} was given")
    units = units if units is not None else file_units
    if units is None:
        raise ConfigError(f"{path}: electrode coordinates need units ('m', 'cm' or 'mm'): pass units= "
                          "(--electrode-units on the command line) or name the columns x_mm, y_mm, z_mm")
    factor = _unit_factor(units, f"electrode file {str(path)!r}")
    if len(names) == 0:
        raise DataFormatError(f"{path}: no electrodes")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataFormatError(f"{path}: duplicate electrode names {dup}")
    if not np.all(np.isfinite(pos)):
        bad = names[int(np.argmax(~np.isfinite(pos).all(axis=1)))]
        raise DataFormatError(f"{path}: electrode {bad!r} has a missing or non-finite coordinate")
    proj = snap_to_surface(torso, pos * factor, names, max_distance=max_distance,
                           context=f"{path}: ", hint=f"check the units ({units!r}) and that the electrodes and "
                                                     "the mesh share a frame")
    return ElectrodeLayout(name or file_name or path.stem, tuple(names), proj)


def snap_to_surface(torso: TorsoMesh, positions: np.ndarray, names=None, *, max_distance: float = ON_SURFACE_TOL,
                    context: str = "", hint: str = "check units (metres) and frame") -> np.ndarray:
    """Closest surface points of electrodes, naming every one farther than ``max_distance``.

    Parameters
    ----------
    torso : TorsoMesh
    positions : ndarray, shape (n, 3), metres
    names : sequence of n str, optional
        Electrode names for the message (default: their indices).
    max_distance : float, metres
    context, hint : str
        Prefix and advice of the error message.

    Returns
    -------
    ndarray (n, 3), metres, on the surface.

    Raises
    ------
    GeometryError
        ``"electrode off the surface of torso 'x' (allowed 1 cm): 'V3' is 2.5 cm away"``.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise GeometryError(f"{context}electrode positions must have shape (n, 3) in metres, got {pos.shape}")
    names = [str(i) for i in range(len(pos))] if names is None else list(names)
    bad = ~np.isfinite(pos).all(axis=1)
    if np.any(bad):
        raise GeometryError(f"{context}electrode {names[int(np.argmax(bad))]!r} has a NaN or infinite coordinate")
    proj, _, _, dist = torso.closest_point(pos)
    off = np.nonzero(dist > max_distance)[0]
    if len(off):
        off = off[np.argsort(-dist[off])]
        listed = ", ".join(f"{names[i]!r} is {dist[i] * 100:.1f} cm away" for i in off[:8])
        more = f" and {len(off) - 8} more" if len(off) > 8 else ""
        raise GeometryError(f"{context}electrode{'s' if len(off) > 1 else ''} off the surface of torso "
                            f"{torso.name!r} (allowed {max_distance * 100:g} cm): {listed}{more}; {hint}")
    return proj
