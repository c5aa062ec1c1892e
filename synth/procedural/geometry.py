"""Mesh-building kit shared by the packaging and fastener generators.

Generators describe a surface as a *triangle soup* with per-corner UVs, built mostly from point grids
(revolved profiles, sweeps, height fields on a cylinder). Parts are added independently and may
overlap only along shared boundaries; :func:`assemble` then

* welds corners by position (so separately built parts form one closed solid),
* drops triangles that collapsed to an edge or a point (clamped thread rows, poles of a revolve),
* orients the whole solid outward,
* computes crease-aware vertex normals on the welded solid (smooth across UV seams, sharp across
  edges steeper than ``crease_deg``), and
* splits vertices only where UV or normal differ, which is what a GLB / pyrender needs.

Grid orientation rule used throughout: seen from the side the normal points to, grid rows increase
*upward* and columns increase to the *right* (the normal is column-direction x row-direction).
For a solid of revolution that means a profile traversed counter-clockwise in the (r, z) half-plane and
columns that advance counter-clockwise seen from +Z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from trimesh.visual import TextureVisuals
from trimesh.visual.material import PBRMaterial

WELD_QUANTUM = 1e-7  # metres: corners closer than this are the same vertex


@dataclass(frozen=True)
class Region:
    """A rectangle of a texture atlas in pixels (x0, y0 top-left, image rows grow downward).

    ``uv(s, t)`` maps region-local coordinates (s to the right, t upward, both in [0, 1]) to trimesh UVs
    (origin at the image's bottom-left, as trimesh and OBJ use; the GLB exporter flips to glTF's convention).
    """

    x0: int
    y0: int
    w: int
    h: int
    atlas_w: int
    atlas_h: int

    def uv(self, s, t) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        u = (self.x0 + s * self.w) / self.atlas_w
        v = 1.0 - (self.y0 + (1.0 - t) * self.h) / self.atlas_h
        return np.stack(np.broadcast_arrays(u, v), axis=-1)

    def center_uv(self) -> np.ndarray:
        return self.uv(0.5, 0.5)


class Soup:
    """Triangles with per-corner UVs, collected part by part before :func:`assemble`."""

    def __init__(self) -> None:
        self._tris: list[np.ndarray] = []
        self._uvs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(t) for t in self._tris)

    def add_triangles(self, tris, uvs=None) -> None:
        tris = np.asarray(tris, dtype=np.float64).reshape(-1, 3, 3)
        uvs = np.zeros((len(tris), 3, 2)) if uvs is None else np.asarray(uvs, np.float64).reshape(-1, 3, 2)
        self._tris.append(tris)
        self._uvs.append(uvs)

    def add_grid(self, points, uvs=None) -> None:
        """Quads between neighbouring rows and columns of an (R, C, 3) point grid (see module rule)."""
        p = np.asarray(points, dtype=np.float64)
        uv = np.zeros(p.shape[:2] + (2,)) if uvs is None else np.broadcast_to(uvs, p.shape[:2] + (2,))
        a, b = p[:-1, :-1], p[:-1, 1:]
        c, d = p[1:, 1:], p[1:, :-1]
        ua, ub, uc, ud = uv[:-1, :-1], uv[:-1, 1:], uv[1:, 1:], uv[1:, :-1]
        t1 = np.stack([a, b, c], axis=2).reshape(-1, 3, 3)
        t2 = np.stack([a, c, d], axis=2).reshape(-1, 3, 3)
        u1 = np.stack([ua, ub, uc], axis=2).reshape(-1, 3, 2)
        u2 = np.stack([ua, uc, ud], axis=2).reshape(-1, 3, 2)
        self.add_triangles(np.concatenate([t1, t2]), np.concatenate([u1, u2]))

    def add_polygon(self, loop, normal, uvs=None, holes=()) -> None:
        """A planar polygon (N, 3) (simple, possibly concave, optionally with hole loops), triangulated
        to face ``normal``. ``uvs`` covers the outer loop followed by the holes."""
        import mapbox_earcut

        rings = [np.asarray(loop, dtype=np.float64)] + [np.asarray(h, dtype=np.float64) for h in holes]
        ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
        loop = np.concatenate(rings)
        n = np.asarray(normal, dtype=np.float64)
        n = n / np.linalg.norm(n)
        e1 = np.cross(n, [0.0, 0.0, 1.0] if abs(n[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(n, e1)
        flat = np.stack([loop @ e1, loop @ e2], axis=1)
        idx = mapbox_earcut.triangulate_float64(flat, ends)
        idx = np.asarray(idx, dtype=np.int64).reshape(-1, 3)
        tri = loop[idx]
        facing = np.einsum("ij,j->i", np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), n)
        idx[facing < 0] = idx[facing < 0][:, ::-1]
        uv = np.zeros((len(loop), 2)) if uvs is None else np.asarray(uvs, dtype=np.float64)
        self.add_triangles(loop[idx], uv[idx])

    def add_mesh(self, mesh: trimesh.Trimesh, uv_fn=None) -> None:
        """Every triangle of an existing mesh (e.g. an extrusion or a boolean result)."""
        tris = mesh.vertices[mesh.faces]
        self.add_triangles(tris, None if uv_fn is None else uv_fn(tris))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._tris:
            return np.zeros((0, 3, 3)), np.zeros((0, 3, 2))
        return np.concatenate(self._tris), np.concatenate(self._uvs)


# ---- grids -----------------------------------------------------------------------------------------


def ring(n: int, start: float = np.pi / 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angles, cosines and sines of n+1 columns around the Z axis, counter-clockwise from ``start``.

    The closing column repeats the first one exactly, so the seam welds without relying on rounding.
    Starting at +Y (pi/2) puts the texture seam at the back and u = 0.5 at the front (-Y).
    """
    phi = start + 2.0 * np.pi * np.arange(n + 1) / n
    c, s = np.cos(phi), np.sin(phi)
    c[-1], s[-1] = c[0], s[0]
    return phi, c, s


