"""Triangle meshes for ``Geometry`` (mesh files and primitives), shared by every backend and by annotation.

Both the renderer and the amodal-silhouette rasteriser must see *the same* triangles, otherwise an
amodal mask would not contain the rendered pixels. So primitives (box, plane, cylinder) are
tessellated here, once, with UVs (OpenGL convention: v up, (0, 0) = bottom-left of the texture image),
and mesh files are loaded here with trimesh and cached per process by (resolved path, mtime).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import trimesh

from synth import geometry_cache, prep_cache
from synth.errors import AssetError
from synth.scene import Geometry, Material, SceneObject, pose_matrix

CYLINDER_SEGMENTS = 48  # facets around a primitive cylinder (also the amodal silhouette's polygon)
_MESH_CACHE = 64
_PRIMITIVE_CACHE = 512


@dataclass(frozen=True)
class LoadedGeometry:
    """A geometry ready to draw and to rasterise, in local coordinates (metres)."""

    meshes: tuple[trimesh.Trimesh, ...]  # with visuals (UVs, materials) for renderers
    triangles: np.ndarray  # (T, 3, 3) float64 corner positions of every triangle, all parts together
    closed: bool  # watertight, consistently wound, outward: front-facing triangles cover the silhouette
    key: str  # cache identity: resolved path + mtime, or the primitive's JSON
    vertices: np.ndarray  # (V, 3) float64, all parts together (``triangles == vertices[faces]``)
    faces: np.ndarray  # (T, 3) int64
    # Edge topology of the oriented-manifold part of the surface (faces whose every edge lies in one face,
    # or in two faces that traverse it in opposite directions), so a silhouette can be filled from the
    # few edges between front- and back-facing triangles instead of from every triangle: every edge
    # once, as vertex indices in the winding of its first face, and its faces (second -1 on a boundary).
    # ``loose_faces`` are the faces left out (non-manifold or degenerate); None when nothing qualifies.
    edges: np.ndarray | None = None  # (E, 2) int64
    edge_faces: np.ndarray | None = None  # (E, 2) int64
    loose_faces: np.ndarray | None = None  # (L,) int64


def _indexed(meshes, key: str) -> LoadedGeometry:
    v, f = _concatenated(meshes)
    tris = v[f]
    edges, edge_faces, loose = _oriented_edges(v, f)
    closed = bool(
        edges is not None and len(loose) == 0 and (edge_faces[:, 1] >= 0).all() and _signed_volume(tris) > 0
    )
    return LoadedGeometry(tuple(meshes), tris, closed, key, v, f, edges, edge_faces, loose)


def _concatenated(meshes) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of all parts together, faces renumbered."""
    verts, faces, offset = [], [], 0
    for m in meshes:
        verts.append(m.vertices.view(np.ndarray).astype(np.float64))
        faces.append(m.faces.view(np.ndarray).astype(np.int64) + offset)
        offset += len(m.vertices)
    return np.concatenate(verts), np.concatenate(faces)


def _signed_volume(tris: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])).sum() / 6.0)


def _oriented_edges(vertices: np.ndarray, faces: np.ndarray):
    """Pair every directed face edge with its reverse, vertices welded by exact position (UV seams split
    vertices, not the surface). Faces on a degenerate, over-shared or inconsistently wound edge are set
    aside as loose until the rest is an oriented manifold (with boundary)."""
    _, weld = np.unique(vertices, axis=0, return_inverse=True)
    weld = weld.ravel()
    n = int(weld.max()) + 1
    good = np.ones(len(faces), dtype=bool)
    for _ in range(8):
        idx = np.flatnonzero(good)
        if idx.size == 0:
            return None, None, None
        sub = faces[idx]
        a = sub.ravel()  # directed edges (f0,f1), (f1,f2), (f2,f0) of every face
        b = sub[:, [1, 2, 0]].ravel()
        face_of = np.repeat(idx, 3)
        wa, wb = weld[a], weld[b]
        bad = wa == wb
        key = np.minimum(wa, wb) * n + np.maximum(wa, wb)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        sizes = np.diff(np.r_[starts, len(ks)])
        group = np.repeat(np.arange(len(starts)), sizes)  # group of each sorted directed edge
        over = np.repeat(sizes > 2, sizes)
        pair = sizes == 2
        first = order[starts]
        second = np.full(len(starts), -1)
        second[pair] = order[starts[pair] + 1]
        same_way = np.zeros(len(starts), dtype=bool)
        same_way[pair] = wa[first[pair]] == wa[second[pair]]
        bad_sorted = over | same_way[group] | bad[order] | np.repeat(bad[first], sizes)
        if not bad_sorted.any():
            edges = np.stack([a[first], b[first]], axis=1)
            edge_faces = np.stack(
                [face_of[first], np.where(pair, face_of[np.maximum(second, 0)], -1)], axis=1
            )
            return edges, edge_faces, np.flatnonzero(~good)
        good[face_of[order[bad_sorted]]] = False
    return None, None, None


