"""A parametric adult torso: closed triangle surface, landmarks and heart from anthropometry.

Shape: horizontal cross-sections are superellipses ``|x/a|^n + |y/b|^n = 1`` whose
half-width ``a(z)`` and half-depth ``b(z)`` follow monotone (PCHIP) profiles through
the groin/hip, waist, lower chest, chest (heart level), armpit and shoulder levels; the
ends are closed by elliptical caps (flat groin, rounded shoulders). The mesh is built
ring by ring with about one target edge length between vertices everywhere, and rings of
different vertex counts are zipped together, so triangles are near-equilateral.

Frame: LPS metres, **origin on the body axis at the level of the heart centre** (the
heart itself sits left and anterior of the axis). Defaults (adult male: chest 0.34 x
0.25 m, circumference about 1.0 m, groin-to-shoulder 0.60 m) come from the orders of
magnitude of adult anthropometry; the precordial levels are set so that the V1-V6
spacings of the default torso fall inside the population of PHYSICS.md section 2
(Bender et al., 25 statistical-shape torsos).

Heart height. The "heart centre" is the source of the QRS dipole, i.e. the centroid of
the *ventricles*, not of the whole heart outline (whose upper part is atria and great
vessels). Two anatomical estimates of its level, both relative to the rib landmarks of
this torso, bracket it: (a) the centroid of the ventricular part of the frontal heart
outline (textbook surface anatomy, e.g. Gray's Anatomy: atrioventricular groove from the
3rd left to the 6th right costal cartilage at the sternum, inferior border to the apex
in the 5th intercostal space on the midclavicular line) lies about 2.5 cm below the 4th
intercostal space at the sternal border; (b) the apex under V4 (apex beat, 5th space,
midclavicular line), the long axis at 27 deg to the transverse plane (Hoekema 1999,
PHYSICS.md section 2) and the centroid 4.5-5.3 cm up the axis from the apex (half to
five eighths of an adult left-ventricular length of about 8.5 cm) put it 2.0-2.4 cm
above V4, i.e. 5.5-6 cm below that intercostal space. The torso takes the mean,
4 cm (``_ICS4_ABOVE_HEART``). An earlier value of 1.5 cm (whole-heart level) left V4-V6
6.4 cm below the dipole and made their lead vectors point toward the feet (Frank Y
0.6 against Dower's 0.1, cosine to the Dower rows 0.78-0.84; tests/test_torso_calibration.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..errors import ConfigError, GeometryError
from .mesh import Heart, TorsoMesh, heart_rotation

def _sex_defaults() -> dict:
    """Per-sex default anthropometry from ``geometry/torsos/adult.toml``."""
    import tomllib

    from .._resources import geometry_file
    with open(geometry_file("torsos/adult.toml"), "rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class TorsoParams:
    """Anthropometric parameters of the parametric torso (metres, degrees).

    Unset (None) values take the defaults of ``sex``. ``torso_length`` is groin to the top
    of the shoulders; ``height`` (stature) scales it when ``torso_length`` is not given
    (torso length = 0.343 x stature). Widths are breadths (left-right), depths are
    front-back, all of the trunk without the arms.

    Heart: ``heart_offset`` is the heart centre relative to the body axis at the origin
    level (default 3 cm left, 3.5 cm anterior); axis angles after Hoekema et al. 1999
    (PHYSICS.md section 2). ``edge_length`` sets the mesh resolution (0.03 m gives about
    2,000 triangles).
    """

    sex: str = "male"
    height: float | None = None
    torso_length: float | None = None
    chest_width: float | None = None
    chest_depth: float | None = None
    waist_width: float | None = None
    waist_depth: float | None = None
    hip_width: float | None = None
    shoulder_width: float | None = None
    heart_offset: tuple[float, float, float] = (0.03, -0.035, 0.0)
    heart_axis_transverse_deg: float = 27.0
    heart_axis_frontal_deg: float = 38.0
    heart_roll_deg: float = 0.0
    edge_length: float = 0.03
    superellipse_n: float = 2.4

    def resolved(self) -> "TorsoParams":
        """Copy with every None replaced by the value implied by ``sex`` / ``height``."""
        defaults = _sex_defaults()
        if self.sex not in defaults:
            raise ConfigError(f"torso sex must be one of {sorted(defaults)}, got {self.sex!r}")
        d = dict(defaults[self.sex])
        vals = dataclasses.asdict(self)
        if vals["height"] is not None and vals["torso_length"] is None:
            vals["torso_length"] = 0.343 * vals["height"]
        for k, v in d.items():
            if vals[k] is None:
                vals[k] = v
        out = TorsoParams(**vals)
        for k in ("height", "torso_length", "chest_width", "chest_depth", "waist_width", "waist_depth",
                  "hip_width", "shoulder_width", "edge_length"):
            val = getattr(out, k)
            if not (np.isfinite(val) and val > 0):
                raise ConfigError(f"torso parameter {k} must be positive (m), got {val!r}")
            if k != "edge_length" and val > 3.0:
                raise GeometryError(f"torso parameter {k}={val!r} looks like millimetres or centimetres; use metres")
        if not 0.002 <= out.edge_length <= 0.1:
            raise ConfigError(f"torso edge_length must be in [0.002, 0.1] m, got {out.edge_length!r}")
        if not 1.5 <= out.superellipse_n <= 6:
            raise ConfigError(f"superellipse_n must be in [1.5, 6], got {out.superellipse_n!r}")
        return out


class _Shape:
    """Analytic torso shape: profiles a(z), b(z), levels, and a surface-point function."""

    def __init__(self, p: TorsoParams):
        L = p.torso_length
        # Levels relative to the heart centre (z = 0), as fractions of torso length 0.60 m.
        # They were first set about the whole-heart level; the body is raised by
        # ``_BODY_RAISE`` so that the origin is the ventricular centroid (module docstring).
        s = L / 0.60
        self.dz = _BODY_RAISE * s
        self.z_top = 0.16 * s + self.dz  # top of the shoulders
        self.z_bot = self.z_top - L     # groin
        self.cap_top = 0.05 * s
        self.cap_bot = 0.07 * s
        zt, zb = self.z_top - self.cap_top, self.z_bot + self.cap_bot
        self.z_side_top, self.z_side_bot = zt, zb
        z = np.array([zb, -0.25 * s + self.dz, -0.10 * s + self.dz, self.dz, 0.07 * s + self.dz, zt])
        a = np.array([p.hip_width, p.waist_width, 0.5 * (p.waist_width + p.chest_width), p.chest_width,
                      p.chest_width + 0.25 * (p.shoulder_width - p.chest_width), p.shoulder_width]) / 2
        b = np.array([0.5 * (p.waist_depth + 0.5 * (p.hip_width * 0.62 + p.waist_depth)), p.waist_depth,
                      0.5 * (p.waist_depth + p.chest_depth), p.chest_depth, 0.96 * p.chest_depth,
                      0.70 * p.chest_depth]) / 2
        self._a = PchipInterpolator(z, a)
        self._b = PchipInterpolator(z, b)
        self.n = p.superellipse_n

    def ab(self, z):
        z = np.clip(z, self.z_side_bot, self.z_side_top)
        return self._a(z), self._b(z)

    def section(self, t, z, scale=1.0):
        """Point at superellipse angle t of the cross-section at side level z, scaled."""
        a, b = self.ab(z)
        e = 2.0 / self.n
        c, sn = np.cos(t), np.sin(t)
        x = a * np.sign(c) * np.abs(c) ** e * scale
        y = b * np.sign(sn) * np.abs(sn) ** e * scale
        return x, y

    def profile(self, u):
        """Meridian parameter u in [0, 1] (groin pole -> shoulder pole) -> (z, level z, scale)."""
        # Piecewise: bottom cap psi in [pi/2, 0], side, top cap psi in [0, pi/2]; the split
        # is proportional to approximate meridian arc lengths so rings are evenly spaced.
        rb = 0.5 * sum(self.ab(self.z_side_bot))
        rt = 0.5 * sum(self.ab(self.z_side_top))
        lb = _quarter_ellipse(rb, self.cap_bot)
        lt = _quarter_ellipse(rt, self.cap_top)
        ls = self.z_side_top - self.z_side_bot
        tot = lb + ls + lt
        u = np.asarray(u, dtype=float)
        z = np.empty_like(u)
        lev = np.empty_like(u)
        sc = np.empty_like(u)
        s = u * tot
        m = s < lb
        psi = _ellipse_angle_at(rb, self.cap_bot, lb - s[m])  # 0 at the side, pi/2 at the pole
        z[m] = self.z_side_bot - self.cap_bot * np.sin(psi)
        lev[m] = self.z_side_bot
        sc[m] = np.cos(psi)
        m2 = (s >= lb) & (s <= lb + ls)
        z[m2] = self.z_side_bot + (s[m2] - lb)
        lev[m2] = z[m2]
        sc[m2] = 1.0
        m3 = s > lb + ls
        psi = _ellipse_angle_at(rt, self.cap_top, s[m3] - lb - ls)
        z[m3] = self.z_side_top + self.cap_top * np.sin(psi)
        lev[m3] = self.z_side_top
        sc[m3] = np.cos(psi)
        return z, lev, sc, tot


def _quarter_ellipse(r, c, n=400):
    psi = np.linspace(0, np.pi / 2, n)
    return float(np.sum(np.hypot(np.diff(r * np.cos(psi)), np.diff(c * np.sin(psi)))))


def _ellipse_angle_at(r, c, arc, n=400):
    psi = np.linspace(0, np.pi / 2, n)
    cum = np.concatenate([[0], np.cumsum(np.hypot(np.diff(r * np.cos(psi)), np.diff(c * np.sin(psi))))])
    return np.interp(arc, cum, psi)


def _ring(shape: _Shape, z, lev, sc, h, offset):
    """Vertices of one ring, evenly spaced in arc length; count from the perimeter."""
    t = np.linspace(0, 2 * np.pi, 721)
    x, y = shape.section(t, lev, sc)
    cum = np.concatenate([[0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    per = cum[-1]
    n = max(6, int(round(per / h)))
    s = (np.arange(n) + offset) / n * per
    tt = np.interp(s, cum, t)
    x, y = shape.section(tt, lev, sc)
    return np.stack([x, y, np.full(n, z)], axis=1), (np.arange(n) + offset) / n


def _zip(ia, ua, ib, ub):
    """Triangulate the band between lower ring A and upper ring B (outward, CCW)."""
    na, nb = len(ia), len(ib)
    ua_ext = np.append(ua, ua[0] + 1)
    ub_ext = np.append(ub, ub[0] + 1)
    # Align B's start with A's start.
    i = j = 0
    faces = []
    while i < na or j < nb:
        adv_a = j == nb or (i < na and ua_ext[i + 1] < ub_ext[j + 1])
        if adv_a:
            faces.append((ia[i % na], ia[(i + 1) % na], ib[j % nb]))
            i += 1
        else:
            faces.append((ia[i % na], ib[(j + 1) % nb], ib[j % nb]))
            j += 1
    return faces


def _build_mesh(shape: _Shape, h: float):
    _, _, _, tot = shape.profile(np.array([0.5]))
    n_rings = max(4, int(round(tot / (h * np.sqrt(3) / 2))))
    us = np.linspace(0, 1, n_rings + 1)[1:-1]
    z, lev, sc, _ = shape.profile(us)
    verts = [np.array([[0.0, 0.0, shape.z_bot]])]
    rings = []
    count = 1
    for k in range(len(us)):
        v, u = _ring(shape, z[k], lev[k], sc[k], h, 0.5 * (k % 2))
        idx = np.arange(count, count + len(v))
        count += len(v)
        verts.append(v)
        rings.append((idx, u))
    verts.append(np.array([[0.0, 0.0, shape.z_top]]))
    top = count
    faces = []
    idx0 = rings[0][0]
    faces += [(0, idx0[(i + 1) % len(idx0)], idx0[i]) for i in range(len(idx0))]
    for (ia, ua), (ib, ub) in zip(rings[:-1], rings[1:]):
        faces += _zip(ia, ua, ib, ub)
    idx1 = rings[-1][0]
    faces += [(top, idx1[i], idx1[(i + 1) % len(idx1)]) for i in range(len(idx1))]
    return np.concatenate(verts), np.array(faces, dtype=np.int64)


# Intercostal geometry: spacing of intercostal spaces along the sternal border and the
# downward slope of the spaces going laterally (ribs 4-6 descend from the sternum).
_ICS_SPACING = 0.028      # m between consecutive intercostal spaces at the sternal border
_ICS_SLOPE = 0.70         # m of descent per m lateral from the sternal border
_STERNAL_HALF = 0.022     # m, sternal border distance from the midline
# m, 4th intercostal space at the sternal border above the heart centre (the ventricular
# centroid): mean of two anatomical estimates, 2.5 and 5.5-6 cm (module docstring).
_ICS4_ABOVE_HEART = 0.040
# Mason-Likar arm electrodes on Dalhousie case 3 (PHYSICS.md section 2), mean of left and
# right: 155 mm above the centroid of V1-V6; azimuth 9 deg (right) and 17 deg (left) in front
# of the left-right line through our body axis when the measured offsets from the precordial
# centroid are laid on this torso.
_ML_ARM_ABOVE_PRECORDIAL = 0.155
_ML_ARM_AZIMUTH_DEG = 13.0
# m (at torso length 0.60 m) by which the body levels sit higher than in the first version
# of this torso, which had the 4th intercostal space 1.5 cm above the heart.
_BODY_RAISE = _ICS4_ABOVE_HEART - 0.015


def _landmarks(torso_v, torso_f, shape: _Shape, p: TorsoParams) -> dict:
    """Anatomical landmarks on the mesh, placed by rule (horizontal rays from the body axis)."""
    tmp = TorsoMesh(torso_v, torso_f, name="tmp")
    s = p.torso_length / 0.60
    lm = {"body_axis": np.zeros(3)}

    def front(x, z):
        # Ray from the body axis aimed at the analytic anterior surface point at x.
        a, b = shape.ab(z)
        e = np.clip(np.abs(x) / a, 0, 0.999)
        y = -b * (1 - e ** shape.n) ** (1 / shape.n)
        hit = tmp.ray_hit(np.array([0.0, 0.0, z]), np.array([x, y, 0.0]))
        if hit is None:
            raise GeometryError(f"landmark at x={x:.3f}, z={z:.3f} could not be placed on the torso")
        return hit

    def ray(direction, z):
        hit = tmp.ray_hit(np.array([0.0, 0.0, z]), np.asarray(direction, dtype=float))
        if hit is None:
            raise GeometryError(f"landmark ray {direction} at z={z:.3f} missed the torso")
        return hit

    def ics_z(k, x):
        return (_ICS4_ABOVE_HEART - (k - 4) * _ICS_SPACING) * s - _ICS_SLOPE * max(abs(x) - _STERNAL_HALF, 0.0)

    x_mcl = 0.45 * p.shoulder_width / 2 + 0.005   # midpoint of the clavicle, about 9-10 cm
    for k in range(1, 7):
        lm[f"ics{k}_sternal_right"] = front(-_STERNAL_HALF, ics_z(k, _STERNAL_HALF))
        lm[f"ics{k}_sternal_left"] = front(_STERNAL_HALF, ics_z(k, _STERNAL_HALF))
        lm[f"ics{k}_midclavicular_left"] = front(x_mcl, ics_z(k, x_mcl))
        lm[f"ics{k}_midclavicular_right"] = front(-x_mcl, ics_z(k, x_mcl))
        lm[f"ics{k}_sternum"] = front(0.0, ics_z(k, 0.0))
    z5 = lm["ics5_midclavicular_left"][2]
    a5, _ = shape.ab(z5)
    # Anterior axillary line at 0.9 of the half-width (Dalhousie torso, PHYSICS.md section 2:
    # V5 at 0.83 of a half-width measured to the skin over the arm).
    lm["anterior_axillary_left"] = front(0.9 * a5, z5)
    lm["anterior_axillary_right"] = front(-0.9 * a5, z5)
    lm["mid_axillary_left"] = ray([1.0, 0.0, 0.0], z5)
    lm["mid_axillary_right"] = ray([-1.0, 0.0, 0.0], z5)
    lm["spine_ics5"] = ray([0.0, 1.0, 0.0], z5)
    lm["jugular_notch"] = front(0.0, shape.z_side_top - 0.005 * s)
    lm["xiphoid"] = front(0.0, ics_z(6.5, 0.0))
    # Limb-torso junctions (PHYSICS.md section 2): arm at the lateral shoulder below the
    # acromion, leg at the centre of the thigh's attachment under the groin.
    z_sh = shape.z_side_top - 0.02 * s
    lm["right_shoulder"] = ray([-1.0, 0.0, 0.0], z_sh)
    lm["left_shoulder"] = ray([1.0, 0.0, 0.0], z_sh)
    xg = 0.5 * p.hip_width / 2
    for side, sign in (("left", 1), ("right", -1)):
        hit = tmp.ray_hit(np.array([sign * xg, 0.0, shape.z_bot + 0.15]), np.array([0.0, 0.0, -1.0]))
        if hit is None:
            raise GeometryError(f"{side} groin could not be placed on the torso")
        lm[f"{side}_groin"] = hit
    # Mason-Likar (Mason & Likar 1966): infraclavicular fossae, medial to the deltoid
    # border, 2 cm below the lower border of the clavicle; the clavicle rises about 15 deg
    # laterally from the jugular notch and is about 1 cm thick. Left lower abdomen on the
    # anterior axillary line halfway between the costal margin and the iliac crest.
    x_icl = 0.75 * p.shoulder_width / 2
    z_icl = lm["jugular_notch"][2] + np.tan(np.deg2rad(15.0)) * (x_icl - _STERNAL_HALF) - 0.03 * s
    lm["infraclavicular_right"] = front(-x_icl, z_icl)
    lm["infraclavicular_left"] = front(x_icl, z_icl)
    # Where Mason & Likar's arm electrodes sit on a measured torso (Dalhousie case 3,
    # PHYSICS.md section 2): in the infraclavicular (deltopectoral) fossa at the front of
    # the shoulder, 15.5 cm above the centroid of V1-V6 and 9-17 deg (mean 13 deg) in front
    # of the left-right line through the body axis -- higher and farther back than the
    # point below the clavicle above (infraclavicular_*, kept for garments). Placed there,
    # the torso arm electrodes lower R in I and aVL as published (Papouchado 1987); at the
    # point above, 1.5 cm lower and 2 cm more anterior, I and aVL did not change (issue 12).
    z_v4 = lm["ics5_midclavicular_left"][2]
    z_v1 = lm["ics4_sternal_left"][2]
    z_precordial = (2.0 * z_v1 + 0.5 * (z_v1 + z_v4) + 3.0 * z_v4) / 6.0    # V1, V2, V3, V4-V6
    z_dp = z_precordial + _ML_ARM_ABOVE_PRECORDIAL * s
    az = np.deg2rad(_ML_ARM_AZIMUTH_DEG)
    lm["deltopectoral_right"] = ray([-np.cos(az), -np.sin(az), 0.0], z_dp)
    lm["deltopectoral_left"] = ray([np.cos(az), -np.sin(az), 0.0], z_dp)
    z_ll = -0.21 * s + shape.dz
    a_ll, _ = shape.ab(z_ll)
    lm["left_lower_abdomen"] = front(0.8 * a_ll, z_ll)
    lm["right_lower_abdomen"] = front(-0.8 * a_ll, z_ll)
    lm["manubrium"] = front(0.0, ics_z(1.5, 0.0))
    lm["neck_back"] = ray([0.0, 0.5, 1.0], shape.z_side_top - 0.01)
    return lm


def make_torso(params: TorsoParams | None = None, *, name: str | None = None) -> TorsoMesh:
    """Build the parametric torso mesh with landmarks and heart.

    Parameters
    ----------
    params : TorsoParams, optional
        Anthropometry; default: adult male.
    name : str, optional

    Returns
    -------
    TorsoMesh
        Closed surface (about 2,000 triangles at the default 3 cm edge), origin on the body
        axis at heart-centre level, landmarks (intercostal spaces at the sternal borders and
        midclavicular lines, axillary lines, shoulders, groin, infraclavicular fossae, ...).
    """
    p = (params or TorsoParams()).resolved()
    shape = _Shape(p)
    v, f = _build_mesh(shape, p.edge_length)
    lm = _landmarks(v, f, shape, p)
    rot = heart_rotation(p.heart_axis_transverse_deg, p.heart_axis_frontal_deg, p.heart_roll_deg)
    heart = Heart(np.asarray(p.heart_offset, dtype=float), rot)
    nm = name or f"parametric_{p.sex}"
    return TorsoMesh(v, f, name=nm, landmarks=lm, heart=heart)


def torso_circumference(torso: TorsoMesh, z: float) -> float:
    """Perimeter (m) of the torso's horizontal cross-section at height ``z``."""
    t = torso.triangles
    d = t[:, :, 2] - z
    segs = []
    for tri, dd in zip(t, d):
        pts = []
        for i in range(3):
            j = (i + 1) % 3
            if (dd[i] < 0) != (dd[j] < 0):
                s = dd[i] / (dd[i] - dd[j])
                pts.append(tri[i] + s * (tri[j] - tri[i]))
        if len(pts) == 2:
            segs.append(np.linalg.norm(pts[1] - pts[0]))
    if not segs:
        raise GeometryError(f"{torso.name}: no cross-section at z={z} m")
    return float(np.sum(segs))
