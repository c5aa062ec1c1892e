"""Fonts and fitted text. The DejaVu faces bundled with matplotlib (a pinned dependency), so the same seed
draws the same pixels on every machine; Pillow's built-in scalable font is the fallback."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

from synth.procedural.labels.palette import RGB8

FONT_FILES = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "sans_bold_oblique": "DejaVuSans-BoldOblique.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "serif_bold_italic": "DejaVuSerif-BoldItalic.ttf",
    "mono": "DejaVuSansMono.ttf",
}
BRAND_FACES = ("sans_bold", "sans_bold_oblique", "serif_bold", "serif_bold_italic")


def _font_dir() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf"
    return d if d.is_dir() else None


@lru_cache(maxsize=256)
def font(face: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = max(1, int(size))
    d = _font_dir()
    if d is not None and (d / FONT_FILES[face]).is_file():
        return ImageFont.truetype(str(d / FONT_FILES[face]), size)
    return ImageFont.load_default(size=size)


def fit_font(face: str, text: str, max_w: float, max_h: float, max_size: int = 400):
    """The largest font of ``face`` whose rendering of ``text`` fits max_w x max_h pixels (None if
    even a 6 px font does not fit)."""
    lo, hi, best = 6, max(6, min(max_size, int(max_h * 1.4))), None
    while lo <= hi:
        mid = (lo + hi) // 2
        f = font(face, mid)
        x0, y0, x1, y1 = f.getbbox(text)
        if x1 - x0 <= max_w and y1 - y0 <= max_h:
            best, lo = f, mid + 1
        else:
            hi = mid - 1
    return best


def draw_text_box(
    draw: ImageDraw.ImageDraw,
    box,
    text: str,
    face: str,
    fill: RGB8,
    max_size: int = 400,
    stroke: RGB8 | None = None,
) -> bool:
    """Centre ``text`` in box (x0, y0, x1, y1) at the largest size that fits; False if nothing fits."""
    x0, y0, x1, y1 = box
    sw = 0
    f = fit_font(face, text, (x1 - x0) * 0.96, (y1 - y0) * 0.9, max_size)
    if f is None:
        return False
    if stroke is not None:
        sw = max(1, int(getattr(f, "size", 12) / 18))
    draw.text(
        ((x0 + x1) / 2, (y0 + y1) / 2),
        text,
        font=f,
        fill=fill,
        anchor="mm",
        stroke_width=sw,
        stroke_fill=stroke,
    )
    return True