_SPHERES: dict[str, tuple[np.ndarray, float]] = {}


def bounding_sphere(geom: LoadedGeometry) -> tuple[np.ndarray, float]:
    """(centre, radius) of a geometry's vertices in its local frame, cached by geometry key."""
    sphere = _SPHERES.get(geom.key)
    if sphere is None:
        v = geom.vertices
        centre = (v.min(axis=0) + v.max(axis=0)) / 2
        sphere = _SPHERES[geom.key] = (centre, float(np.sqrt(((v - centre) ** 2).sum(axis=1).max())))
    return sphere


class ViewTest:
    """Whether a posed bounding sphere can touch the camera's image: a conservative test against the near
    plane and the four side planes (symmetric about the optical axis, as wide as the farther image edge).
    False only for what no pixel can show, so the renderer may skip drawing it and annotation may skip its
    silhouette."""

    def __init__(self, cam):
        self.world_to_cam = np.linalg.inv(pose_matrix(cam.pose))
        self.znear = cam.znear
        tx = max(abs(cam.cx), abs(cam.width - cam.cx)) / cam.fx
        ty = max(abs(cam.cy), abs(cam.height - cam.cy)) / cam.fy
        self.sides = [(t, 1.0 / math.sqrt(1.0 + t * t)) for t in (tx, ty)]

    def __call__(self, sphere: tuple[np.ndarray, float], pose: np.ndarray) -> bool:
        centre, radius = sphere
        m = self.world_to_cam @ pose
        x, y, z = m[:3, :3] @ centre + m[:3, 3]
        r = radius * float(np.linalg.norm(pose[:3, :3], axis=0).max()) * (1 + 1e-6) + 1e-9
        if z + self.znear > r:  # wholly behind the near plane (the camera looks down -z)
            return False
        for coord, (t, norm) in zip((x, y), self.sides, strict=True):
            if (abs(coord) + t * z) * norm > r:  # wholly beyond the left/right or top/bottom plane
                return False
        return True


def object_to_world(obj: SceneObject) -> np.ndarray:
    """4x4 local-to-world transform of an object, including its uniform ``scale``."""
    m = pose_matrix(obj.pose).copy()
    if obj.scale != 1.0:
        m[:3, :3] *= obj.scale
    return m


def geometry_key(geom: Geometry) -> str:
    if geom.kind() == "mesh":
        path = geom.mesh
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            raise AssetError(path, "mesh file not found") from None
        return f"mesh:{_resolved(str(path), os.getcwd())}:{stamp}"
    return "prim:" + geom.model_dump_json(exclude_none=True)


@lru_cache(maxsize=4096)
def _resolved(path: str, _cwd: str) -> str:
    """``path`` made absolute with links followed: asked for every object of every image (a shelf has
    ~140), where resolving each time cost ~0.3 ms; the working directory is part of the key."""
    return str(Path(path).resolve())


def load_geometry(geom: Geometry) -> LoadedGeometry:
    """The triangles of ``geom``; cached, so a worker loads each mesh file once."""
    key = geometry_key(geom)
    if key.startswith("mesh:"):
        return _load_mesh_file(key, _resolved(str(geom.mesh), os.getcwd()))
    return _load_primitive(key)


_UNIT_PRIMITIVES = {
    "box": Geometry(box=(1.0, 1.0, 1.0)),
    "plane": Geometry(plane=(1.0, 1.0)),
    "cylinder": Geometry(cylinder=(1.0, 1.0)),
}


