"""Texture images for ``TextureSpec``: procedural patterns regenerated from their seed, or image files.

Every backend calls :func:`make_texture`, so pyrender and Cycles put exactly the same pixels on a
surface and a scene JSON is enough to reproduce an image. Patterns depend only on the spec (its seed
drives a private ``numpy.random.Generator``), never on global random state, and are cached per process
because a worker renders the same few textures many times.

Procedural kinds
    noise     multi-octave value noise (tileable) blended through the colour palette
    checker   a checkerboard of the palette colours
    stripes   parallel bands at a seed-chosen angle
    gradient  a linear ramp through the palette at a seed-chosen angle
    wood      perturbed growth rings in two tones
    brushed   anisotropic streaks, as on brushed metal
    flying    "flying distractor" domain-randomization texture: a random base pattern covered with
              random shapes in random colours (Tobin et al. / Tremblay et al. style DR)

``spec.colors`` (RGB in [0, 1]) gives the palette; when empty the palette is drawn from the seed.
``spec.scale`` multiplies the pattern frequency; ``spec.size`` is the side of the square image.
"""

from __future__ import annotations

import hashlib
import math
import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import uniform_filter1d

from synth.errors import AssetError
from synth.scene import TextureSpec

PROCEDURAL_KINDS = ("noise", "checker", "stripes", "gradient", "wood", "brushed", "flying")
MIN_SIZE = 4
MAX_SIZE = 8192
_CACHE_SIZE = 256


def make_texture(spec: TextureSpec) -> np.ndarray:
    """The texture image for ``spec`` as an HxWx3 uint8 array (read-only: it is shared by the cache)."""
    if spec.file is not None and spec.procedural is not None:
        raise AssetError(spec.file, "texture sets both 'file' and 'procedural'; choose one")
    if spec.file is not None:
        path = Path(spec.file)
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            raise AssetError(path, "texture file not found") from None
        return _load_file_cached(str(path.resolve()), stamp)
    if spec.procedural is None:
        raise AssetError("texture", "neither 'file' nor 'procedural' is set")
    if not (MIN_SIZE <= spec.size <= MAX_SIZE):
        raise AssetError("texture.size", f"{spec.size} is outside {MIN_SIZE}..{MAX_SIZE} pixels")
    if not (spec.scale > 0 and math.isfinite(spec.scale)):
        raise AssetError("texture.scale", f"{spec.scale} must be a positive number")
    return _procedural_cached(spec.model_dump_json())


def texture_digest(spec: TextureSpec) -> str:
    """A short stable name for a spec, e.g. for a backend that must save the texture as a file."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


def clear_cache() -> None:
    _procedural_cached.cache_clear()
    _load_file_cached.cache_clear()


# ---- caching -------------------------------------------------------------------------------------------
@lru_cache(maxsize=_CACHE_SIZE)
def _procedural_cached(spec_json: str) -> np.ndarray:
    spec = TextureSpec.model_validate_json(spec_json)
    img = _GENERATORS[spec.procedural](spec, np.random.default_rng(spec.seed))
    img = np.ascontiguousarray(img, dtype=np.uint8)
    img.setflags(write=False)
    return img


@lru_cache(maxsize=_CACHE_SIZE)
def _load_file_cached(path: str, _mtime_ns: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise AssetError(path, f"cannot read texture image ({e.__class__.__name__})") from None
    img.setflags(write=False)
    return img


# ---- helpers -------------------------------------------------------------------------------------------
def _palette(spec: TextureSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """n colours (float RGB 0..1): the spec's colours cycled, or random ones drawn from the seed."""
    if spec.colors:
        cols = np.clip(np.asarray(spec.colors, dtype=np.float64), 0.0, 1.0)
        return cols[np.arange(n) % len(cols)]
    return rng.random((n, 3))


_RAMP_LEVELS = 1024


