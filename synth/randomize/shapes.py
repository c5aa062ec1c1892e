"""Collision shapes for placement: a convex hull per geometry, with its resting orientations.

Objects are settled against their convex hulls: a hull contains the object, so hulls that do not touch
guarantee objects that do not interpenetrate, and hull-vs-hull distance (GJK in python-fcl) is fast and
exact. Resting orientations come from ``trimesh.poses.compute_stable_poses`` on the hull with the object's
own centre of mass. Both are expensive enough (tens of ms per SKU) to compute once per process, so shapes
are cached by mesh file (path + modification time) or primitive dimensions.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fcl
import numpy as np
import trimesh

from synth import prep_cache
from synth.errors import AssetError
from synth.geometry import geometry_key, load_geometry, load_mesh_file
from synth.prep_cache import ShapePrep
from synth.scene import Geometry

MAX_STABLE_POSES = 24  # the most likely resting orientations kept per shape
CONVEX_VOLUME_RATIO = 0.97  # a closed mesh filling this much of its hull is treated as convex
SURFACE_TOLERANCE = 2e-3  # a point this close to the real surface is on real material
SURFACE_SAMPLES_PER_FACE = 24  # points per hull face tested when classifying faces as solid
MAX_HULL_PLANES = 72  # finely tessellated hulls are replaced by a bounding polytope with this many faces
MIN_PLANE_ANGLE_DEG = 9.0  # ... whose face normals are at least this far apart
MIN_STABLE_PROBABILITY = 0.005
CYLINDER_HULL_SEGMENTS = 32


@dataclass(frozen=True, eq=False)
class Shape:
    """A convex collision hull in the object's local frame (metres), ready for python-fcl.

    ``planes`` holds one row ``(nx, ny, nz, d)`` per hull face with outward unit normal: a point x is inside
    when ``n . x <= d`` for every row. ``stable_rotations[i]`` turns the object so that it rests on a
    horizontal plane, with probability ``stable_probabilities[i]`` of landing that way.

    ``surface`` is the real triangle surface (a BVH) of a non-convex object, None when the hull is the
    object: it tells a contact on real material from a hull face spanning empty space (an L-bracket's
    hypotenuse, the gap under a bolt's head). Precomputed so contacts rarely need the BVH:
    ``vertex_real[i]`` says hull vertex i lies on real material, ``plane_solid[j]`` that all of hull face
    (plane) j does.
    """

    key: str
    vertices: np.ndarray  # (V, 3)
    planes: np.ndarray  # (F, 4)
    center_mass: np.ndarray  # (3,)
    stable_rotations: np.ndarray  # (K, 3, 3)
    stable_probabilities: np.ndarray  # (K,)
    fcl_geometry: fcl.CollisionGeometry
    surface: fcl.BVHModel | None = None
    vertex_real: np.ndarray | None = None  # (V,) bool, None when convex (all real)
    plane_solid: np.ndarray | None = None  # (F,) bool, None when convex (all solid)

    @property
    def extents(self) -> np.ndarray:
        return self.vertices.max(axis=0) - self.vertices.min(axis=0)

    def rotated_bounds(self, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds of the hull after ``rotation`` (about the local origin)."""
        v = self.vertices @ rotation.T
        return v.min(axis=0), v.max(axis=0)


def mesh_shape(mesh_path: str) -> Shape:
    """The shape of a catalog mesh, cached by path and modification time."""
    try:
        stamp = os.stat(mesh_path).st_mtime_ns
    except OSError:
        raise AssetError(mesh_path, "mesh file not found") from None
    return _mesh_shape_cached(mesh_path, stamp)


@lru_cache(maxsize=256)
def _mesh_shape_cached(mesh_path: str, stamp: int) -> Shape:
    prep = prep_cache.cached(mesh_path, lambda: prepare_mesh(mesh_path, *_welded(mesh_path)))
    return _shape_from_prep(f"mesh:{mesh_path}:{stamp}", prep, mesh_path)


def store_preparation(mesh_path: str | Path) -> None:
    """Compute and store the preparations of a catalog entry's mesh (``simreal sku add``): its
    render-ready geometry (``synth.geometry_cache``) and its placement shape (``synth.prep_cache``)."""
    path = str(mesh_path)
    loaded = load_mesh_file(path, geometry_key(Geometry(mesh=path)), in_entry=True)
    prep_cache.cached(path, lambda: prepare_mesh(path, *_weld(loaded)), in_entry=True)


def _welded(mesh_path: str) -> tuple[np.ndarray, np.ndarray]:
    return _weld(load_geometry(Geometry(mesh=mesh_path)))


def _weld(loaded) -> tuple[np.ndarray, np.ndarray]:
    """The per-part, per-UV-seam corners of a mesh welded into one indexed surface."""
    vertices, inverse = np.unique(loaded.triangles.reshape(-1, 3), axis=0, return_inverse=True)
    return vertices, inverse.reshape(-1, 3)


def prepare_mesh(mesh_path: str, vertices: np.ndarray, faces: np.ndarray) -> ShapePrep:
    """Hull, resting poses and real-material flags of a welded mesh: the costly part of its shape."""
    try:
        hull = _bounding_polytope(trimesh.convex.convex_hull(vertices))
    except Exception as e:  # qhull raises its own error types for flat or degenerate input
        raise AssetError(mesh_path, f"cannot build a convex hull ({e.__class__.__name__})") from None
    if hull.volume <= 0 or len(hull.faces) < 4:
        raise AssetError(mesh_path, "mesh is flat: it has no volume to place")
    center_mass, volume = _center_mass(vertices, faces, hull)
    transforms, probs = trimesh.poses.compute_stable_poses(hull, center_mass=center_mass)
    rotations, probabilities = _keep_likely(np.asarray(transforms)[:, :3, :3], np.asarray(probs))
    hull_v = np.asarray(hull.vertices, dtype=np.float64)
    hull_f = np.asarray(hull.faces, dtype=np.int64)
    rotations, probabilities = np.asarray(rotations, np.float64), np.asarray(probabilities, np.float64)
    if volume >= CONVEX_VOLUME_RATIO * hull.volume:
        return ShapePrep(hull_v, hull_f, center_mass, rotations, probabilities)
    shape = _make_shape(
        "", hull_v, hull_f, center_mass, rotations, probabilities, _surface_bvh(vertices, faces)
    )
    weld = (
        (vertices, np.asarray(faces, dtype=np.int64)) if len(faces) <= prep_cache.MAX_ROWS else (None, None)
    )
    return ShapePrep(
        hull_v, hull_f, center_mass, rotations, probabilities, shape.vertex_real, shape.plane_solid, *weld
    )


def _shape_from_prep(key: str, prep: ShapePrep, mesh_path: str) -> Shape:
    """The shape from its preparation; a non-convex one also gets its real surface (a BVH of the welded
    mesh, kept in the preparation when small enough, else welded again)."""
    p = prep
    shape = _make_shape(key, p.hull_vertices, p.hull_faces, p.center_mass, p.rotations, p.probabilities)
    if p.convex:
        return shape
    vertices, faces = (p.weld_vertices, p.weld_faces) if p.weld_faces is not None else _welded(mesh_path)
    surface = _surface_bvh(vertices, faces)
    return dataclasses.replace(shape, surface=surface, vertex_real=p.vertex_real, plane_solid=p.plane_solid)


def near_surface(
    surface_object: fcl.CollisionObject, points: np.ndarray, tolerance: float = SURFACE_TOLERANCE
) -> np.ndarray:
    """Which points lie within ``tolerance`` of a placed real surface (a ball of that radius touches it)."""
    ball = fcl.CollisionObject(fcl.Sphere(tolerance), fcl.Transform())
    request = fcl.CollisionRequest()
    keep = np.zeros(len(points), dtype=bool)
    for i, p in enumerate(points):
        ball.setTranslation(p)
        keep[i] = fcl.collide(ball, surface_object, request, fcl.CollisionResult()) > 0
    return keep


def _classify(
    vertices: np.ndarray, planes: np.ndarray, faces: np.ndarray, face_plane: np.ndarray, surface: fcl.BVHModel
) -> tuple[np.ndarray, np.ndarray]:
    """Real hull vertices, and hull planes whose every sampled point lies on real material."""
    placed = fcl.CollisionObject(surface, fcl.Transform())
    vertex_real = near_surface(placed, vertices)
    rng = np.random.default_rng(0)  # fixed: the classification is part of the cached shape
    plane_solid = np.ones(len(planes), dtype=bool)
    for j in range(len(planes)):
        tris = vertices[faces[face_plane == j]]
        if not len(tris):
            continue
        weights = rng.dirichlet((1.0, 1.0, 1.0), SURFACE_SAMPLES_PER_FACE)
        picks = rng.integers(len(tris), size=SURFACE_SAMPLES_PER_FACE)
        samples = np.einsum("nk,nkd->nd", weights, tris[picks])
        plane_solid[j] = bool(near_surface(placed, samples).all())
    return vertex_real, plane_solid


def box_shape(extents) -> Shape:
    """A box centred at the origin (primitive ``Geometry.box``)."""
    return _box_shape_cached(tuple(round(float(e), 9) for e in extents))


@dataclass(frozen=True, eq=False)
class _Template:
    """A unit primitive (vertices, planes) that scales to any size without recomputing its hull."""

    vertices: np.ndarray
    planes: np.ndarray
    rotations: np.ndarray

    def scaled(self, key: str, scale: np.ndarray, weights, geometry: fcl.CollisionGeometry) -> Shape:
        inverse = self.planes[:, :3] / scale  # plane n.x <= d becomes (n / s).x' <= d for x' = s x
        length = np.linalg.norm(inverse, axis=1, keepdims=True)
        planes = np.column_stack([inverse / length, self.planes[:, 3:] / length])
        vertices = self.vertices * scale
        weights = np.asarray(weights, dtype=np.float64)
        for arr in (vertices, planes):
            arr.setflags(write=False)
        return Shape(key, vertices, planes, _ORIGIN, self.rotations, weights / weights.sum(), geometry)


_ORIGIN = np.zeros(3)
_ORIGIN.setflags(write=False)


@lru_cache(maxsize=1)
def _unit_box() -> _Template:
    """A unit box and the 6 rotations putting each of its faces down (axis-major order)."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    rotations = np.array(
        [_rotation_taking_to_minus_z(axis, sign) for axis in range(3) for sign in (1.0, -1.0)]
    )
    template = _make_shape("unit-box", box.vertices, box.faces, np.zeros(3), rotations, np.ones(6))
    return _Template(template.vertices, template.planes, template.stable_rotations)


@lru_cache(maxsize=4096)
def _box_shape_cached(extents: tuple[float, float, float]) -> Shape:
    ex = np.asarray(extents)
    # each of the 6 faces can be the bottom; likelier the larger it is
    weights = np.repeat([ex[1] * ex[2], ex[0] * ex[2], ex[0] * ex[1]], 2)
    return _unit_box().scaled(f"box:{extents}", ex, weights, fcl.Box(*extents))


def cylinder_shape(radius: float, height: float) -> Shape:
    """A cylinder along local Z centred at the origin (primitive ``Geometry.cylinder``). Distances use the
    exact cylinder (it contains any renderer's inscribed tessellation); contact points and bounds use a
    circumscribed prism."""
    return _cylinder_shape_cached(round(float(radius), 9), round(float(height), 9))


@lru_cache(maxsize=1)
def _unit_prism() -> _Template:
    """A prism of radius 1 (circumscribing the unit circle) and height 1, and its resting rotations:
    standing on either cap, then lying on its side rolled to one of 8 angles about its own axis."""
    n = CYLINDER_HULL_SEGMENTS
    r_out = 1.0 / math.cos(math.pi / n)
    angles = 2 * math.pi * (np.arange(n) + 0.5) / n
    ring = np.stack([r_out * np.cos(angles), r_out * np.sin(angles)], axis=1)
    points = np.concatenate(
        [np.column_stack([ring, np.full(n, -0.5)]), np.column_stack([ring, np.full(n, 0.5)])]
    )
    hull = trimesh.convex.convex_hull(points)
    rotations = [np.eye(3), _rotation_taking_to_minus_z(2, -1.0)]
    for i in range(8):
        roll = trimesh.transformations.rotation_matrix(2 * math.pi * i / 8, [0, 0, 1])[:3, :3]
        rotations.append(trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0])[:3, :3] @ roll)
    template = _make_shape("unit-prism", hull.vertices, hull.faces, np.zeros(3), rotations, np.ones(10))
    return _Template(template.vertices, template.planes, template.stable_rotations)


@lru_cache(maxsize=4096)
def _cylinder_shape_cached(radius: float, height: float) -> Shape:
    cap, side = math.pi * radius**2, 2 * math.pi * radius * height
    return _unit_prism().scaled(
        f"cyl:{radius}:{height}",
        np.array([radius, radius, height]),
        [cap, cap] + [side / 8] * 8,
        fcl.Cylinder(radius, height),
    )


def geometry_shape(geom: Geometry) -> Shape:
    kind = geom.kind()
    if kind == "mesh":
        return mesh_shape(geom.mesh)
    if kind == "box":
        return box_shape(geom.box)
    if kind == "cylinder":
        return cylinder_shape(*geom.cylinder)
    raise AssetError("geometry", f"a {kind} has no volume and cannot be placed")


# ---- helpers -------------------------------------------------------------------------------------------
def _bounding_polytope(hull: trimesh.Trimesh) -> trimesh.Trimesh:
    """A convex polytope containing ``hull`` with at most ``MAX_HULL_PLANES`` faces (the hull itself when
    it is that simple already).

    A scanned or finely revolved mesh has a hull of thousands of faces, which makes every distance and
    contact query slow. Planes are taken from the hull's largest faces first, skipping normals within
    ``MIN_PLANE_ANGLE_DEG`` of one already chosen, each moved out to touch the hull, and intersected: the
    result still contains the object (so placement stays interpenetration-free) and keeps the big flat
    faces objects rest on; a round can gains well under 1 % of its radius.
    """
    if len(hull.faces) <= 2 * MAX_HULL_PLANES:
        return hull
    from scipy.spatial import HalfspaceIntersection

    normals = np.asarray(hull.face_normals)
    chosen = [np.array(v, dtype=np.float64) for v in np.vstack([np.eye(3), -np.eye(3)])]
    cos_min = math.cos(math.radians(MIN_PLANE_ANGLE_DEG))
    for i in np.argsort(-np.asarray(hull.area_faces), kind="stable"):
        if len(chosen) >= MAX_HULL_PLANES:
            break
        if np.max(np.asarray(chosen) @ normals[i]) < cos_min:
            chosen.append(normals[i])
    planes = np.asarray(chosen)
    offsets = (np.asarray(hull.vertices) @ planes.T).max(axis=0)
    interior = np.asarray(hull.vertices).mean(axis=0)
    corners = HalfspaceIntersection(np.column_stack([planes, -offsets]), interior).intersections
    return trimesh.convex.convex_hull(corners)


def _surface_bvh(vertices: np.ndarray, faces: np.ndarray) -> fcl.BVHModel:
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    model = fcl.BVHModel()
    model.beginModel(len(vertices), len(faces))
    model.addSubModel(vertices, faces)
    model.endModel()
    return model


def _center_mass(vertices: np.ndarray, faces: np.ndarray, hull: trimesh.Trimesh) -> tuple[np.ndarray, float]:
    """The solid's centre of mass and volume when its surface is closed, else the hull's centre of mass
    (uniform density) and volume 0 (an open surface counts as non-convex)."""
    welded = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    if welded.is_watertight and welded.is_winding_consistent and welded.volume > 1e-12:
        com = np.asarray(welded.center_mass, dtype=np.float64)
        inside = np.all(
            hull.face_normals @ com
            - np.einsum("ij,ij->i", hull.face_normals, hull.vertices[hull.faces[:, 0]])
            <= 1e-9
        )
        if np.all(np.isfinite(com)) and inside:
            return com, float(welded.volume)
    return np.asarray(hull.center_mass, dtype=np.float64), 0.0


def _keep_likely(rotations: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-probs, kind="stable")[:MAX_STABLE_POSES]
    keep = [i for i in order if probs[i] >= MIN_STABLE_PROBABILITY] or [int(order[0])]
    p = probs[keep]
    return rotations[keep], p / p.sum()


def _rotation_taking_to_minus_z(axis: int, sign: float) -> np.ndarray:
    """A rotation that turns local axis ``sign * e_axis`` to point down (world -Z)."""
    v = np.zeros(3)
    v[axis] = sign
    target = np.array([0.0, 0.0, -1.0])
    if np.allclose(v, target):
        return np.eye(3)
    if np.allclose(v, -target):
        return trimesh.transformations.rotation_matrix(math.pi, [1, 0, 0])[:3, :3]
    axis_v = np.cross(v, target)
    angle = math.acos(float(np.clip(np.dot(v, target), -1, 1)))
    return trimesh.transformations.rotation_matrix(angle, axis_v)[:3, :3]


def _make_shape(key: str, vertices, faces, center_mass, rotations, probabilities, surface=None) -> Shape:
    """``vertices``/``faces``: a convex hull with outward (counter-clockwise) winding."""
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    solid = lengths > 1e-12 * max(1.0, float(np.abs(vertices).max()) ** 2)  # drop sliver faces
    faces, tri, normals = faces[solid], tri[solid], normals[solid] / lengths[solid, None]
    offsets = np.einsum("ij,ij->i", normals, tri[:, 0])
    planes, face_plane = np.unique(
        np.round(np.column_stack([normals, offsets]), 12), axis=0, return_inverse=True
    )
    flat = np.column_stack([np.full(len(faces), 3), faces]).ravel()
    geometry = fcl.Convex(vertices, len(faces), flat)
    rotations = np.array(rotations, dtype=np.float64)
    probabilities = np.array(probabilities, dtype=np.float64)
    com = np.array(center_mass, dtype=np.float64)
    for arr in (vertices, planes, rotations, probabilities, com):
        arr.setflags(write=False)
    vertex_real = plane_solid = None
    if surface is not None:
        vertex_real, plane_solid = _classify(vertices, planes, faces, face_plane.ravel(), surface)
        vertex_real.setflags(write=False)
        plane_solid.setflags(write=False)
    return Shape(
        key, vertices, planes, com, rotations, probabilities, geometry, surface, vertex_real, plane_solid
    )