def shared_geometry(geom: Geometry) -> tuple[LoadedGeometry, np.ndarray | None]:
    """(geometry, stretch): a primitive as the one cached unit mesh of its kind plus the per-axis scale
    that sizes it (``placed_geometry`` folds it into the object's transform), a mesh as itself (None).

    Randomized scenes size every box and can differently; loading each size would rebuild and re-upload
    a mesh per object per image. The stretched unit mesh has exactly the sized mesh's vertices (the
    sizes multiply the same unit coordinates), so renderers and silhouettes agree."""
    kind = geom.kind()
    if kind == "mesh":
        return load_geometry(geom), None
    if kind == "box":
        stretch = np.asarray(geom.box, dtype=np.float64)
    elif kind == "plane":
        stretch = np.array([geom.plane[0], geom.plane[1], 1.0])
    else:
        r, h = geom.cylinder
        stretch = np.array([r, r, h])
    return load_geometry(_UNIT_PRIMITIVES[kind]), stretch


def placed_geometry(obj: SceneObject) -> tuple[LoadedGeometry, np.ndarray]:
    """(geometry, 4x4 local-to-world transform) of an object: its shared geometry and the transform that
    places and sizes it, a unit primitive's stretch folded in. Renderers and silhouettes all use this pair."""
    geom, stretch = shared_geometry(obj.geometry)
    pose = object_to_world(obj)
    if stretch is not None:
        pose[:3, :3] = pose[:3, :3] * stretch  # scale the unit primitive's local axes
    return geom, pose


# ---- mesh files ----------------------------------------------------------------------------------------
@lru_cache(maxsize=_MESH_CACHE)
def _load_mesh_file(key: str, path: str) -> LoadedGeometry:
    return load_mesh_file(path, key)


def load_mesh_file(path: str, key: str, in_entry: bool = False) -> LoadedGeometry:
    """Read a mesh file; what is derived from it (UVs for parts without, edge topology) comes from the
    catalog's stored copy when there is one for these bytes (``synth.geometry_cache``), else it is
    derived and stored there. ``in_entry``: ``path`` is a catalog entry's mesh still being written."""
    parts = _mesh_parts(path)
    store_key = geometry_cache.key_of(path, in_entry)
    if store_key is not None:
        stored = geometry_cache.load(path, store_key)
        loaded = _from_stored(parts, stored, key) if stored is not None else None
        if loaded is not None:
            prep_cache.STATS.count(computed=False)
            return loaded
    if store_key is None:
        return _indexed([with_uv(p) for p in parts], key)
    with prep_cache.STATS.timing():  # a catalog mesh's preparation that was not stored yet
        loaded = _indexed([with_uv(p) for p in parts], key)
        geometry_cache.store(path, store_key, _to_stored(parts, loaded), in_entry)
    prep_cache.STATS.count(computed=True)
    return loaded


def _mesh_parts(path: str) -> list[trimesh.Trimesh]:
    try:
        scene = trimesh.load(path, force="scene")
    except Exception as e:  # trimesh raises many types for corrupt files
        raise AssetError(path, f"cannot load mesh ({e.__class__.__name__}: {str(e)[:80]})") from None
    parts = _posed_parts(scene)
    if not parts:
        raise AssetError(path, "mesh file holds no triangles")
    return parts


def _posed_parts(scene: trimesh.Scene) -> list[trimesh.Trimesh]:
    """Every triangle mesh of a loaded file moved to its instance pose, as ``Scene.dump`` makes them but
    sharing the texture images instead of copying them: a copy decodes and duplicates each one (~30 ms
    for a retail label), and the images are only read from here on. The file's vertex normals come
    along (a plain copy drops them, and recomputing them cost a worker ~10 ms per mesh)."""
    parts = []
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        mesh = scene.geometry[name]
        if not isinstance(mesh, trimesh.Trimesh) or not len(mesh.faces):
            continue
        part = mesh.copy(include_visual=False, include_cache=True)  # keeps the file's vertex normals
        visual = mesh.visual
        if isinstance(visual, trimesh.visual.TextureVisuals):
            uv = None if visual.uv is None else np.array(visual.uv)
            part.visual = trimesh.visual.TextureVisuals(
                uv=uv, material=visual.material, face_materials=copy.copy(visual.face_materials)
            )
        else:
            part.visual = visual.copy()
        part.vertex_attributes.update({k: copy.deepcopy(v) for k, v in mesh.vertex_attributes.items()})
        part.face_attributes.update({k: copy.deepcopy(v) for k, v in mesh.face_attributes.items()})
        part.apply_transform(transform)
        parts.append(part)
    return parts


def _needs_uv(mesh: trimesh.Trimesh) -> bool:
    """Whether ``with_uv`` replaces this mesh (no UVs and no per-vertex colours)."""
    visual = mesh.visual
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.uv is not None:
        return False
    return visual.kind != "vertex"


