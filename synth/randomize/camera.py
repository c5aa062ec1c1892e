"""Camera sampling: orbit a look-at point in the layout's region of interest.

Angles are relative to the layout frame (see ``synth.randomize.placed``): azimuth 0 looks from the front
(a shelf is photographed face on), elevation 90 looks straight down (a bin from above). A sampled camera is
rejected and drawn again when it would sit inside a support or below the floor, or frames too few targets.
"""

from __future__ import annotations

import math

import numpy as np

from synth.config import ImageConfig
from synth.randomize.placed import LayoutResult, uniform
from synth.randomize.settings import CameraConfig
from synth.scene import Camera

MAX_TRIES = 16
MIN_EYE_HEIGHT = 0.05  # above the floor (z = 0)
EYE_MARGIN = 0.03  # distance the eye keeps from any support's bounding box


def look_at(eye, target, up_hint, roll: float = 0.0) -> np.ndarray:
    """Camera/light-to-world pose (OpenGL axes: looking down local -Z, +Y up), rolled about the view axis."""
    eye = np.asarray(eye, dtype=np.float64)
    z = eye - np.asarray(target, dtype=np.float64)
    z /= np.linalg.norm(z)
    up = np.asarray(up_hint, dtype=np.float64)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:  # looking along the hint: any perpendicular will do
        x = np.cross([0.0, 1.0, 0.0] if abs(z[1]) < 0.9 else [1.0, 0.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = math.cos(roll), math.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def orbit_direction(frame: np.ndarray, elevation: float, azimuth: float) -> np.ndarray:
    """Unit vector from the look-at point to the eye (radians; frame columns: right, front, up)."""
    right, front, up = frame[:, 0], frame[:, 1], frame[:, 2]
    horizontal = math.cos(azimuth) * front + math.sin(azimuth) * right
    return math.cos(elevation) * horizontal + math.sin(elevation) * up


def project(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) of world points and whether each is in front of the camera."""
    pose = np.asarray(camera.pose, dtype=np.float64)
    cam = (np.asarray(points, dtype=np.float64) - pose[:3, 3]) @ pose[:3, :3]
    depth = -cam[:, 2]
    in_front = depth > camera.znear
    safe = np.where(in_front, depth, 1.0)
    u = camera.cx + camera.fx * cam[:, 0] / safe
    v = camera.cy - camera.fy * cam[:, 1] / safe
    return np.stack([u, v], axis=1), in_front


def framed_fraction(camera: Camera, points: np.ndarray) -> float:
    """Fraction of points that project inside the image."""
    if len(points) == 0:
        return 1.0
    uv, ok = project(camera, points)
    inside = ok & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    return float(inside.mean())


def sample_camera(
    cfg: CameraConfig,
    image: ImageConfig,
    layout: LayoutResult,
    target_points: np.ndarray,
    support_boxes: list[tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
) -> Camera:
    """The first valid camera framing ``min_targets_in_view`` of the targets, else the best one drawn."""
    frame = layout.frame
    best, best_fraction = None, -1.0
    for _ in range(MAX_TRIES):
        offset = (
            rng.uniform(-1.0, 1.0, 3) * layout.focus_half + rng.uniform(-1.0, 1.0, 3) * cfg.look_at_jitter
        )
        target = layout.focus_center + frame @ offset
        distance = uniform(rng, cfg.distance)
        elevation = math.radians(uniform(rng, cfg.elevation_deg))
        azimuth = math.radians(uniform(rng, cfg.azimuth_deg))
        roll = math.radians(uniform(rng, cfg.roll_deg))
        yfov = uniform(rng, cfg.yfov_deg)
        if cfg.fill is not None:
            distance = fill_distance(layout, yfov, uniform(rng, cfg.fill), cfg.distance)
        direction = orbit_direction(frame, elevation, azimuth)
        eye = target + distance * direction
        # straight down, "up" in the image is away from the front; otherwise world up
        up_hint = (
            frame[:, 2] if abs(direction @ frame[:, 2]) < 0.999 else -orbit_direction(frame, 0.0, azimuth)
        )
        camera = Camera.from_fov(
            image.width,
            image.height,
            yfov,
            pose=look_at(eye, target, up_hint, roll).tolist(),
            znear=cfg.znear,
            zfar=max(cfg.zfar, distance * 4),
        )
        if not _eye_is_free(eye, support_boxes):
            continue
        fraction = framed_fraction(camera, target_points)
        if fraction >= cfg.min_targets_in_view:
            return camera
        if fraction > best_fraction:
            best, best_fraction = camera, fraction
    if best is None:  # every draw was inside something: take a plain view from high above the region
        eye = layout.focus_center + frame[:, 2] * (cfg.distance[1] + 2 * float(np.max(layout.focus_half)))
        best = Camera.from_fov(
            image.width,
            image.height,
            cfg.yfov_deg[1],
            pose=look_at(eye, layout.focus_center, frame[:, 1]).tolist(),
            znear=cfg.znear,
            zfar=max(cfg.zfar, float(eye[2]) * 4),
        )
    return best


def fill_distance(layout: LayoutResult, yfov_deg: float, fill: float, limits) -> float:
    """Distance at which the region of interest (its largest horizontal size) spans ``fill`` of the image
    height, clamped to ``limits``."""
    size = 2.0 * float(np.max(layout.focus_half[:2]))
    distance = size / fill / (2.0 * math.tan(math.radians(yfov_deg) / 2))
    return float(np.clip(distance, *limits))


def _eye_is_free(eye: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    if eye[2] < MIN_EYE_HEIGHT:
        return False
    return not any(np.all(eye >= lo - EYE_MARGIN) and np.all(eye <= hi + EYE_MARGIN) for lo, hi in boxes)