def _ramp(t: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] (HxW) through a piecewise-linear palette to uint8 RGB, via a 1024-entry lookup
    table (finer than 8-bit output can show, and one gather instead of float maths per pixel)."""
    x = np.linspace(0.0, 1.0, _RAMP_LEVELS) * (len(colors) - 1)
    if len(colors) == 1:
        lut = np.broadcast_to(colors[0], (_RAMP_LEVELS, 3))
    else:
        i = np.minimum(x.astype(np.int64), len(colors) - 2)
        f = (x - i)[:, None]
        lut = colors[i] * (1.0 - f) + colors[i + 1] * f
    lut = np.round(np.asarray(lut) * 255.0).astype(np.uint8)
    idx = np.clip(np.asarray(t) * (_RAMP_LEVELS - 1) + 0.5, 0, _RAMP_LEVELS - 1).astype(np.int32)
    return np.take(lut, idx, axis=0)  # what lut[idx] gives, in a quarter of the time


def _axis(size: int) -> np.ndarray:
    """Pixel-centre coordinates in [0, 1) along one side. Patterns combine ``c[None, :]`` (x, to the right)
    and ``c[:, None]`` (y, down) by broadcasting: the same values as on a meshgrid, without building one."""
    return (np.arange(size, dtype=np.float64) + 0.5) / size


def _value_noise(size: int, cells: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Tileable fractal value noise in [0, 1]: random lattices, wrapped and smoothly upsampled."""
    total = np.zeros((size, size), dtype=np.float64)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        n = max(1, min(size, int(round(cells * (2**o)))))
        lattice = rng.random((n, n))
        # wrap two cells on each side so cubic interpolation is periodic, then keep the n interior cells.
        # Upsampled one axis at a time, cropping in between: a 2-D resize of the padded lattice computes
        # ((n + 4) / n)^2 times the pixels kept (25x for one cell), this (n + 4) / n times. Separable cubic
        # weights give the same values to within a float32 rounding.
        cell = -(-size // n)
        padded = np.pad(lattice, 2, mode="wrap").astype(np.float32)
        rows = cv2.resize(padded, ((n + 4) * cell, n + 4), interpolation=cv2.INTER_CUBIC)
        rows = rows[:, 2 * cell : (n + 2) * cell]
        inner = cv2.resize(rows, (n * cell, (n + 4) * cell), interpolation=cv2.INTER_CUBIC)
        inner = inner[2 * cell : (n + 2) * cell]
        layer = (
            inner if inner.shape[0] == size else cv2.resize(inner, (size, size), interpolation=cv2.INTER_AREA)
        )
        total += amp * layer
        norm += amp
        amp *= 0.5
    total /= norm
    lo, hi = total.min(), total.max()
    return (total - lo) / (hi - lo) if hi > lo else np.zeros_like(total)


def _rotated_coordinate(size: int, angle: float) -> np.ndarray:
    c = _axis(size)
    return c[None, :] * math.cos(angle) + c[:, None] * math.sin(angle)


# ---- generators ----------------------------------------------------------------------------------------
def _noise(spec: TextureSpec, rng: np.random.Generator) -> np.ndarray:
    colors = _palette(spec, rng, max(2, len(spec.colors)))
    t = _value_noise(spec.size, max(1, round(4 * spec.scale)), rng)
    return _ramp(t, colors)


def _checker(spec: TextureSpec, rng: np.random.Generator) -> np.ndarray:
    colors = _palette(spec, rng, max(2, len(spec.colors)))
    n = max(1, round(8 * spec.scale))
    idx = np.arange(spec.size) * n // spec.size
    cell = (idx[:, None] + idx[None, :]) % len(colors)
    return np.take(np.round(colors * 255.0).astype(np.uint8), cell, axis=0)


def _stripes(spec: TextureSpec, rng: np.random.Generator) -> np.ndarray:
    colors = _palette(spec, rng, max(2, len(spec.colors)))
    angle = rng.uniform(0.0, math.pi)
    s = _rotated_coordinate(spec.size, angle) * 10.0 * spec.scale
    band = np.floor(s).astype(np.int64) % len(colors)
    return np.take(np.round(colors * 255.0).astype(np.uint8), band, axis=0)


def _gradient(spec: TextureSpec, rng: np.random.Generator) -> np.ndarray:
    colors = _palette(spec, rng, max(2, len(spec.colors)))
    angle = rng.uniform(0.0, 2 * math.pi)
    s = _rotated_coordinate(spec.size, angle)
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    proj = corners[:, 0] * math.cos(angle) + corners[:, 1] * math.sin(angle)
    t = (s - proj.min()) / (proj.max() - proj.min())
    t = (t * spec.scale) % 1.0 if spec.scale != 1.0 else t
    return _ramp(t, colors)


def _wood(spec: TextureSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.colors:
        colors = _palette(spec, rng, 2)
    else:  # warm browns, light and dark, with some seed variation
        base = np.array([0.62, 0.42, 0.24]) * rng.uniform(0.8, 1.15)
        colors = np.clip(np.stack([base, base * rng.uniform(0.45, 0.65)]), 0, 1)
    c = _axis(spec.size)
    cx, cy = rng.uniform(-0.5, 1.5), rng.uniform(-2.0, -0.8)  # ring centre well off the image
    stretch = rng.uniform(2.0, 4.0)
    r = np.hypot(((c - cx) * stretch)[None, :], (c - cy)[:, None])
    warp = _value_noise(spec.size, max(1, round(3 * spec.scale)), rng, octaves=3)
    rings = r * 9.0 * spec.scale + 2.5 * warp
    t = 0.5 + 0.5 * np.sin(2 * math.pi * rings)
    t = t**1.6  # thin dark late-wood bands
    grain = _value_noise(spec.size, max(2, round(24 * spec.scale)), rng, octaves=2)
    return _ramp(np.clip(0.85 * t + 0.15 * grain, 0, 1), colors)


def _brushed(spec: TextureSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.colors:
        colors = _palette(spec, rng, 2)
    else:  # metal greys
        g = rng.uniform(0.45, 0.8)
        colors = np.array([[g * 0.75] * 3, [min(1.0, g * 1.15)] * 3])
    size = spec.size
    streaks = rng.random((size, size)).astype(np.float32)
    k = max(3, int(size * 0.25 / spec.scale)) | 1  # long horizontal blur kernel (odd)
    streaks = uniform_filter1d(streaks, k, axis=1, mode="wrap")
    low = _value_noise(size, max(1, round(2 * spec.scale)), rng, octaves=2).astype(np.float32)
    t = 0.7 * (streaks - streaks.min()) / max(1e-6, float(np.ptp(streaks))) + 0.3 * low
    return _ramp(t.astype(np.float64), colors)


def _flying(spec: TextureSpec, rng: np.random.Generator) -> np.ndarray:
    """A random base pattern in random colours with random shapes on top: maximal DR variety."""
    base_kind = rng.choice(["noise", "checker", "stripes", "gradient"])
    base_spec = spec.model_copy(
        update={
            "procedural": str(base_kind),
            "colors": [tuple(c) for c in rng.random((int(rng.integers(2, 5)), 3)).tolist()],
            "scale": spec.scale * float(rng.uniform(0.5, 2.0)),
        }
    )
    img = np.array(_GENERATORS[str(base_kind)](base_spec, rng))  # writable copy
    size = spec.size
    n_shapes = int(rng.integers(8, 30))
    for _ in range(n_shapes):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 4))
        cx, cy = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(max(1, size // 40), max(2, size // 5)))
        if kind == 0:
            cv2.circle(img, (cx, cy), r, color, -1, lineType=cv2.LINE_AA)
        elif kind == 1:
            w, h = (int(v) for v in rng.integers(max(1, size // 40), max(2, size // 4), 2))
            box = cv2.boxPoints(((cx, cy), (w, h), float(rng.uniform(0, 180))))
            cv2.fillPoly(img, [np.round(box).astype(np.int32)], color, lineType=cv2.LINE_AA)
        elif kind == 2:
            p2 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, (cx, cy), p2, color, int(rng.integers(1, max(2, size // 32))), cv2.LINE_AA)
        else:
            pts = rng.integers(-r, r + 1, (3, 2)) + np.array([cx, cy])
            cv2.fillPoly(img, [pts.astype(np.int32)], color, lineType=cv2.LINE_AA)
    return img


_GENERATORS = {
    "noise": _noise,
    "checker": _checker,
    "stripes": _stripes,
    "gradient": _gradient,
    "wood": _wood,
    "brushed": _brushed,
    "flying": _flying,
}
assert set(_GENERATORS) == set(PROCEDURAL_KINDS)
