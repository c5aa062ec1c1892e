"""The printed faces of a pack, each drawn at the pixel size its atlas slot gives: front, information
(nutrition and barcode), narrow side, top and the band around a cylinder."""

from __future__ import annotations

from PIL import Image, ImageDraw

from synth.procedural.labels.artwork import draw_illustration, draw_lines, draw_logo, draw_motif, ingredients
from synth.procedural.labels.design import LabelDesign
from synth.procedural.labels.ean13 import barcode_size, draw_ean13
from synth.procedural.labels.fonts import draw_text_box
from synth.procedural.labels.palette import contrast_ink, mix


def front_panel(design: LabelDesign, w: int, h: int) -> Image.Image:
    """Brand, logo, product name, illustration and net quantity laid out for any aspect ratio."""
    p = design.palette
    img = Image.new("RGB", (w, h), p.background)
    d = ImageDraw.Draw(img)
    draw_motif(d, design, w, h)
    m = int(min(w, h) * 0.06)
    logo_r = min(w, h) * 0.11
    draw_logo(d, design, m + logo_r, m + logo_r, logo_r)
    brand_top = m + 2 * logo_r + 0.01 * h  # below the logo, so the two never overlap
    brand_box = (m, int(brand_top), w - m, int(brand_top + h * 0.18))
    draw_text_box(d, brand_box, design.brand, design.brand_face, p.ink, stroke=p.accent)
    draw_illustration(d, design, (m, int(brand_box[3] + h * 0.02), w - m, int(h * 0.58)))
    on_accent = design.motif in ("band", "diagonal")
    draw_text_box(
        d,
        (m, int(h * 0.6), w - m, int(h * 0.74)),
        design.product,
        "sans_bold",
        p.accent_ink if on_accent else p.ink,
    )
    for k, claim in enumerate(design.claims[:2]):  # round stickers at the right of the illustration
        r = logo_r * 0.9
        cx, cy = w - m - r, brand_box[3] + h * 0.02 + r + k * r * 2.2
        if cy + r > h * 0.58:
            break
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=p.highlight)
        draw_text_box(
            d,
            (cx - r * 0.8, cy - r * 0.4, cx + r * 0.8, cy + r * 0.4),
            claim,
            "sans_bold",
            contrast_ink(p.highlight),
        )
    ink_bottom = p.accent_ink if design.motif in ("wave", "burst") else p.ink
    draw_text_box(d, (m, int(h * 0.88), w - m, h - m // 2), design.net_quantity, "sans_bold", ink_bottom)
    return img


def _table(d: ImageDraw.ImageDraw, design: LabelDesign, box, m: int) -> None:
    x0, y0, x1, y1 = box
    d.rectangle([x0, y0, x1, y1], fill=(255, 255, 255), outline=(30, 30, 30), width=max(1, m // 6))
    inner = (x0 + m, y0 + m // 2, x1 - m, y1 - m // 2)
    if design.nutrition is not None:
        draw_lines(d, inner, list(design.nutrition), (25, 25, 25), f"Nutrition per {design.per}")
    else:
        draw_lines(d, inner, ingredients(design), (25, 25, 25), "Ingredients")


def _fit_module(module_px: int, max_w: float, max_h: float) -> int:
    """The widest barcode module (pixels) that fits, or 0 if even a 1-pixel module does not."""
    while module_px >= 1:
        bw, bh = barcode_size(module_px)
        if bw <= max_w and bh <= max_h:
            return module_px
        module_px -= 1
    return 0


def info_panel(
    design: LabelDesign, w: int, h: int, module_px: int, barcode: bool = True, nutrition: bool = True
) -> Image.Image:
    """Back or side panel: brand, nutrition/ingredients table and the barcode, on a lighter ground.
    Portrait panels stack them; landscape panels put the barcode beside the table."""
    p = design.palette
    ground = mix(p.background, (255, 255, 255), 0.25)
    img = Image.new("RGB", (w, h), ground)
    d = ImageDraw.Draw(img)
    ink = contrast_ink(ground)
    m = max(2, int(min(w, h) * 0.06))
    n_lines = (len(design.nutrition) if design.nutrition is not None else len(ingredients(design))) + 2
    if w > 1.6 * h:  # landscape
        split = int(w * 0.55) if (barcode and nutrition) else (w if nutrition else 0)
        if nutrition and split - 2 * m > 20:
            _table(d, design, (m, m, split - m, h - m), m)
        if barcode:
            mp = _fit_module(module_px, w - split - 2 * m, h - 2 * m)
            if mp:
                bw, bh = barcode_size(mp)
                draw_ean13(img, design.ean, split + (w - split - bw) // 2, (h - bh) // 2, mp)
        return img
    y = m
    if w > h * 0.6:
        draw_text_box(d, (m, y, w - m, y + int(h * 0.12)), design.brand, design.brand_face, ink)
        y += int(h * 0.14)
    mp = _fit_module(module_px, w - 2 * m, (h - y - m) * (0.45 if nutrition else 1.0)) if barcode else 0
    bw, bh = barcode_size(mp) if mp else (0, 0)
    if nutrition:
        table_bottom = h - m - (bh + m if mp else 0)
        table_bottom = min(table_bottom, y + int(n_lines * 0.1 * (w - 2 * m)) + m)  # compact, top-aligned
        if table_bottom - y > 20:
            _table(d, design, (m, y, w - m, table_bottom), m)
    if mp:
        by = h - m - bh if nutrition else y + (h - y - m - bh) // 2
        draw_ean13(img, design.ean, (w - bw) // 2, by, mp)
    return img


def narrow_panel(design: LabelDesign, w: int, h: int) -> Image.Image:
    """A tall narrow side: the brand and product name running up the panel."""
    p = design.palette
    img = Image.new("RGB", (h, w), p.background)  # drawn landscape, rotated into place
    d = ImageDraw.Draw(img)
    m = max(2, int(w * 0.08))
    d.rectangle([0, int(w * 0.7), h, w], fill=p.accent)
    draw_text_box(d, (m, m, int(h * 0.65), int(w * 0.66)), design.brand, design.brand_face, p.ink)
    draw_text_box(d, (int(h * 0.67), m, h - m, int(w * 0.66)), design.net_quantity, "sans_bold", p.ink)
    draw_text_box(d, (m, int(w * 0.72), h - m, w - m // 2), design.product, "sans", p.accent_ink)
    return img.transpose(Image.Transpose.ROTATE_90)


def top_panel(design: LabelDesign, w: int, h: int) -> Image.Image:
    p = design.palette
    img = Image.new("RGB", (w, h), p.background)
    d = ImageDraw.Draw(img)
    m = max(2, int(min(w, h) * 0.1))
    if w >= h:
        draw_text_box(d, (m, m, w - m, h - m), design.brand, design.brand_face, p.ink)
    else:
        img = top_panel(design, h, w).transpose(Image.Transpose.ROTATE_90)
    return img


def band_panel(
    design: LabelDesign, w: int, h: int, module_px: int, front_fraction: float = 0.42
) -> Image.Image:
    """A label wrapped around a cylinder: the front design centred (u = 0.5 faces the viewer), an
    information panel with the barcode on one side, nutrition on the other; the glue seam at the back."""
    p = design.palette
    img = Image.new("RGB", (w, h), p.background)
    d = ImageDraw.Draw(img)
    draw_motif(d, design, w, h)
    fw = int(w * front_fraction)
    fx = (w - fw) // 2
    img.paste(front_panel(design, fw, h), (fx, 0))
    side = int(w * 0.22)
    gap = int(w * 0.02)
    img.paste(info_panel(design, side, h, module_px, barcode=False, nutrition=True), (fx - gap - side, 0))
    img.paste(info_panel(design, side, h, module_px, barcode=True, nutrition=False), (fx + fw + gap, 0))
    return img
