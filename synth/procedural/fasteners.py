"""Industrial part generators: hex bolt, hex nut, washer, wood screw, drywall screw, socket cap screw,
spur gear, L-bracket and pipe fitting, in a metal finish.

Dimensions come from the ISO tables for M3..M12 (ISO 4017/4014 bolts, ISO 4032 nut widths with DIN 934
heights, ISO 7089 washers, ISO 4762 socket cap screws) and common wood/drywall screw sizes. Threads
are real geometry: a helical height field on the shank whose grid rows follow the helix, so the ISO
60-degree profile is captured exactly with four rows per pitch. Rows are clamped to the threaded
length and collapse there, which closes the thread onto the plain shank or the tip without booleans.
Parts stand on their axis along +Z, head up; every mesh is a closed, outward-facing solid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from synth.procedural import ProceduralAsset
from synth.procedural.finishes import METALS, Finish
from synth.procedural.geometry import Soup, assemble, revolve, ring

MM = 1e-3
COLS = 48  # columns around a round part: a multiple of 6 (hex corners) and 4 (cross recess)
CREASE_DEG = 32.0

# d: (pitch, hex across flats s, bolt head height k, nut height m, washer d1, washer d2, washer h,
#     socket head dk, socket key s, socket depth t)   [mm]
METRIC = {
    3: (0.5, 5.5, 2.0, 2.4, 3.2, 7.0, 0.5, 5.5, 2.5, 1.3),
    4: (0.7, 7.0, 2.8, 3.2, 4.3, 9.0, 0.8, 7.0, 3.0, 2.0),
    5: (0.8, 8.0, 3.5, 4.0, 5.3, 10.0, 1.0, 8.5, 4.0, 2.5),
    6: (1.0, 10.0, 4.0, 5.0, 6.4, 12.0, 1.6, 10.0, 5.0, 3.0),
    8: (1.25, 13.0, 5.3, 6.5, 8.4, 16.0, 1.6, 13.0, 6.0, 4.0),
    10: (1.5, 16.0, 6.4, 8.0, 10.5, 20.0, 2.0, 16.0, 8.0, 5.0),
    12: (1.75, 18.0, 7.5, 10.0, 13.0, 24.0, 2.5, 18.0, 10.0, 6.0),
}
LENGTHS = (6, 8, 10, 12, 16, 20, 25, 30, 35, 40, 45, 50, 55, 60, 70, 80)
ISO_THREAD = ((0.0, 0.0), (0.1667, 0.0), (0.5208, 1.0), (0.6458, 1.0))  # (fraction of pitch, height)


# ---- shared helpers --------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _finish(rng: np.random.Generator, weights: dict[str, float]) -> Finish:
    names = sorted(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return METALS[names[int(rng.choice(len(names), p=p / p.sum()))]].varied(rng)


def _part(
    kind: str,
    seed: int,
    what: str,
    category: str,
    soup: Soup,
    finish: Finish,
    symmetry: str,
    order: int | None,
    crease: float = CREASE_DEG,
) -> ProceduralAsset:
    """The asset, named ``what`` plus its finish ("M6 hex nut, black oxide"), as every part is."""
    name = f"{what}, {finish.name.replace('_', ' ')}"
    pts = soup.arrays()[0].reshape(-1, 3)
    size = float(np.max(pts.max(axis=0) - pts.min(axis=0)))
    mesh = assemble(soup, finish.pbr_material(), crease_deg=crease, uv_size=size)
    return ProceduralAsset(
        mesh=mesh,
        name=name,
        category=category,
        supercategory="industrial",
        kind=kind,
        material=finish.hints(),
        symmetry=symmetry,
        symmetry_order=order,
        seed=seed,
    )


def hex_radius(phi: np.ndarray, across_flats: float) -> np.ndarray:
    """Distance from the axis to a hexagon's boundary along angle ``phi``; corners at 90 deg + k*60 deg."""
    a = np.mod(phi - np.pi / 2, np.pi / 3) - np.pi / 6
    return (across_flats / 2) / np.cos(a)


