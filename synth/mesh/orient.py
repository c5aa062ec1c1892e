"""Which way is up, and squaring a slightly tilted scan to the axes.

* **Up axis** (``up="auto"``): glTF is +Y up by spec, so ``y``; STL and PLY come from CAD / scanners that are
  +Z up, so ``z``. OBJ has no convention: exporters differ (HOPE's ``textured.obj`` scans are +Y up, their
  Blender re-exports +Z up), so ``auto`` keeps ``z`` and a wrong guess is visible in the thumbnail; pass
  ``up="y"`` then. ``y`` rotates +90 degrees about X: (x, y, z) -> (x, -z, y), glTF's front (+Z) faces -Y.
* **Squaring up** (``align=True``): scans are often captured a little off the axes, which makes the
  axis-aligned size (and hence shelf packing and collision boxes) too large: the YCB mustard bottle is 16 %
  too deep, the sugar box (tilted 2 degrees) 6 % too thick. Two corrections, each applied only when it
  shrinks the box by >= 1 %, so CAD parts and round objects are left exactly as they are:
  *levelling* -- when a large flat side of the convex hull (a box's bottom or top) is within 10 degrees of
  horizontal, the smallest rotation that makes it level; *footprint yaw* -- when the top view has a
  meaningful orientation (box-like: its convex hull fills >= 90 % of its minimum-area rectangle; or
  elongated: that rectangle's aspect >= 1.2), the smallest rotation about Z (|angle| <= 45 degrees) that
  makes the rectangle axis-aligned, so the face that looked forward still does. Round footprints (cans,
  nuts, gears) are never turned.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import trimesh

UpArg = Literal["auto", "y", "z"]

FORMAT_UP: dict[str, Literal["y", "z"]] = {".glb": "y", ".gltf": "y", ".obj": "z", ".ply": "z", ".stl": "z"}
UP_REASON = {
    ".glb": "glTF is +Y up by spec",
    ".gltf": "glTF is +Y up by spec",
    ".stl": "CAD convention",
    ".ply": "scanner/CAD convention",
    ".obj": "OBJ has no convention; assumed CAD +Z",
}
Y_UP_TO_Z_UP = trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0])

ALIGN_MIN_FILL = 0.90
ALIGN_MIN_ASPECT = 1.2
ALIGN_MIN_GAIN = 0.01
LEVEL_MAX_TILT_DEG = 10.0


def square_up(mesh: trimesh.Trimesh, notes: list[str]) -> tuple[float, float]:
    """Level and then yaw-align ``mesh`` in place where that shrinks its box; (tilt, yaw) in degrees."""
    rotation, tilt, gain = levelling_rotation(mesh.vertices)
    if tilt:
        mesh.apply_transform(rotation)
        notes.append(
            f"levelled: tilted {tilt:.1f} deg to stand square on +Z (upright box volume -{gain:.0%})"
        )
    yaw, gain = footprint_yaw(mesh.vertices)
    if yaw:
        mesh.apply_transform(trimesh.transformations.rotation_matrix(math.radians(yaw), [0, 0, 1]))
        notes.append(f"aligned footprint: rotated {yaw:+.1f} deg about Z (footprint area -{gain:.0%})")
    return tilt, yaw


def levelling_rotation(
    vertices: np.ndarray, max_tilt_deg: float = LEVEL_MAX_TILT_DEG
) -> tuple[np.ndarray, float, float]:
    """(4x4 rotation, tilt in degrees, fractional box-volume gain) that stands a slightly tilted object
    square on +Z; (identity, 0, 0) when nothing qualifies.

    Candidates are the convex hull's largest facets within ``max_tilt_deg`` of horizontal (a tilted box's
    bottom and top are such facets). Each is judged by the volume of the box left once it is level and the
    footprint is squared too (height x minimum-area footprint rectangle, so yaw does not matter); the best
    wins if it beats the untouched mesh by ``ALIGN_MIN_GAIN``. Cheaper and steadier than a full
    minimum-volume oriented box, and it can only ever tilt by a few degrees."""
    from scipy.spatial import ConvexHull, QhullError

    points = np.asarray(vertices, dtype=np.float64)
    none = (np.eye(4), 0.0, 0.0)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        return none  # flat or collinear: nothing to level
    corners = points[hull.vertices]
    normals = hull.equations[:, :3]
    tilt = np.degrees(np.arccos(np.clip(np.abs(normals[:, 2]), 0.0, 1.0)))
    pick = _largest_facet_groups(points[hull.simplices], normals, tilt, max_tilt_deg)
    if len(pick) == 0:
        return none
    before = _upright_volume(corners)
    best = none
    for i in pick:
        n = normals[i] * np.sign(normals[i, 2])
        rotation = _tilt_to_vertical(n)
        gain = 1.0 - _upright_volume(trimesh.transform_points(corners, rotation)) / before
        if gain >= ALIGN_MIN_GAIN and gain > best[2]:
            best = (rotation, float(tilt[i]), gain)
    return best


def _largest_facet_groups(
    tris: np.ndarray, normals: np.ndarray, tilt: np.ndarray, max_tilt_deg: float
) -> np.ndarray:
    """Indices of the hull facets worth trying: slightly tilted ones, nearly parallel facets grouped (a
    scanned box bottom is many), the largest facet of each of the 16 largest groups."""
    areas = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    pick = np.flatnonzero((tilt > 0.05) & (tilt <= max_tilt_deg))
    if len(pick) == 0:
        return pick
    keys, group = np.unique(
        np.round(normals[pick] * np.sign(normals[pick, 2:3]), 2), axis=0, return_inverse=True
    )
    group_area = np.bincount(group.reshape(-1), weights=areas[pick], minlength=len(keys))
    return np.array(
        [
            pick[group.reshape(-1) == g][np.argmax(areas[pick][group.reshape(-1) == g])]
            for g in np.argsort(-group_area)[:16]
        ]
    )


def _upright_volume(pts: np.ndarray) -> float:
    """Height x minimum-area footprint: what is left once the footprint is also squared (yaw-invariant)."""
    try:
        _, rect = trimesh.bounds.oriented_bounds_2D(pts[:, :2])
    except Exception:  # noqa: BLE001 - degenerate footprint
        return float("inf")
    return float(np.ptp(pts[:, 2]) * rect[0] * rect[1])


def _tilt_to_vertical(n: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``n`` (upper hemisphere) to +Z: about the horizontal axis
    n x Z, so no yaw is introduced (Rodrigues' formula)."""
    n = np.asarray(n, dtype=np.float64) / np.linalg.norm(n)
    axis = np.cross(n, [0.0, 0.0, 1.0])
    s, c = float(np.linalg.norm(axis)), float(n[2])
    out = np.eye(4)
    if s < 1e-12:
        return out
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    out[:3, :3] = np.eye(3) + s * kx + (1 - c) * kx @ kx
    return out


