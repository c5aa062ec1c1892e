"""Settling objects without a physics engine: exact collision-checked drops with a quasi-static stability test.

An object is moved along a straight line (dropped, lifted, slid) by *conservative advancement*: the
distance between two convex hulls and the separating plane through their nearest points bound how far the
object can travel before it comes within ``clearance`` of the other; repeating converges to the exact
first contact in a few steps per pair, and proves "never touches" when the motion points away from the
plane. So objects never interpenetrate, and a dropped object stops exactly where it first meets something.

Landing is not the same as resting: a box dropped on the edge of another would topple. After a drop, the
contact points that can push the object up (within a 45-degree friction cone) are collected; the object is
stable when its centre of mass lies above their convex hull (the support polygon). An unstable object
slides off in the direction it would tip and is dropped again, like a part falling down the side of a pile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import fcl
import numpy as np

from synth.randomize.shapes import SURFACE_TOLERANCE, Shape, near_surface

SUPPORT_TAG = "support"  # Body.tag of static structure (floors, boards, walls): flat-topped boxes
CLEARANCE = 5e-4  # metres kept between resting objects: no interpenetration even with float error
CONTACT_TOLERANCE = SURFACE_TOLERANCE  # surfaces closer than this count as touching
MIN_SUPPORT_NORMAL_Z = math.cos(math.radians(45.0))  # steeper contacts cannot carry the object
_EPS = 1e-6
_MAX_ADVANCE_STEPS = 200


@dataclass(eq=False)
class Body:
    """A placed object (or support) in the world, with its hull in world coordinates."""

    shape: Shape
    pose: np.ndarray  # 4x4 local-to-world
    fcl_object: fcl.CollisionObject
    vertices: np.ndarray  # hull vertices, world
    planes: np.ndarray  # hull planes, world
    lo: np.ndarray  # world AABB of the hull
    hi: np.ndarray
    tag: object = None
    _surface_object: fcl.CollisionObject | None = None

    def surface_object(self) -> fcl.CollisionObject:
        """The real (non-convex) surface placed at this pose; built once, it costs a pass over the mesh."""
        if self._surface_object is None:
            self._surface_object = fcl.CollisionObject(
                self.shape.surface, fcl.Transform(self.pose[:3, :3], self.pose[:3, 3])
            )
        return self._surface_object


@dataclass
class Support:
    """Where a resting object touches the world and whether it balances there."""

    touching: list[Body] = field(default_factory=list)
    carriers: list[Body] = field(default_factory=list)  # touching bodies that push the object up
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # supporting contact points
    stable: bool = False
    slide_direction: np.ndarray | None = None  # horizontal unit vector it would tip towards
    overhang: float = 0.0  # horizontal distance of the centre of mass outside the support polygon


def make_pose(rotation: np.ndarray, translation) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


class World:
    """The bodies placed so far, and the motions that respect them."""

    def __init__(self, clearance: float = CLEARANCE):
        self.clearance = clearance
        self.bodies: list[Body] = []
        self._lo = np.zeros((0, 3))
        self._hi = np.zeros((0, 3))
        self._request = fcl.DistanceRequest(enable_nearest_points=True)

    # ---- bookkeeping --------------------------------------------------------------------------------
    def add(self, shape: Shape, pose: np.ndarray, tag=None) -> Body:
        body = _make_body(shape, pose, tag)
        self.bodies.append(body)
        self._lo = np.vstack([self._lo, body.lo])
        self._hi = np.vstack([self._hi, body.hi])
        return body

    def distance(self, a: Body | fcl.CollisionObject, b: Body) -> tuple[float, np.ndarray, np.ndarray]:
        """Hull distance and nearest points (world) between a body or fcl object and a body."""
        obj = a.fcl_object if isinstance(a, Body) else a
        result = fcl.DistanceResult()
        d = fcl.distance(obj, b.fcl_object, self._request, result)
        pa, pb = result.nearest_points
        return float(d), np.asarray(pa, dtype=np.float64), np.asarray(pb, dtype=np.float64)

    def _overlapping(self, lo: np.ndarray, hi: np.ndarray, margin: float) -> list[Body]:
        hit = np.all(self._lo <= hi + margin, axis=1) & np.all(self._hi >= lo - margin, axis=1)
        return [self.bodies[i] for i in np.flatnonzero(hit)]

    # ---- motion -------------------------------------------------------------------------------------
    def advance(self, shape: Shape, pose: np.ndarray, direction, max_travel: float) -> float:
        """How far ``shape`` at ``pose`` can translate along ``direction`` (unit) before it comes within
        ``clearance`` of any body: ``max_travel`` when nothing is in the way, ``inf`` never returned."""
        d = np.asarray(direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        lo, hi = _world_bounds(shape, pose)
        sweep_lo = np.minimum(lo, lo + d * max_travel)
        sweep_hi = np.maximum(hi, hi + d * max_travel)
        candidates = self._overlapping(sweep_lo, sweep_hi, self.clearance + 1e-4)
        if not candidates:
            return max_travel
        obj = fcl.CollisionObject(shape.fcl_geometry, fcl.Transform(pose[:3, :3], pose[:3, 3]))
        start = pose[:3, 3].copy()
        travel = max_travel
        for body in candidates:
            travel = min(travel, self._approach(obj, start, d, body, travel))
            if travel <= 0.0:
                return 0.0
        return travel

    def _approach(self, obj, start, d, body: Body, max_travel: float) -> float:
        """Conservative advancement of one convex pair along d; max_travel if they never meet within it."""
        t = 0.0
        for _ in range(_MAX_ADVANCE_STEPS):
            obj.setTranslation(start + t * d)
            gap, pa, pb = self.distance(obj, body)
            normal = pb - pa
            length = float(np.sqrt(normal @ normal))
            if gap <= 0.0 or length < 1e-12:
                return t  # touching or overlapping already: no safe direction is known
            closing = float(d @ normal) / length
            if closing <= 1e-9:
                return max_travel  # moving away from the separating plane: they never meet
            if gap <= self.clearance + _EPS:
                return t
            t += (gap - self.clearance) / closing
            if t >= max_travel:
                return max_travel
        return t

    def drop(self, shape: Shape, rotation: np.ndarray, xy, floor_z: float | None = None) -> np.ndarray | None:
        """Pose of ``shape`` (turned by ``rotation``) dropped from above at origin ``xy`` onto whatever is
        below; None when nothing below stops it (or, with ``floor_z``, it would sink below that height)."""
        lo_r, hi_r = shape.rotated_bounds(rotation)
        x, y = float(xy[0]), float(xy[1])
        foot_lo = np.array([x + lo_r[0], y + lo_r[1]])
        foot_hi = np.array([x + hi_r[0], y + hi_r[1]])
        if not self.bodies:
            return None
        below = np.all(self._lo[:, :2] <= foot_hi + self.clearance, axis=1) & np.all(
            self._hi[:, :2] >= foot_lo - self.clearance, axis=1
        )
        if not below.any():
            return None
        column_top = float(self._hi[below, 2].max())
        world_bottom = float(self._lo[:, 2].min())
        start_z = column_top + 4 * self.clearance - lo_r[2]  # the hull's bottom just above everything
        pose = make_pose(rotation, (x, y, start_z))
        max_travel = (start_z + lo_r[2]) - world_bottom + 1.0
        travel = self.advance(shape, pose, (0.0, 0.0, -1.0), max_travel)
        if travel >= max_travel:
            return None
        pose[2, 3] -= travel
        if floor_z is not None and pose[2, 3] + lo_r[2] < floor_z - 1e-9:
            return None
        return pose

    def fall(self, shape: Shape, pose: np.ndarray) -> np.ndarray | None:
        """``pose`` lowered from where it is until it meets something; None if nothing is below it."""
        lo, _ = _world_bounds(shape, pose)
        world_bottom = float(self._lo[:, 2].min()) if self.bodies else lo[2]
        max_travel = lo[2] - world_bottom + 1.0
        travel = self.advance(shape, pose, (0.0, 0.0, -1.0), max_travel)
        if travel >= max_travel:
            return None
        fallen = pose.copy()
        fallen[2, 3] -= travel
        return fallen

    def move(self, shape: Shape, pose: np.ndarray, direction, distance: float) -> np.ndarray:
        """``pose`` translated along ``direction`` as far as possible up to ``distance``."""
        d = np.asarray(direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        travel = self.advance(shape, pose, d, distance)
        moved = pose.copy()
        moved[:3, 3] += d * travel
        return moved

    # ---- support ------------------------------------------------------------------------------------
    def support(
        self, shape: Shape, pose: np.ndarray, tolerance: float = CONTACT_TOLERANCE, resting_pose: bool = False
    ) -> Support:
        """What ``shape`` at ``pose`` rests on, and whether its centre of mass is over the support polygon.

        Contacts are found on the hulls, then kept only where both objects have real material (for
        non-convex objects, whose hull faces may span empty space). With ``resting_pose`` (the rotation
        is one of the shape's stable poses) an object touching only supports, whose tops are flat, is
        stable without looking further: that is what a stable pose means."""
        probe = _make_body(shape, pose, None)
        com = pose[:3, :3] @ shape.center_mass + pose[:3, 3]
        near = []
        for body in self._overlapping(probe.lo, probe.hi, tolerance):
            gap, pa, pb = self.distance(probe, body)
            if gap <= tolerance:
                near.append((body, pa, pb))
        touching = [body for body, _, _ in near]
        if resting_pose and touching and all(b.tag == SUPPORT_TAG for b in touching):
            for b in touching:  # lying on a support's top face, centre of mass over it
                if (
                    abs(b.hi[2] - probe.lo[2]) <= tolerance
                    and np.all(com[:2] >= b.lo[:2])
                    and np.all(com[:2] <= b.hi[:2])
                ):
                    return Support(touching=touching, carriers=[b], stable=True)
        points, carriers = [], []
        for body, pa, pb in near:
            ours = _vertices_on_faces(probe, body, tolerance, facing_up=True)  # ours on its upper faces
            theirs = _vertices_on_faces(body, probe, tolerance, facing_up=False)  # its on our lower faces
            # edge-on-edge contacts show up only as the nearest-point pair
            normal = pb - pa
            length = np.linalg.norm(normal)
            middle = np.zeros((0, 3))
            if length < 1e-12 or normal[2] / length <= -MIN_SUPPORT_NORMAL_Z:
                middle = _real(body, _real(probe, ((pa + pb) / 2)[None], tolerance), tolerance)
            found = np.concatenate([ours, theirs, middle])
            found = found[found[:, 2] <= com[2] + tolerance]
            if len(found):
                carriers.append(body)
                points.append(found)
        result = Support(touching=touching, carriers=carriers)
        if not carriers:
            return result
        pts = np.concatenate(points)
        result.points = pts
        size = float(np.linalg.norm(shape.extents[:2]))
        allowed = max(1e-3, 0.02 * size)
        outside, nearest = _outside_distance(pts[:, :2], com[:2])
        result.overhang = outside
        result.stable = outside <= allowed
        if not result.stable:
            direction = com[:2] - nearest
            result.slide_direction = np.array([*(direction / np.linalg.norm(direction)), 0.0])
        return result


# ---- helpers -------------------------------------------------------------------------------------------
def _vertices_on_faces(owner: Body, other: Body, tolerance: float, facing_up: bool) -> np.ndarray:
    """Hull vertices of ``owner`` within ``tolerance`` of a face of ``other`` whose outward normal points
    up (``facing_up``) or down, kept where both bodies have real material there."""
    near = np.flatnonzero(
        np.all((owner.vertices >= other.lo - tolerance) & (owner.vertices <= other.hi + tolerance), axis=1)
    )
    if not len(near):
        return np.zeros((0, 3))
    points = owner.vertices[near]
    sd = points @ other.planes[:, :3].T - other.planes[:, 3]  # signed distance to each face plane
    face = sd.argmax(axis=1)
    normal_z = other.planes[face, 2]
    on = (sd[np.arange(len(sd)), face] <= tolerance) & (
        normal_z >= MIN_SUPPORT_NORMAL_Z if facing_up else normal_z <= -MIN_SUPPORT_NORMAL_Z
    )
    return _real_contacts(owner, near[on], other, face[on], points[on], tolerance)


_MAX_SURFACE_CHECKS = 16  # uncertain contact points per pair checked against a real surface


def _real(body: Body, points: np.ndarray, tolerance: float) -> np.ndarray:
    """The points that lie within ``tolerance`` of the body's real surface (all of them for a convex body)."""
    return points[_on_material(body, points, np.ones(len(points), dtype=bool), tolerance)]


def _on_material(body: Body, points: np.ndarray, doubtful: np.ndarray, tolerance: float) -> np.ndarray:
    """Mask of points on the body's real material; only ``doubtful`` ones are checked (at most
    ``_MAX_SURFACE_CHECKS``, evenly spread; the others of them count as not on material)."""
    keep = ~doubtful
    if body.shape.surface is None:
        return np.ones(len(points), dtype=bool)
    idx = np.flatnonzero(doubtful)
    if len(idx) > _MAX_SURFACE_CHECKS:
        idx = idx[np.linspace(0, len(idx) - 1, _MAX_SURFACE_CHECKS).round().astype(int)]
    if len(idx):
        keep[idx] = near_surface(body.surface_object(), points[idx], tolerance)
    return keep


def _real_contacts(
    owner: Body,
    vertex_ids: np.ndarray,
    other: Body,
    plane_ids: np.ndarray,
    points: np.ndarray,
    tolerance: float,
) -> np.ndarray:
    """Contact points that are vertices of ``owner`` lying on planes of ``other``, kept where both have
    real material. The precomputed flags settle most points; the rest are checked against the meshes."""
    if not len(points):
        return points
    keep = np.ones(len(points), dtype=bool)
    if owner.shape.vertex_real is not None:
        keep &= _on_material(owner, points, ~owner.shape.vertex_real[vertex_ids], tolerance)
    if other.shape.plane_solid is not None:
        keep &= _on_material(other, points, keep & ~other.shape.plane_solid[plane_ids], tolerance)
    return points[keep]


def _world_bounds(shape: Shape, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = shape.vertices @ pose[:3, :3].T + pose[:3, 3]
    return v.min(axis=0), v.max(axis=0)


def _make_body(shape: Shape, pose: np.ndarray, tag) -> Body:
    pose = np.asarray(pose, dtype=np.float64).copy()
    rot, trans = pose[:3, :3], pose[:3, 3]
    vertices = shape.vertices @ rot.T + trans
    normals = shape.planes[:, :3] @ rot.T
    offsets = shape.planes[:, 3] + normals @ trans
    obj = fcl.CollisionObject(shape.fcl_geometry, fcl.Transform(rot, trans))
    return Body(
        shape,
        pose,
        obj,
        vertices,
        np.column_stack([normals, offsets]),
        vertices.min(axis=0),
        vertices.max(axis=0),
        tag,
    )


_DIRECTIONS = np.stack(
    [
        np.cos(np.linspace(0, 2 * math.pi, 128, endpoint=False)),
        np.sin(np.linspace(0, 2 * math.pi, 128, endpoint=False)),
    ]
)  # (2, 128) unit vectors


def _outside_distance(points: np.ndarray, q: np.ndarray) -> tuple[float, np.ndarray]:
    """Distance from q to the convex hull of 2-D points (0 inside) and the hull point nearest to q.

    Uses support functions: dist = max over unit u of (u.q - max_i u.p_i), evaluated on 128 directions
    (exact for polygons up to a relative error of 1 - cos(pi/128) = 0.03 %). Works for one point or
    collinear points too, where a polygon routine would need special cases.
    """
    support = (points @ _DIRECTIONS).max(axis=0)
    gaps = q @ _DIRECTIONS - support
    i = int(gaps.argmax())
    if gaps[i] <= 0.0:
        return 0.0, q.copy()
    return float(gaps[i]), q - gaps[i] * _DIRECTIONS[:, i]