def cross_radius(phi: np.ndarray, arm: float, half_width: float, hub: float) -> np.ndarray:
    """Radial extent of a '+' recess (two slots of half-length ``arm``) with a round centre ``hub``."""

    def slot(psi):
        c, s = np.abs(np.cos(psi)), np.abs(np.sin(psi))
        return np.minimum(arm / np.maximum(c, 1e-9), half_width / np.maximum(s, 1e-9))

    return np.maximum(np.maximum(slot(phi), slot(phi - np.pi / 2)), hub)


class PolarGrid:
    """Rows of a solid around +Z where each row may vary with the column angle (hex heads, recesses,
    helical thread rows). Rows follow the profile counter-clockwise in the (r, z) half-plane."""

    def __init__(self, n: int = COLS):
        self.n = n
        self.phi, self.cos, self.sin = ring(n)
        self.col = np.arange(n + 1) / n
        self._r: list[np.ndarray] = []
        self._z: list[np.ndarray] = []

    def add(self, r, z) -> None:
        self._r.append(np.broadcast_to(np.asarray(r, dtype=np.float64), (self.n + 1,)).copy())
        self._z.append(np.broadcast_to(np.asarray(z, dtype=np.float64), (self.n + 1,)).copy())

    def add_thread(
        self,
        pitch: float,
        z_lo: float,
        z_hi: float,
        r_fn: Callable,
        profile=ISO_THREAD,
        downward: bool = False,
    ) -> None:
        """Helical rows over [z_lo, z_hi]: row k of turn i sits at z = pitch * (i + f_k + column/n),
        clamped to the interval; ``r_fn(z, h)`` gives the radius for thread height h in [0, 1] and must
        not depend on h at z_lo and z_hi, so clamped rows collapse onto one circle."""
        turns = range(int(np.floor(z_lo / pitch)) - 2, int(np.ceil(z_hi / pitch)) + 2)
        rows = [(i + f, h) for i in turns for f, h in profile]
        if downward:
            rows = rows[::-1]
        for t, h in rows:
            z = np.clip(pitch * (t + self.col), z_lo, z_hi)
            self.add(r_fn(z, h), z)

    def to_soup(self, soup: Soup, closed: bool = False) -> None:
        r, z = np.array(self._r), np.array(self._z)
        if closed:
            r, z = np.vstack([r, r[:1]]), np.vstack([z, z[:1]])
        soup.add_grid(revolve(r, z, self.cos, self.sin))


def _standard_length(rng: np.random.Generator, lo: float, hi: float) -> int:
    options = [L for L in LENGTHS if lo <= L <= hi]
    return _pick(rng, options)


# ---- hex bolt, socket cap screw ----------------------------------------------------------------------------


def _metric_shank(g: PolarGrid, d: float, pitch: float, L: float, b: float) -> None:
    """Chamfered end, ISO thread over the last ``b`` metres with a one-pitch runout, plain shank to L."""
    r_major = 0.995 * d / 2
    depth = 0.6134 * pitch
    r_end = r_major - depth - 0.1 * pitch
    b = min(b, L)

    def r_fn(z, h):
        env = np.clip((b - z) / pitch, 0.0, 1.0)
        return np.minimum(r_major - env * depth * (1.0 - h), r_end + z)  # 45-degree end chamfer

    g.add(0.0, 0.0)
    g.add(r_end, 0.0)
    g.add_thread(pitch, 0.0, b, r_fn)
    if b < L:
        g.add(r_major, L)


