"""Electrode layouts: named electrodes at anatomical places on a torso.

Layouts are TOML data files in ``geometry/layouts/`` (plain, reviewable), each electrode
placed by a rule on the torso's landmarks, so a layout follows the body when its shape
changes. Rules (one per electrode, resolved in dependency order):

* ``{ landmark = "ics4_sternal_right" }`` -- at a landmark.
* ``{ line = "<landmark>", level_of = "<electrode or landmark>" | [names] }`` -- where a
  horizontal ray from the body axis through the landmark's azimuth meets the surface at
  the height of the named point(s) (mean height for a list).
* ``{ midpoint = ["V2", "V4"] }`` -- midway, landed on the surface by a horizontal ray.
* ``{ angle_between = ["E", "A"], level_of = "E" }`` -- at the mean azimuth (about the
  body axis) of two electrodes.

An electrode that cannot be placed (unknown landmark, ray missing the surface) raises
:class:`~cardiosim.errors.GeometryError` naming it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._resources import geometry_dir
from ..errors import ConfigError, GeometryError
from .mesh import TorsoMesh
from .surface import ON_SURFACE_TOL, displace_on_surface, intercostal_spacing


@dataclass(frozen=True, eq=False)
class ElectrodeLayout:
    """Electrodes at positions on a torso surface.

    Attributes
    ----------
    name : str
    electrodes : tuple of str, length n
    positions : ndarray, shape (n, 3), float64, metres (LPS), on the torso surface
    """

    name: str
    electrodes: tuple[str, ...]
    positions: np.ndarray

    def __post_init__(self):
        pos = np.array(self.positions, dtype=np.float64)
        els = tuple(str(e) for e in self.electrodes)
        if pos.shape != (len(els), 3):
            raise GeometryError(f"layout {self.name!r}: positions shape {pos.shape} does not match "
                                f"{len(els)} electrodes")
        if len(set(els)) != len(els):
            raise GeometryError(f"layout {self.name!r}: duplicate electrode names {els}")
        if not np.all(np.isfinite(pos)):
            raise GeometryError(f"layout {self.name!r}: positions contain NaN or infinite values")
        pos.setflags(write=False)
        object.__setattr__(self, "electrodes", els)
        object.__setattr__(self, "positions", pos)

    def index(self, names) -> np.ndarray:
        from ..errors import LeadError
        out = []
        for n in names:
            if n not in self.electrodes:
                raise LeadError(f"electrode {n!r} is not in layout {self.name!r} {self.electrodes}")
            out.append(self.electrodes.index(n))
        return np.asarray(out, dtype=np.intp)

    def position(self, name: str) -> np.ndarray:
        """Position (3,) m of one electrode."""
        return self.positions[self.index([name])[0]]

    def with_positions(self, positions: np.ndarray, name: str | None = None) -> "ElectrodeLayout":
        return ElectrodeLayout(name or self.name, self.electrodes, positions)

    def moved(self, torso: TorsoMesh, offsets: dict, name: str | None = None) -> "ElectrodeLayout":
        """New layout with ``offsets {electrode: (3,) m}`` applied tangentially on ``torso``."""
        off = np.zeros_like(self.positions)
        for k, v in offsets.items():
            off[self.index([k])[0]] = np.asarray(v, dtype=float)
        return self.with_positions(displace_on_surface(torso, self.positions, off), name)


def move_intercostal(torso: TorsoMesh, layout: ElectrodeLayout, electrodes, spaces: float) -> ElectrodeLayout:
    """Move ``electrodes`` up (``spaces`` > 0) or down by a number of intercostal spaces.

    The step is the torso's intercostal spacing at the sternal border; e.g. V1/V2 placed
    two spaces too high (2nd ICS) is ``move_intercostal(t, layout, ["V1", "V2"], 2)``
    (the commonest precordial error, Wenger & Kligfield 1996, PHYSICS.md section 3).
    """
    dz = spaces * intercostal_spacing(torso)
    return layout.moved(torso, {e: (0.0, 0.0, dz) for e in electrodes},
                        name=f"{layout.name}+{'/'.join(electrodes)}{spaces:+g}ics")


def layout_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (geometry_dir() / "layouts").glob("*.toml")))


def _load_spec(name_or_path) -> dict:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = geometry_dir() / "layouts" / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown electrode layout {name_or_path!r}; known layouts: {', '.join(layout_names())}")
    elif not path.is_file():
        raise ConfigError(f"electrode layout file {str(path)!r} not found")
    with open(path, "rb") as fh:
        spec = tomllib.load(fh)
    unknown = set(spec) - {"name", "description", "order", "electrodes"}
    if unknown:
        raise ConfigError(f"layout {str(path)!r}: unknown keys {sorted(unknown)}")
    return spec


_RULE_KEYS = {"landmark", "line", "level_of", "midpoint", "angle_between"}


def make_layout(name, torso: TorsoMesh) -> ElectrodeLayout:
    """Place a named layout (``standard12``, ``mason_likar``, ``shirt12``, ``frank``, ``easi``,
    ``patch``) or a layout TOML file on ``torso`` by its anatomical rules.

    Returns
    -------
    ElectrodeLayout with electrodes in the file's ``order`` and positions on the surface.
    """
    spec = _load_spec(name)
    rules = spec.get("electrodes", {})
    order = list(spec.get("order", rules))
    if set(order) != set(rules):
        raise ConfigError(f"layout {spec.get('name')!r}: order {order} does not list exactly the electrodes {list(rules)}")
    lm = torso.landmarks
    axis = np.asarray(lm.get("body_axis", np.zeros(3)), dtype=float)
    placed: dict[str, np.ndarray] = {}
    lname = spec.get("name", str(name))

    def fail(el, why):
        raise GeometryError(f"layout {lname!r}: electrode {el!r} cannot be placed on torso {torso.name!r}: {why}")

    def point(el, ref):
        if ref in placed:
            return placed[ref]
        if ref in rules and ref not in placed:
            resolve(ref, stack=(el,))
            return placed[ref]
        if ref in lm:
            return np.asarray(lm[ref], dtype=float)
        fail(el, f"no landmark or electrode named {ref!r}")

    def horizontal_hit(el, xy_dir, z):
        d = np.array([xy_dir[0], xy_dir[1], 0.0])
        if np.linalg.norm(d) < 1e-12:
            fail(el, "direction from the body axis is undefined")
        hit = torso.ray_hit(np.array([axis[0], axis[1], z]), d)
        if hit is None:
            fail(el, f"a horizontal ray at z={z:.3f} m toward {d[:2].round(3).tolist()} misses the surface")
        return hit

    def resolve(el, stack=()):
        if el in stack:
            fail(el, f"circular rule via {stack}")
        rule = rules[el]
        if not isinstance(rule, dict) or not set(rule) <= _RULE_KEYS or not rule:
            fail(el, f"bad rule {rule!r}; keys must be among {sorted(_RULE_KEYS)}")
        if "landmark" in rule:
            if rule["landmark"] not in lm:
                fail(el, f"the torso has no landmark {rule['landmark']!r}")
            p = np.asarray(lm[rule["landmark"]], dtype=float)
        elif "midpoint" in rule:
            a, b = (point(el, r) for r in rule["midpoint"])
            m = 0.5 * (a + b)
            p = horizontal_hit(el, m[:2] - axis[:2], m[2])
        elif "line" in rule or "angle_between" in rule:
            refs = rule.get("level_of")
            if refs is None:
                fail(el, "rule needs level_of")
            refs = [refs] if isinstance(refs, str) else list(refs)
            z = float(np.mean([point(el, r)[2] for r in refs]))
            if "line" in rule:
                q = point(el, rule["line"])
                p = horizontal_hit(el, q[:2] - axis[:2], z)
            else:
                a, b = (point(el, r)[:2] - axis[:2] for r in rule["angle_between"])
                ang = 0.5 * (np.arctan2(a[1], a[0]) + np.arctan2(b[1], b[0]))
                p = horizontal_hit(el, (np.cos(ang), np.sin(ang)), z)
        else:
            fail(el, f"rule {rule!r} has no placement key")
        placed[el] = p

    for el in order:
        if el not in placed:
            resolve(el)
    pos = np.array([placed[e] for e in order])
    _, _, _, dist = torso.closest_point(pos)
    if np.any(dist > ON_SURFACE_TOL):
        i = int(np.argmax(dist))
        fail(order[i], f"it lies {dist[i] * 100:.1f} cm off the surface")
    return ElectrodeLayout(lname, tuple(order), pos)
