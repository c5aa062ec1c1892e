"""One fitting step: move a render config's parameters towards the real statistics.

Each rule compares a synthetic statistic (measured on a probe set rendered from the config) with the real
one and changes the parameter that drives it, on the config mapping (keys are written out explicitly):

- relative box size -> ``camera.distance`` (or ``camera.fill``): the near end follows the large boxes
  (90th percentile), the far end the small ones (10th); at the 5 cm limit the field of view widens instead;
- boxes per image -> ``objects.count`` (table, bin) or, on shelves (filled by facings), the visibility an
  object needs to be labelled, ``annotation.min_visibility``;
- brightness -> ``lighting.irradiance`` and ``background.brightness``; warmth -> ``lighting.temperature_k``.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from synth.config import set_dotted
from synth.randomize.settings import parse_render_config

MIN_DISTANCE = 0.05


def _q(v: np.ndarray, q: float) -> float:
    return float(np.percentile(v, q))


def _clip_pair(lo: float, hi: float, low: float, high: float, digits: int = 4) -> list[float]:
    lo, hi = sorted((float(np.clip(lo, low, high)), float(np.clip(hi, low, high))))
    return [round(lo, digits), round(hi, digits)]


def with_image_size(data: dict, size: tuple[int, int]) -> dict:
    """The photos' image size (objects at the same pixel scale); the pixel area limit scales along."""
    data = copy.deepcopy(data)
    cfg = parse_render_config(data)
    old = cfg.image.width * cfg.image.height
    set_dotted(data, "image.width", int(size[0]), "image.width")
    set_dotted(data, "image.height", int(size[1]), "image.height")
    area = max(4, round(cfg.annotation.min_area_px * size[0] * size[1] / old))
    set_dotted(data, "annotation.min_area_px", int(area), "annotation.min_area_px")
    return data


def adjust(data: dict, syn: dict[str, np.ndarray], real: dict[str, np.ndarray]) -> dict:
    """The config mapping one step closer to ``real``; statistics missing on either side are left alone."""
    data = copy.deepcopy(data)
    cfg = parse_render_config(data)
    if len(syn.get("rel_side", [])) and len(real.get("rel_side", [])):
        _scale(data, cfg, syn["rel_side"], real["rel_side"])
    if len(syn.get("boxes_per_image", [])) and len(real.get("boxes_per_image", [])):
        _count(data, cfg, syn["boxes_per_image"], real["boxes_per_image"])
    if len(syn.get("brightness", [])) and len(real.get("brightness", [])):
        _light(data, cfg, syn, real)
    return data


def _scale(data: dict, cfg, syn: np.ndarray, real: np.ndarray) -> None:
    r = {q: _q(syn, q) / max(_q(real, q), 1e-6) for q in (10, 50, 90)}
    cam = cfg.camera
    if cam.fill is not None:  # fill: fraction of the image the region spans, grows with the boxes
        set_dotted(
            data, "camera.fill", _clip_pair(cam.fill[0] / r[10], cam.fill[1] / r[90], 0.02, 1.0), "fit"
        )
        return
    lo, hi = cam.distance[0] * r[90], cam.distance[1] * r[10]
    if lo > hi:
        lo = hi = math.sqrt(cam.distance[0] * cam.distance[1]) * r[50]
    if lo < MIN_DISTANCE:  # closer is not possible: widen the view by what is missing
        grow = MIN_DISTANCE / lo
        fov = [2 * math.degrees(math.atan(math.tan(math.radians(f) / 2) / grow)) for f in cam.yfov_deg]
        set_dotted(data, "camera.yfov_deg", _clip_pair(fov[0], fov[1], 5.0, 120.0, 2), "fit")
        lo, hi = lo * grow, hi * grow
    set_dotted(data, "camera.distance", _clip_pair(lo, hi, MIN_DISTANCE, 100.0), "fit")


def _count(data: dict, cfg, syn: np.ndarray, real: np.ndarray) -> None:
    if cfg.layout.kind == "shelf":
        step = 0.25 * math.log2((syn.mean() + 0.5) / (real.mean() + 0.5))
        value = float(np.clip(cfg.annotation.min_visibility + step, 0.05, 0.9))
        set_dotted(data, "annotation.min_visibility", round(value, 3), "fit")
        return
    f10 = (_q(real, 10) + 0.5) / (_q(syn, 10) + 0.5)
    f90 = (_q(real, 90) + 0.5) / (_q(syn, 90) + 0.5)
    lo = max(1, round(cfg.objects.count[0] * float(np.clip(f10, 0.25, 4))))
    hi = max(lo, round(cfg.objects.count[1] * float(np.clip(f90, 0.25, 4))))
    set_dotted(data, "objects.count", [int(lo), int(min(hi, 1000))], "fit")


def _light(data: dict, cfg, syn: dict, real: dict) -> None:
    ratio = float(np.median(real["brightness"])) / max(float(np.median(syn["brightness"])), 1e-3)
    power = float(np.clip(ratio**2.2, 1 / 3, 3.0))
    irr = cfg.lighting.irradiance
    set_dotted(data, "lighting.irradiance", _clip_pair(irr[0] * power, irr[1] * power, 0.001, 1000.0), "fit")
    shift = float(np.median(real["brightness"]) - np.median(syn["brightness"]))
    bg = cfg.background.brightness
    set_dotted(data, "background.brightness", _clip_pair(bg[0] + shift, bg[1] + shift, 0.0, 1.0, 3), "fit")
    warm = float(np.median(real["warmth"]) - np.median(syn["warmth"]))
    factor = math.exp(-4.0 * warm)  # warmer photos: lower colour temperature
    t = cfg.lighting.temperature_k
    set_dotted(
        data, "lighting.temperature_k", _clip_pair(t[0] * factor, t[1] * factor, 1000.0, 40000.0, 0), "fit"
    )