def footprint_yaw(vertices: np.ndarray) -> tuple[float, float]:
    """Rotation about Z (degrees, |angle| <= 45) that makes an oriented footprint axis-aligned, and the
    fractional footprint-area gain; (0, 0) when the footprint has no meaningful orientation."""
    from scipy.spatial import ConvexHull, QhullError

    xy = np.asarray(vertices, dtype=np.float64)[:, :2]
    try:
        hull = ConvexHull(xy)
        to_rect, rect = trimesh.bounds.oriented_bounds_2D(xy[hull.vertices])
    except (QhullError, ValueError):
        return 0.0, 0.0  # a degenerate footprint (a line) has nothing to align
    rect_area = float(rect[0] * rect[1])
    aabb_area = float(np.prod(np.ptp(xy, axis=0)))
    if rect_area <= 0 or aabb_area <= 0:
        return 0.0, 0.0
    fill = hull.volume / rect_area  # ConvexHull.volume is the area in 2D
    aspect = float(max(rect) / min(rect))
    gain = 1.0 - rect_area / aabb_area
    if gain < ALIGN_MIN_GAIN or (fill < ALIGN_MIN_FILL and aspect < ALIGN_MIN_ASPECT):
        return 0.0, 0.0
    angle = math.degrees(math.atan2(to_rect[1, 0], to_rect[0, 0]))
    angle = (angle + 45.0) % 90.0 - 45.0  # rectangles are 90-degree symmetric: take the smallest turn
    return (angle, gain) if abs(angle) > 1e-3 else (0.0, 0.0)
