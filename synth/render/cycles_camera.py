"""Pinhole intrinsics (fx, fy, cx, cy in pixels) -> Blender camera settings, exactly.

Blender describes a camera by a lens (mm) over a sensor width (mm), a shift of the image window in
units of the fitted image side, and a pixel aspect ratio. With the sensor fitted horizontally (so the
result never depends on which image side is longer) Cycles' view plane gives, for a W x H image with
pixel aspect px:py:

    fx = W * lens / sensor_width            fy = fx * px / py
    cx = W / 2 - shift_x * W                cy = H / 2 + shift_y * W * px / py   (cy from the top)

which is inverted below. Blender allows pixel aspect values >= 1 only, so the larger of fx, fy decides
which side gets the non-unit value. The camera pose needs no conversion: Blender cameras, like the
scene's, look down local -Z with +Y up.

This module does not import bpy, so the arithmetic is testable anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from synth.scene import Camera

SENSOR_WIDTH_MM = 36.0  # arbitrary: only lens / sensor_width matters


@dataclass(frozen=True)
class BlenderCameraParams:
    resolution_x: int
    resolution_y: int
    pixel_aspect_x: float
    pixel_aspect_y: float
    sensor_width: float
    lens: float
    shift_x: float
    shift_y: float
    clip_start: float
    clip_end: float


def blender_camera_params(cam: Camera) -> BlenderCameraParams:
    w, h = cam.width, cam.height
    if cam.fy >= cam.fx:
        px, py = cam.fy / cam.fx, 1.0
    else:
        px, py = 1.0, cam.fx / cam.fy
    return BlenderCameraParams(
        resolution_x=w,
        resolution_y=h,
        pixel_aspect_x=px,
        pixel_aspect_y=py,
        sensor_width=SENSOR_WIDTH_MM,
        lens=cam.fx * SENSOR_WIDTH_MM / w,
        shift_x=(w / 2 - cam.cx) / w,
        shift_y=(cam.cy - h / 2) * py / (w * px),
        clip_start=cam.znear,
        clip_end=cam.zfar,
    )


def intrinsics_from_params(p: BlenderCameraParams) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) that Blender renders for ``p``: the forward model, used to check the inverse."""
    w, h = p.resolution_x, p.resolution_y
    fx = w * p.lens / p.sensor_width
    fy = fx * p.pixel_aspect_x / p.pixel_aspect_y
    cx = w / 2 - p.shift_x * w
    cy = h / 2 + p.shift_y * w * p.pixel_aspect_x / p.pixel_aspect_y
    return fx, fy, cx, cy