def revolve(r, z, cos, sin) -> np.ndarray:
    """(K, C, 3) points of profile rows r, z (each (K,) or (K, C)) revolved to the given columns."""
    r = np.asarray(r, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if z.ndim == 1:
        z = z[:, None]
    r, z = np.broadcast_arrays(r, z + 0.0 * cos[None, :])
    return np.stack([r * cos[None, :], r * sin[None, :], z], axis=-1)


def band_uv(region: Region, rows: int, cols: int, t0: float = 0.0, t1: float = 1.0, t=None) -> np.ndarray:
    """UVs for a grid wrapped around a label band: columns span the region's width, rows span
    ``t0..t1`` of its height (or the explicit per-row ``t``)."""
    s = np.linspace(0.0, 1.0, cols)
    t = np.linspace(t0, t1, rows) if t is None else np.asarray(t, dtype=np.float64)
    return region.uv(s[None, :], t[:, None])


def solid_uv(region: Region, rows: int, cols: int) -> np.ndarray:
    """Every point at the centre of a flat-colour swatch."""
    return np.broadcast_to(region.center_uv(), (rows, cols, 2))


def polar_uv(region: Region, points: np.ndarray, radius: float, mirror: bool = False) -> np.ndarray:
    """Planar projection of a disc of ``radius`` (seen from +Z, or from -Z when ``mirror``)."""
    x = points[..., 0] / (2 * radius) + 0.5
    y = points[..., 1] / (2 * radius) + 0.5
    if mirror:
        y = 1.0 - y
    return region.uv(x, y)


# ---- assembly --------------------------------------------------------------------------------------


def weld(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique positions and (m, 3) vertex indices of a triangle array, welding within WELD_QUANTUM."""
    flat = tris.reshape(-1, 3)
    keys = np.round(flat / WELD_QUANTUM).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return flat[first], inverse.reshape(-1, 3)


def _corner_angles(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    p = v[f]
    ang = np.empty(f.shape)
    for k in range(3):
        a = p[:, (k + 1) % 3] - p[:, k]
        b = p[:, (k + 2) % 3] - p[:, k]
        cosang = np.einsum("ij,ij->i", a, b) / (
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-300
        )
        ang[:, k] = np.arccos(np.clip(cosang, -1.0, 1.0))
    return ang


def crease_normals(vertices: np.ndarray, faces: np.ndarray, crease_deg: float) -> np.ndarray:
    """(m, 3, 3) per-corner normals: the angle-weighted mean of the face normals around the corner's
    vertex, counting only faces within ``crease_deg`` of the corner's own face."""
    fn = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    fn /= np.linalg.norm(fn, axis=1, keepdims=True)
    ang = _corner_angles(vertices, faces).ravel()
    corner_v = faces.ravel()
    corner_f = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(corner_v, kind="stable")
    counts = np.bincount(corner_v, minlength=len(vertices))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cos_limit = np.cos(np.radians(crease_deg))
    own = fn[corner_f]
    acc = np.zeros((len(corner_v), 3))
    deg = counts[corner_v]
    for k in range(int(counts.max())):
        idx = np.nonzero(deg > k)[0]
        partner = order[starts[corner_v[idx]] + k]
        pn = fn[corner_f[partner]]
        ok = np.einsum("ij,ij->i", own[idx], pn) >= cos_limit
        acc[idx[ok]] += ang[partner[ok], None] * pn[ok]
    acc /= np.linalg.norm(acc, axis=1, keepdims=True)
    return acc.reshape(-1, 3, 3)


def box_uv(tris: np.ndarray, size: float) -> np.ndarray:
    """Box projection (per face, along its dominant normal axis), for meshes that carry no artwork but
    may get a procedural texture from the scene randomizer."""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    axis = np.argmax(np.abs(n), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    uv = np.take_along_axis(tris, keep[:, None, :].repeat(3, axis=1), axis=2)
    return uv / size + 0.5


def assemble(
    soup: Soup, material: PBRMaterial, crease_deg: float = 30.0, uv_size: float | None = None
) -> trimesh.Trimesh:
    """Turn a soup into one render-ready mesh, bounding-box centred (see module docstring). ``uv_size`` replaces the soup's
    UVs with a box projection scaled by that length (metres per UV unit)."""
    tris, uvs = soup.arrays()
    verts, faces = weld(tris)
    verts = verts - (verts.min(axis=0) + verts.max(axis=0)) / 2.0  # bounding-box centre at the origin
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces, tris, uvs = faces[ok], tris[ok], uvs[ok]
    p = verts[faces]
    volume = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0
    if volume < 0:
        faces, tris, uvs = faces[:, ::-1], tris[:, ::-1], uvs[:, ::-1]
    if uv_size is not None:
        uvs = box_uv(tris, uv_size)
    normals = crease_normals(verts, faces, crease_deg)
    corner = np.concatenate(
        [faces.reshape(-1, 1).astype(np.float64), uvs.reshape(-1, 2), normals.reshape(-1, 3)], axis=1
    )
    unique, inverse = np.unique(corner, axis=0, return_inverse=True)
    out_faces = inverse.reshape(-1, 3).astype(np.int64)
    out_verts = verts[unique[:, 0].astype(np.int64)]
    visual = TextureVisuals(uv=unique[:, 1:3].copy(), material=material)
    mesh = trimesh.Trimesh(
        vertices=out_verts,
        faces=out_faces,
        vertex_normals=unique[:, 3:6].copy(),
        visual=visual,
        process=False,
        validate=False,
    )
    return mesh


def closed_solid(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh welded by position only (UV and normal splits removed): the shape as a solid, for
    watertightness, volume and collision checks."""
    verts, faces = weld(np.asarray(mesh.vertices)[np.asarray(mesh.faces)])
    return trimesh.Trimesh(vertices=verts, faces=faces, process=False)


# ---- revolve profiles --------------------------------------------------------------------------------


class Profile:
    """A revolve profile: a polyline in the (r, z) half-plane, traversed counter-clockwise (bottom
    centre, outward, up the outside, back to the top centre), cut into segments that each carry their
    own UV mapping ``uv(points (K, C, 3), rz (K, 2), s (C,)) -> (K, C, 2)``."""

    def __init__(self, r: float, z: float):
        self._end = (float(r), float(z))
        self.segments: list[tuple[np.ndarray, object]] = []

    @property
    def end(self) -> tuple[float, float]:
        return self._end

    def _add(self, pts, uv) -> Profile:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        if np.hypot(*(pts[0] - self._end)) > 1e-12:
            pts = np.vstack([self._end, pts])
        self.segments.append((pts, uv))
        self._end = (float(pts[-1, 0]), float(pts[-1, 1]))
        return self

    def line(self, r: float, z: float, uv, n: int = 1) -> Profile:
        t = np.linspace(0.0, 1.0, n + 1)
        r0, z0 = self._end
        return self._add(np.stack([r0 + (r - r0) * t, z0 + (z - z0) * t], axis=1), uv)

    def arc(
        self, cr: float, cz: float, rho: float, a0_deg: float, a1_deg: float, uv, step_deg: float = 12.0
    ) -> Profile:
        n = max(2, int(np.ceil(abs(a1_deg - a0_deg) / step_deg)))
        a = np.radians(np.linspace(a0_deg, a1_deg, n + 1))
        return self._add(np.stack([cr + rho * np.cos(a), cz + rho * np.sin(a)], axis=1), uv)

    def curve(self, r_of_t, z_of_t, uv, n: int = 12) -> Profile:
        t = np.linspace(0.0, 1.0, n + 1)
        return self._add(np.stack([r_of_t(t), z_of_t(t)], axis=1), uv)


def revolve_profile(soup: Soup, profile: Profile, n_cols: int, start: float = np.pi / 2) -> None:
    """Add every segment of ``profile`` revolved about +Z (columns from ``ring``)."""
    _, c, s = ring(n_cols, start)
    col_s = np.linspace(0.0, 1.0, n_cols + 1)
    for pts, uv in profile.segments:
        grid = revolve(pts[:, 0], pts[:, 1], c, s)
        soup.add_grid(grid, uv(grid, pts, col_s))


def uv_swatch(region: Region):
    return lambda grid, rz, s: solid_uv(region, grid.shape[0], grid.shape[1])


def uv_band(region: Region, z0: float, z1: float):
    """Columns across the region's width, height z0..z1 across its height (a wrapped label)."""
    return lambda grid, rz, s: region.uv(s[None, :], ((rz[:, 1] - z0) / (z1 - z0))[:, None])


def uv_disc(region: Region, radius: float, from_below: bool = False):
    """A flat end (lid, base) printed as a disc of ``radius``, upright when seen from outside."""
    return lambda grid, rz, s: polar_uv(region, grid, radius, mirror=from_below)