def _to_stored(parts, loaded: LoadedGeometry) -> geometry_cache.StoredGeometry:
    projected = {}
    for i, (part, mesh) in enumerate(zip(parts, loaded.meshes, strict=True)):
        if mesh is not part:
            rgba = np.asarray(mesh.visual.material.baseColorFactor, dtype=np.uint8)
            v = mesh.vertices.view(np.ndarray)
            n = mesh.vertex_normals.view(np.ndarray)
            projected[i] = geometry_cache.ProjectedPart(v, n, mesh.visual.uv.view(np.ndarray), rgba)
    return geometry_cache.StoredGeometry(
        len(parts), projected, loaded.closed, loaded.edges, loaded.edge_faces, loaded.loose_faces
    )


def _from_stored(parts, stored: geometry_cache.StoredGeometry, key: str) -> LoadedGeometry | None:
    """The geometry from the stored derivations, or None when they do not fit the parts read."""
    if stored.n_parts != len(parts) or any(
        (i in stored.projected) != _needs_uv(p) for i, p in enumerate(parts)
    ):
        return None
    meshes = [
        _projected_mesh(**vars(stored.projected[i])) if i in stored.projected else p
        for i, p in enumerate(parts)
    ]
    v, f = _concatenated(meshes)
    e, ef, loose = stored.edges, stored.edge_faces, stored.loose_faces
    within = prep_cache.indexes_within
    if not (
        (e is None or within(e, len(v)))
        and (ef is None or (within(ef[:, 0], len(f)) and within(ef[:, 1], len(f), lowest=-1)))
        and (loose is None or within(loose, len(f)))
    ):
        return None  # (the second face of a boundary edge is -1)
    return LoadedGeometry(
        tuple(meshes), v[f], stored.closed, key, v, f, stored.edges, stored.edge_faces, stored.loose_faces
    )


