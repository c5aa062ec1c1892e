"""Colour schemes of a product's artwork: a category's usual hues, a contrasting accent, readable ink."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

RGB8 = tuple[int, int, int]

# Hue (degrees) families per category, plus the colour of the "contents" shown in the illustration.
CATEGORY_HUES: dict[str, tuple[float, ...]] = {
    "cereal": (10, 35, 45, 200, 120),
    "crackers": (30, 0, 210, 45),
    "pasta": (220, 0, 45, 130),
    "tea": (120, 150, 280, 15, 200),
    "cake": (330, 25, 280, 0),
    "sugar": (210, 30, 0, 45),
    "beans": (200, 20, 120, 0),
    "corn": (55, 120, 210),
    "fish": (210, 190, 0, 230),
    "soda": (0, 130, 30, 220),
    "tomato_sauce": (0, 355, 120),
    "water": (200, 190, 215),
    "oil": (60, 90, 45),
    "juice": (30, 45, 90, 0),
    "vinegar": (300, 45, 0, 120),
    "jam": (345, 330, 30, 280),
    "honey": (40, 30, 50),
    "spices": (15, 0, 120, 45),
    "nuts": (25, 35, 0, 130),
    "milk": (210, 200, 0, 120),
    "chips": (0, 45, 210, 120, 280),
    "candy": (300, 330, 190, 50),
    "coffee": (25, 0, 40),
    "rice": (30, 120, 210, 0),
    "flour": (210, 0, 45, 30),
    "toothpaste": (210, 0, 190, 130),
}

CONTENT_COLORS: dict[str, RGB8] = {
    "cereal": (214, 160, 70),
    "crackers": (222, 184, 120),
    "pasta": (236, 206, 120),
    "tea": (120, 70, 30),
    "cake": (92, 52, 30),
    "sugar": (245, 240, 232),
    "beans": (200, 90, 40),
    "corn": (250, 210, 40),
    "fish": (232, 150, 130),
    "soda": (90, 30, 10),
    "tomato_sauce": (200, 30, 20),
    "water": (170, 210, 240),
    "oil": (200, 180, 40),
    "juice": (250, 150, 20),
    "vinegar": (120, 40, 30),
    "jam": (170, 20, 50),
    "honey": (220, 150, 20),
    "spices": (180, 70, 30),
    "nuts": (190, 140, 80),
    "milk": (250, 250, 245),
    "chips": (240, 200, 90),
    "candy": (230, 60, 120),
    "coffee": (70, 40, 20),
    "rice": (245, 240, 225),
    "flour": (248, 246, 238),
    "toothpaste": (90, 180, 230),
}


def _hsv(h: float, s: float, v: float) -> RGB8:
    r, g, b = colorsys.hsv_to_rgb((h % 360) / 360.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def luminance(c: RGB8) -> float:
    """WCAG relative luminance of an sRGB colour."""
    lin = [(x / 255) / 12.92 if x / 255 <= 0.04045 else ((x / 255 + 0.055) / 1.055) ** 2.4 for x in c]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast_ink(background: RGB8, dark: RGB8 = (22, 22, 28), light: RGB8 = (255, 255, 255)) -> RGB8:
    """Dark or white text, whichever reads better on ``background``."""
    lb = luminance(background)
    c_dark = (lb + 0.05) / (luminance(dark) + 0.05)
    c_light = (luminance(light) + 0.05) / (lb + 0.05)
    return dark if c_dark >= c_light else light


@dataclass(frozen=True)
class Palette:
    background: RGB8
    accent: RGB8
    highlight: RGB8
    ink: RGB8  # text on the background
    accent_ink: RGB8  # text on the accent


def sample_palette(rng: np.random.Generator, category: str) -> Palette:
    """A colour scheme in the category's usual hue family: a dominant background, a contrasting
    accent (complementary or split-complementary) and a bright highlight."""
    hues = CATEGORY_HUES.get(category, (0, 60, 120, 180, 240, 300))
    h = float(hues[rng.integers(len(hues))]) + rng.uniform(-12, 12)
    light_bg = rng.random() < 0.3
    if light_bg:
        bg = _hsv(h, rng.uniform(0.05, 0.2), rng.uniform(0.92, 1.0))
    else:
        bg = _hsv(h, rng.uniform(0.55, 0.95), rng.uniform(0.45, 0.95))
    ah = h + float(rng.choice([180, 150, 210, 30, -30]))
    accent = _hsv(ah, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0) if light_bg else rng.uniform(0.7, 1.0))
    highlight = _hsv(h + rng.uniform(-40, 40) + 60, rng.uniform(0.3, 0.9), 1.0)
    return Palette(bg, accent, highlight, contrast_ink(bg), contrast_ink(accent))


def mix(a: RGB8, b: RGB8, t: float) -> RGB8:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))