def make_hex_bolt(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """ISO 4017/4014 hex bolt: chamfered hex head (30-degree top chamfer), threaded fully or partially."""
    size = _pick(rng, tuple(METRIC))
    pitch, s, k = (x * MM for x in METRIC[size][:3])
    d = size * MM
    L_mm = _standard_length(rng, 2.5 * size, min(80, 8 * size))
    L = L_mm * MM
    b_std = 2 * d + 6 * MM
    b = L if (L < b_std + d or rng.random() < 0.4) else b_std
    g = PolarGrid()
    _metric_shank(g, d, pitch, L, b)
    rh = hex_radius(g.phi, s)
    rc = 0.95 * s / 2
    g.add(rh, L)
    g.add(rh, L + k - (rh - rc) * np.tan(np.radians(30)))
    g.add(rc, L + k)
    g.add(0.0, L + k)
    soup = Soup()
    g.to_soup(soup)
    fin = _finish(rng, {"zinc": 0.35, "steel": 0.25, "stainless": 0.2, "black_oxide": 0.1, "brass": 0.1})
    full = "fully threaded " if b >= L else ""
    return _part("hex_bolt", seed, f"M{size}x{L_mm} {full}hex bolt", "bolt", soup, fin, "discrete", 6)


def make_socket_cap_screw(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """ISO 4762 socket head cap screw: cylindrical head with rounded edges and a hex key socket whose
    floor is a 118-degree drill cone."""
    size = _pick(rng, tuple(METRIC))
    row = METRIC[size]
    pitch, dk, sk, tk = row[0] * MM, row[7] * MM, row[8] * MM, row[9] * MM
    d, k = size * MM, size * MM
    L_mm = _standard_length(rng, 2 * size, min(80, 8 * size))
    L = L_mm * MM
    b_std = 2 * d + 12 * MM
    b = L if L <= b_std + d else b_std
    g = PolarGrid()
    _metric_shank(g, d, pitch, L, b)
    f = 0.06 * dk
    g.add(dk / 2 - f, L)
    g.add(dk / 2, L + f)
    g.add(dk / 2, L + k - f)
    g.add(dk / 2 - f, L + k)
    rs = hex_radius(g.phi, sk)
    g.add(rs, L + k)
    z_apex = L + k - tk - 0.6 * sk / 2
    g.add(rs, z_apex + 0.6 * rs)
    g.add(0.0, z_apex)
    soup = Soup()
    g.to_soup(soup)
    fin = _finish(rng, {"black_oxide": 0.6, "stainless": 0.3, "zinc": 0.1})
    return _part(
        "socket_cap_screw", seed, f"M{size}x{L_mm} socket head cap screw", "screw", soup, fin, "discrete", 6
    )


# ---- nut, washer --------------------------------------------------------------------------------------------


def make_hex_nut(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """Hex nut (ISO 4032 across flats, DIN 934 height): 30-degree chamfers both sides, 120-degree
    countersunk bore and an internal ISO thread."""
    size = _pick(rng, tuple(METRIC))
    pitch, s, _, m = (x * MM for x in METRIC[size][:4])
    d = size * MM
    depth = 0.6134 * pitch
    r_minor_bolt = d / 2 - depth
    r_d1 = d / 2 - 0.5413 * pitch  # internal thread minor radius (crest of the nut's thread)
    r_cs = 0.55 * d
    tan60 = np.tan(np.radians(60))

    def bore(z, h):
        thread = np.maximum(r_d1, r_minor_bolt + depth * h + 0.02 * pitch)
        return np.maximum(thread, r_cs - tan60 * np.minimum(z, m - z))

    g = PolarGrid()
    rh = hex_radius(g.phi, s)
    rc = 0.95 * s / 2
    zc = (rh - rc) * np.tan(np.radians(30))
    g.add(r_cs, 0.0)
    g.add(rc, 0.0)
    g.add(rh, zc)
    g.add(rh, m - zc)
    g.add(rc, m)
    g.add(r_cs, m)
    g.add_thread(pitch, 0.0, m, bore, downward=True)
    soup = Soup()
    g.to_soup(soup, closed=True)
    fin = _finish(rng, {"zinc": 0.35, "steel": 0.25, "stainless": 0.2, "brass": 0.1, "black_oxide": 0.1})
    return _part("hex_nut", seed, f"M{size} hex nut", "nut", soup, fin, "discrete", 6)


def make_washer(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """ISO 7089 plain washer with slightly rounded outer edges (a stamped part)."""
    size = _pick(rng, tuple(METRIC))
    d1, d2, h = (x * MM for x in METRIC[size][4:7])
    e = 0.15 * h
    g = PolarGrid(96)
    g.add(d1 / 2, 0.0)
    g.add(d2 / 2 - e, 0.0)
    g.add(d2 / 2, e)
    g.add(d2 / 2, h - e)
    g.add(d2 / 2 - e, h)
    g.add(d1 / 2, h)
    soup = Soup()
    g.to_soup(soup, closed=True)
    fin = _finish(rng, {"zinc": 0.4, "steel": 0.25, "stainless": 0.25, "brass": 0.1})
    return _part("washer", seed, f"M{size} flat washer", "washer", soup, fin, "cylindrical", None)


# ---- wood and drywall screws -------------------------------------------------------------------------------


def _screw_thread(
    g: PolarGrid, d: float, pitch: float, core: float, b: float, r_shank: float, tip: float, profile
) -> None:
    """A gimlet point: core and thread both grow from zero over ``tip``, thread runs out at ``b``."""
    depth = d / 2 - core

    def r_fn(z, h):
        env = np.clip((b - z) / pitch, 0.0, 1.0)
        taper = np.clip(z / tip, 0.0, 1.0) ** 0.85
        return env * taper * (core + depth * h) + (1.0 - env) * r_shank

    g.add(0.0, 0.0)
    g.add_thread(pitch, 0.0, b, r_fn, profile=profile)


def _sharp_profile(depth: float, pitch: float, half_angle_deg: float, crest: float = 0.03):
    flank = min(0.3, depth * np.tan(np.radians(half_angle_deg)) / pitch)
    root_end = 1.0 - 2 * flank - crest
    return ((0.0, 0.0), (root_end, 0.0), (root_end + flank, 1.0), (root_end + flank + crest, 1.0))


def _cross_recess(g: PolarGrid, z_top: float, dk: float, depth: float) -> None:
    rx = cross_radius(g.phi - np.pi / 2, arm=0.27 * dk, half_width=0.065 * dk, hub=0.11 * dk)
    g.add(rx, z_top)
    g.add(0.3 * rx, z_top - depth)
    g.add(0.0, z_top - depth * 1.08)


WOOD_SIZES = ((3.0, 1.35), (3.5, 1.6), (4.0, 1.8), (4.5, 2.0), (5.0, 2.2), (6.0, 2.6))  # d, pitch (mm)


def make_wood_screw(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """Countersunk (90-degree) wood screw with a cross recess, coarse sharp thread and gimlet point;
    longer screws have a plain shank under the head."""
    d_mm, p_mm = _pick(rng, WOOD_SIZES)
    d, pitch = d_mm * MM, p_mm * MM
    L_mm = _pick(rng, [L for L in (16, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80) if 4 * d_mm <= L <= 16 * d_mm])
    L = L_mm * MM
    dk = 2.0 * d
    core = 0.63 * d / 2
    r_shank = 0.86 * d / 2
    b = L if L_mm < 30 else 0.6 * L
    head_h = (dk / 2 - r_shank) / np.tan(np.radians(45))
    g = PolarGrid()
    _screw_thread(
        g, d, pitch, core, min(b, L - head_h), r_shank, 1.6 * d, _sharp_profile(d / 2 - core, pitch, 22)
    )
    g.add(r_shank, L - head_h)
    g.add(dk / 2, L - 0.25 * MM)
    g.add(dk / 2, L)
    _cross_recess(g, L, dk, 0.3 * dk)
    soup = Soup()
    g.to_soup(soup)
    fin = _finish(rng, {"zinc": 0.5, "brass": 0.2, "stainless": 0.2, "steel": 0.1})
    return _part(
        "wood_screw", seed, f"{d_mm}x{L_mm} countersunk wood screw", "screw", soup, fin, "discrete", 4
    )


def make_drywall_screw(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """Drywall screw: bugle head (concave underside), cross recess, sharp point, coarse or fine
    thread to just under the head."""
    d_mm = _pick(rng, (3.5, 3.9, 4.2))
    coarse = rng.random() < 0.6
    p_mm = {3.5: 1.6, 3.9: 1.7, 4.2: 1.8}[d_mm] if coarse else 1.0
    d, pitch = d_mm * MM, p_mm * MM
    L_mm = _pick(rng, (25, 32, 35, 38, 41, 45, 51, 55))
    L = L_mm * MM
    dk = rng.uniform(8.0, 8.5) * MM
    core = 0.66 * d / 2
    r_shank = core * 1.06
    head_h = 0.45 * dk
    g = PolarGrid()
    _screw_thread(
        g, d, pitch, core, L - head_h - 1.5 * MM, r_shank, 1.4 * d, _sharp_profile(d / 2 - core, pitch, 20)
    )
    z0 = L - head_h
    u = np.linspace(0.0, 1.0, 9)
    for ui in u:  # bugle: tangent to the shank, flaring to the rim
        g.add(r_shank + (dk / 2 - 0.2 * MM - r_shank) * ui**2.2, z0 + (head_h - 0.3 * MM) * ui)
    g.add(dk / 2, L - 0.15 * MM)
    g.add(dk / 2 - 0.15 * MM, L)
    _cross_recess(g, L, dk, 0.3 * dk)
    soup = Soup()
    g.to_soup(soup)
    fin = _finish(rng, {"black_oxide": 0.85, "zinc": 0.15})
    kind = "coarse" if coarse else "fine"
    return _part(
        "drywall_screw", seed, f"{d_mm}x{L_mm} {kind} thread drywall screw", "screw", soup, fin, "discrete", 4
    )


# ---- spur gear --------------------------------------------------------------------------------------------


def involute_outline(module: float, teeth: int, pressure_deg: float = 20.0, flank_pts: int = 8) -> np.ndarray:
    """(N, 2) counter-clockwise outline of a standard spur gear (addendum m, dedendum 1.25 m) with
    true involute flanks above the base circle and radial flanks below it."""
    alpha = np.radians(pressure_deg)
    r = module * teeth / 2
    rb, ra, rf = r * np.cos(alpha), r + module, r - 1.25 * module

    def inv(a):
        return np.tan(a) - a

    half = np.pi / (2 * teeth) + inv(alpha)  # half tooth angle at the base circle, from the centreline

    def theta(rho):
        rho = np.maximum(rho, rb)
        return half - inv(np.arccos(rb / rho))

    r_start = max(rf, rb)
    radii = np.linspace(r_start, ra, flank_pts)
    pts = []
    for k in range(teeth):
        c = 2 * np.pi * k / teeth
        th_f = theta(r_start)
        if rf < rb:
            pts.append((rf, c - th_f))
        pts += [(rho, c - theta(rho)) for rho in radii]
        tip = np.linspace(c - theta(ra), c + theta(ra), 4)[1:-1]
        pts += [(ra, a) for a in tip]
        pts += [(rho, c + theta(rho)) for rho in radii[::-1]]
        if rf < rb:
            pts.append((rf, c + th_f))
        nxt = c + 2 * np.pi / teeth
        root = np.linspace(c + th_f, nxt - th_f, 5)[1:-1]
        pts += [(rf, a) for a in root]
    p = np.array(pts)
    return np.stack([p[:, 0] * np.cos(p[:, 1]), p[:, 0] * np.sin(p[:, 1])], axis=1)


def make_spur_gear(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A 20-degree involute spur gear with a bore and, on half of them, a hub on one face."""
    module = _pick(rng, (0.5, 0.8, 1.0, 1.25, 1.5, 2.0)) * MM
    teeth = int(rng.integers(12, max(13, min(60, int(80 * MM / module)))))
    face = rng.uniform(6, 10) * module
    outline = involute_outline(module, teeth)
    rf = module * teeth / 2 - 1.25 * module
    bores = [b for b in (3, 4, 5, 6, 8, 10, 12, 15, 20) if b * MM / 2 <= 0.45 * rf] or [2]
    r_bore = _pick(rng, bores[-4:]) * MM / 2
    hub = rng.random() < 0.5 and rf - r_bore > 3 * MM
    r_hub = min(r_bore + max(2.5 * MM, 0.8 * r_bore), 0.5 * (rf + r_bore)) if hub else r_bore
    hub_h = rng.uniform(0.5, 1.0) * face if hub else 0.0

    soup = Soup()
    outer = np.asarray(outline)
    side = np.stack(
        [np.column_stack([outer, np.zeros(len(outer))]), np.column_stack([outer, np.full(len(outer), face)])],
        axis=0,
    )
    side = np.concatenate([side, side[:, :1]], axis=1)  # close the loop
    soup.add_grid(side)
    _, c, s = ring(COLS)
    circle = lambda r, z: np.column_stack([r * c[:-1], r * s[:-1], np.full(COLS, z)])  # noqa: E731
    soup.add_polygon(np.column_stack([outer, np.zeros(len(outer))]), (0, 0, -1), holes=[circle(r_bore, 0.0)])
    soup.add_polygon(
        np.column_stack([outer, np.full(len(outer), face)]), (0, 0, 1), holes=[circle(r_hub, face)]
    )
    g = PolarGrid(COLS)
    if hub:
        g.add(r_hub, face)
        g.add(r_hub, face + hub_h)
        g.add(r_bore, face + hub_h)
    else:
        g.add(r_bore, face)
    g.add(r_bore, 0.0)
    g.to_soup(soup)  # hub wall up, hub top inward, bore down: the revolve rule faces the bore inward
    fin = _finish(rng, {"steel": 0.5, "brass": 0.35, "black_oxide": 0.15})
    mod = f"{module / MM:g}"
    return _part(
        "spur_gear",
        seed,
        f"module {mod} spur gear, {teeth} teeth",
        "gear",
        soup,
        fin,
        "discrete",
        teeth,
        crease=40.0,
    )


# ---- bracket and pipe fitting (boolean-built) --------------------------------------------------------------


def _manifold_difference(a: trimesh.Trimesh, cutters: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    return trimesh.boolean.difference([a, *cutters], engine="manifold")


def make_l_bracket(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A bent steel angle bracket: two legs with an inside bend radius and clearance holes (round on the
    base leg, round or slotted on the upright)."""
    from shapely.geometry import Point, Polygon

    t = _pick(rng, (1.5, 2.0, 2.5, 3.0, 4.0)) * MM
    a, bh = rng.uniform(25, 75) * MM, rng.uniform(25, 75) * MM
    w = rng.uniform(15, 40) * MM
    ri = t * rng.uniform(0.8, 1.5)
    ro = ri + t
    arc_in = [(ro + ri * np.cos(q), ro + ri * np.sin(q)) for q in np.radians(np.linspace(270, 180, 9))]
    arc_out = [(ro + ro * np.cos(q), ro + ro * np.sin(q)) for q in np.radians(np.linspace(180, 270, 9))]
    prof = [(a, 0.0), (a, t)] + arc_in + [(t, bh), (0.0, bh)] + arc_out
    body = trimesh.creation.extrude_polygon(Polygon(prof), w)
    rot = np.array([[1, 0, 0, 0], [0, 0, -1, w / 2], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    body.apply_transform(rot)  # profile (x, z) in the XZ plane, width along Y centred
    hole_d = (
        _pick(rng, [h for h in (4.5, 5.5, 6.6, 9.0, 11.0) if h * MM < 0.6 * min(w, a - ro, bh - ro)] or [4.5])
        * MM
    )
    n_holes = 2 if w > 4.5 * hole_d else 1
    ys = [0.0] if n_holes == 1 else [-w / 4, w / 4]
    cutters = []
    xc = ro + (a - ro) * rng.uniform(0.45, 0.65)
    for y in ys:
        cutters.append(
            trimesh.creation.cylinder(
                hole_d / 2,
                4 * t,
                sections=32,
                transform=trimesh.transformations.translation_matrix([xc, y, t / 2]),
            )
        )
    zc = ro + (bh - ro) * rng.uniform(0.45, 0.65)
    slotted = rng.random() < 0.4
    to_x = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
    for y in ys:
        if slotted:
            slot_len = min(2.5 * hole_d, 0.4 * (bh - ro))
            stadium = (
                Point(0, -slot_len / 2)
                .buffer(hole_d / 2, 12)
                .union(Point(0, slot_len / 2).buffer(hole_d / 2, 12))
                .convex_hull
            )
            cut = trimesh.creation.extrude_polygon(stadium, 4 * t)
            # extrusion (u, v, w) -> (x = w through the leg, y = u, z = v): a proper rotation, no flip
            m = np.array([[0, 0, 1, -1.5 * t], [1, 0, 0, y], [0, 1, 0, zc], [0, 0, 0, 1]], dtype=np.float64)
            cut.apply_transform(m)
            cutters.append(cut)
        else:
            tr = trimesh.transformations.translation_matrix([t / 2, y, zc]) @ to_x
            cutters.append(trimesh.creation.cylinder(hole_d / 2, 4 * t, sections=32, transform=tr))
    part = _manifold_difference(body, cutters)
    soup = Soup()
    soup.add_mesh(part)
    fin = _finish(rng, {"zinc": 0.5, "stainless": 0.3, "steel": 0.2})
    holes = "slotted " if slotted else ""
    return _part(
        "l_bracket",
        seed,
        f"{a / MM:.0f}x{bh / MM:.0f}x{w / MM:.0f} mm angle bracket with {holes}holes",
        "bracket",
        soup,
        fin,
        "mirror",
        None,
        crease=40.0,
    )


PIPE_OD_MM = (15.0, 22.0, 28.0)


def _sweep_point(s: np.ndarray, rho: np.ndarray, cos_p, sin_p, ls: float, rb: float) -> np.ndarray:
    """Point of the elbow's tube at centreline length s and radius rho, for each column angle. The
    centreline runs +Y along x = rb, turns 90 degrees about the origin, then runs -X along y = rb."""
    s = np.asarray(s, dtype=np.float64)[:, None]
    rho = np.asarray(rho, dtype=np.float64)[:, None]
    arc = np.pi / 2 * rb
    th = np.clip((s - ls) / rb, 0.0, np.pi / 2)
    cx = np.where(s < ls, rb, np.where(s > ls + arc, -(s - ls - arc), rb * np.cos(th)))
    cy = np.where(s < ls, s - ls, np.where(s > ls + arc, rb, rb * np.sin(th)))
    nx, ny = np.cos(th), np.sin(th)  # N: away from the bend centre; B = -Z
    x = cx + rho * cos_p[None, :] * nx
    y = cy + rho * cos_p[None, :] * ny
    z = -rho * sin_p[None, :]
    return np.stack([x, y, np.broadcast_to(z, x.shape)], axis=-1)


def make_pipe_fitting(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A solder-socket plumbing fitting: a 90-degree elbow (swept tube) or an equal tee (boolean union of
    tubes). Sockets are swaged out to take the pipe, with a pipe stop inside."""
    od = _pick(rng, PIPE_OD_MM) * MM
    wall = rng.uniform(0.9, 1.2) * MM
    r_body, r_bore = od / 2, od / 2 - wall
    r_sock_out, r_sock_in = od / 2 + wall, od / 2 + 0.05 * MM
    sock = rng.uniform(0.75, 0.95) * od
    tee = rng.random() < 0.45
    fin = _finish(rng, {"copper": 0.45, "brass": 0.3, "stainless": 0.15, "zinc": 0.1})
    soup = Soup()
    if not tee:
        rb = rng.uniform(0.75, 1.0) * od
        ls = sock + 1.5 * MM
        total = 2 * ls + np.pi / 2 * rb
        sw = 1.2 * MM  # swage length
        bend = np.linspace(ls, ls + np.pi / 2 * rb, 25)[1:-1]
        outer = (
            [(0.0, r_sock_out), (sock, r_sock_out), (sock + sw, r_body)]
            + [(s, r_body) for s in bend]
            + [(total - sock - sw, r_body), (total - sock, r_sock_out), (total, r_sock_out)]
        )
        inner = (
            [(total, r_sock_in), (total - sock, r_sock_in), (total - sock, r_bore)]
            + [(s, r_bore) for s in bend[::-1]]
            + [(sock, r_bore), (sock, r_sock_in), (0.0, r_sock_in)]
        )
        loop = np.array(outer + inner + [outer[0]])  # closed, counter-clockwise in (s, rho)
        _, c, s_ = ring(COLS)
        grid = _sweep_point(loop[:, 0], loop[:, 1], c, s_, ls, rb)
        soup.add_grid(grid)
        name = f"{od / MM:.0f} mm 90-degree elbow"
        symmetry = "mirror"
    else:
        arm = sock + rng.uniform(3, 6) * MM + r_sock_out

        def tube(r, length, axis, start):
            m = trimesh.transformations.translation_matrix(start)
            if axis == "x":
                m = m @ trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
            elif axis == "y":
                m = m @ trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])
            return trimesh.creation.cylinder(
                r,
                length,
                sections=COLS,
                transform=m @ trimesh.transformations.translation_matrix([0, 0, length / 2]),
            )

        solids = [
            tube(r_body, 2 * arm, "x", [-arm, 0, 0]),
            tube(r_body, arm, "y", [0, 0, 0]),
            tube(r_sock_out, sock, "x", [-arm, 0, 0]),
            tube(r_sock_out, sock, "x", [arm - sock, 0, 0]),
            tube(r_sock_out, sock, "y", [0, arm - sock, 0]),
        ]
        outer_m = trimesh.boolean.union(solids, engine="manifold")
        eps = 0.5 * MM
        holes = [
            tube(r_bore, 2 * arm + 2 * eps, "x", [-arm - eps, 0, 0]),
            tube(r_bore, arm + eps, "y", [0, 0, 0]),
            tube(r_sock_in, sock + eps, "x", [-arm - eps, 0, 0]),
            tube(r_sock_in, sock + eps, "x", [arm - sock, 0, 0]),
            tube(r_sock_in, sock + eps, "y", [0, arm - sock, 0]),
        ]
        part = _manifold_difference(outer_m, holes)
        soup.add_mesh(part)
        name = f"{od / MM:.0f} mm equal tee"
        symmetry = "mirror"
    return _part("pipe_fitting", seed, name, "fitting", soup, fin, symmetry, None, crease=40.0)


GENERATORS = {
    "hex_bolt": make_hex_bolt,
    "hex_nut": make_hex_nut,
    "washer": make_washer,
    "wood_screw": make_wood_screw,
    "drywall_screw": make_drywall_screw,
    "socket_cap_screw": make_socket_cap_screw,
    "spur_gear": make_spur_gear,
    "l_bracket": make_l_bracket,
    "pipe_fitting": make_pipe_fitting,
}