def with_uv(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh itself if it has UVs (or per-vertex colours, which a texture must not replace); else a
    copy with box-projected UVs, so a randomized texture can be put on any mesh (CAD / STL parts have
    none). Each face is projected along its dominant normal axis, one texture tile per longest extent;
    vertices are split per face for that, keeping the original smooth normals, and the material
    becomes the default ``Material()`` (the mesh had no texture to keep). Normals are smooth except
    across edges sharper than 30 degrees."""
    if not _needs_uv(mesh):
        return mesh
    face_rgba = mesh.visual.face_colors[0] if mesh.visual.kind == "face" else None
    # split vertices at sharp edges first (CAD parts: a hex nut's faces must not share smoothed normals)
    mesh = trimesh.graph.smooth_shade(mesh, angle=math.radians(30))
    faces = mesh.faces.view(np.ndarray)
    corners = mesh.vertices.view(np.ndarray)[faces]  # (T, 3, 3)
    axis = np.abs(mesh.face_normals).argmax(axis=1)
    u_axis = np.where(axis == 0, 1, 0)  # dominant x -> (y, z), y -> (x, z), z -> (x, y)
    v_axis = np.where(axis == 2, 1, 2)
    lo = mesh.bounds[0]
    size = float(np.max(mesh.extents)) or 1.0
    t = np.arange(len(faces))[:, None]
    uv = np.stack(
        [
            (corners[t, np.arange(3), u_axis[:, None]] - lo[u_axis][:, None]) / size,
            (corners[t, np.arange(3), v_axis[:, None]] - lo[v_axis][:, None]) / size,
        ],
        axis=-1,
    )
    if face_rgba is not None:
        rgba = face_rgba
    else:
        rgba = [round(255 * c) for c in Material().base_color]
    return _projected_mesh(
        corners.reshape(-1, 3),
        mesh.vertex_normals[faces].reshape(-1, 3),
        uv.reshape(-1, 2),
        np.asarray(rgba, dtype=np.uint8),
    )


def _projected_mesh(vertices, normals, uv, rgba) -> trimesh.Trimesh:
    """A part with one vertex per triangle corner, box-projected UVs and a plain material of colour
    ``rgba`` (what ``with_uv`` makes, also rebuilt from ``synth.geometry_cache``)."""
    material = trimesh.visual.material.PBRMaterial(
        baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=Material().roughness
    )
    return trimesh.Trimesh(
        vertices=vertices,
        faces=np.arange(len(vertices)).reshape(-1, 3),
        vertex_normals=normals,
        visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
        process=False,
        validate=False,
    )


# ---- primitives ----------------------------------------------------------------------------------------
@lru_cache(maxsize=_PRIMITIVE_CACHE)
def _load_primitive(key: str) -> LoadedGeometry:
    geom = Geometry.model_validate_json(key[len("prim:") :])
    kind = geom.kind()
    if kind == "box":
        mesh = box_mesh(*geom.box)
    elif kind == "plane":
        mesh = plane_mesh(*geom.plane)
    else:
        mesh = cylinder_mesh(*geom.cylinder)
    return _indexed([mesh], key)


def _textured(vertices, faces, uv, normals) -> trimesh.Trimesh:
    """A primitive with UVs and an untextured material equal to ``Material()``'s defaults (trimesh would
    otherwise attach a placeholder 2x2 texture image)."""
    d = Material()
    material = trimesh.visual.material.PBRMaterial(
        baseColorFactor=[round(255 * c) for c in d.base_color],
        metallicFactor=d.metallic,
        roughnessFactor=d.roughness,
    )
    visual = trimesh.visual.TextureVisuals(uv=np.asarray(uv, dtype=np.float64), material=material)
    return trimesh.Trimesh(
        vertices=np.asarray(vertices, dtype=np.float64),
        faces=np.asarray(faces, dtype=np.int64),
        vertex_normals=np.asarray(normals, dtype=np.float64),
        visual=visual,
        process=False,
        validate=False,
    )


def plane_mesh(sx: float, sy: float) -> trimesh.Trimesh:
    """A rectangle in local XY facing +Z; UV (0,0) at (-x, -y)."""
    hx, hy = sx / 2, sy / 2
    v = [[-hx, -hy, 0], [hx, -hy, 0], [hx, hy, 0], [-hx, hy, 0]]
    uv = [[0, 0], [1, 0], [1, 1], [0, 1]]
    return _textured(v, [[0, 1, 2], [0, 2, 3]], uv, [[0, 0, 1]] * 4)


def box_mesh(sx: float, sy: float, sz: float) -> trimesh.Trimesh:
    """A box centred at the origin: 6 faces of 4 vertices each, every face mapped to the full texture."""
    h = np.array([sx, sy, sz]) / 2
    verts, faces, uvs, normals = [], [], [], []
    # (normal axis, sign, u axis, v axis): u x v = normal so every face winds counter-clockwise outward
    for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)):
        n = np.zeros(3)
        n[axis] = sign
        u_axis = np.zeros(3)
        u_axis[(axis + 1) % 3] = 1.0
        v_axis = np.cross(n, u_axis)
        base = len(verts)
        for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            verts.append(h * (n + du * u_axis + dv * v_axis))
            uvs.append([(du + 1) / 2, (dv + 1) / 2])
            normals.append(n)
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return _textured(verts, faces, uvs, normals)


def cylinder_mesh(radius: float, height: float, segments: int = CYLINDER_SEGMENTS) -> trimesh.Trimesh:
    """A capped cylinder along local Z; the side wraps the texture once around (u = angle / 2 pi)."""
    verts, faces, uvs, normals = [], [], [], []
    hz = height / 2
    for i in range(segments + 1):  # seam vertices duplicated so u runs 0..1 (same position as i = 0)
        a = 2 * math.pi * (i % segments) / segments
        c, s = math.cos(a), math.sin(a)
        verts += [[radius * c, radius * s, -hz], [radius * c, radius * s, hz]]
        uvs += [[i / segments, 0.0], [i / segments, 1.0]]
        normals += [[c, s, 0.0], [c, s, 0.0]]
    for i in range(segments):
        b = 2 * i
        faces += [[b, b + 2, b + 3], [b, b + 3, b + 1]]
    for z, nz in ((hz, 1.0), (-hz, -1.0)):
        centre = len(verts)
        verts.append([0.0, 0.0, z])
        uvs.append([0.5, 0.5])
        normals.append([0.0, 0.0, nz])
        for i in range(segments):
            a = 2 * math.pi * i / segments
            verts.append([radius * math.cos(a), radius * math.sin(a), z])
            uvs.append([0.5 + 0.5 * math.cos(a), 0.5 + 0.5 * math.sin(a)])
            normals.append([0.0, 0.0, nz])
        for i in range(segments):
            a, b = centre + 1 + i, centre + 1 + (i + 1) % segments
            faces.append([centre, a, b] if nz > 0 else [centre, b, a])
    return _textured(verts, faces, uvs, normals)
