"""Light sampling: how many lights, of which type, how strong, what colour temperature and where.

Positions are drawn on a hemisphere around the layout's centre (table, bin) or in a box in the layout frame
(a store ceiling in front of a shelf); every light is turned to face the centre.
"""

from __future__ import annotations

import math

import numpy as np

from synth.randomize.blackbody import kelvin_to_rgb
from synth.randomize.camera import look_at, orbit_direction
from synth.randomize.placed import LayoutResult, categorical, randint, uniform
from synth.randomize.settings import LightingConfig
from synth.scene import Light


def sample_lights(
    cfg: LightingConfig, layout: LayoutResult, rng: np.random.Generator
) -> tuple[list[Light], tuple[float, float, float], float]:
    """The lights, and the ambient colour and intensity."""
    kinds = sorted(k for k, w in cfg.kinds.items() if w > 0)
    weights = np.array([cfg.kinds[k] for k in kinds], dtype=np.float64)
    lights = []
    n = randint(rng, cfg.count)
    total = uniform(rng, cfg.irradiance)
    shares = rng.uniform(0.2, 1.0, n)
    shares = shares / shares.sum() if n else shares
    for share in shares:
        kind = kinds[categorical(rng, weights)]
        color = kelvin_to_rgb(uniform(rng, cfg.temperature_k))
        position = _position(cfg, layout, rng)
        aim = layout.focus_center + layout.frame @ (rng.uniform(-0.5, 0.5, 3) * layout.focus_half)
        pose = look_at(position, aim, layout.frame[:, 2])
        intensity = _power_for(
            kind, total * float(share), float(np.linalg.norm(position - layout.focus_center))
        )
        spot_angle = math.radians(uniform(rng, cfg.spot_angle_deg))
        blend = float(rng.uniform(0.05, 0.4))
        size = uniform(rng, cfg.area_size)
        lights.append(
            Light(
                kind=kind,
                pose=pose.tolist(),
                color=color,
                intensity=intensity,
                spot_angle=spot_angle,
                spot_blend=blend,
                size=size,
            )
        )
    ambient_color = kelvin_to_rgb(uniform(rng, cfg.temperature_k))
    ambient = uniform(rng, cfg.ambient)
    return lights, ambient_color, ambient


def _power_for(kind: str, irradiance: float, distance: float) -> float:
    """Light intensity (``Light.intensity`` units) that gives ``irradiance`` W/m^2 at ``distance`` on axis:
    a point or spot of P watts has radiant intensity P / 4 pi, a Lambertian area light P / pi on its axis,
    a directional light is given as irradiance directly."""
    if kind == "directional":
        return irradiance
    d2 = max(distance, 0.05) ** 2
    return irradiance * d2 * (math.pi if kind == "area" else 4 * math.pi)


def _position(cfg: LightingConfig, layout: LayoutResult, rng) -> np.ndarray:
    if cfg.placement == "box":
        local = rng.uniform(np.asarray(cfg.box_min), np.asarray(cfg.box_max))
        return layout.focus_center + layout.frame @ local
    distance = uniform(rng, cfg.distance)
    elevation = math.radians(uniform(rng, cfg.elevation_deg))
    azimuth = math.radians(uniform(rng, cfg.azimuth_deg))
    return layout.focus_center + distance * orbit_direction(layout.frame, elevation, azimuth)
