"""Drawing primitives of a label: the logo, the background motif, the serving suggestion and small print."""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from synth.procedural.labels.design import LabelDesign
from synth.procedural.labels.fonts import draw_text_box, fit_font, font
from synth.procedural.labels.palette import CONTENT_COLORS, RGB8, mix


def _star(cx, cy, r_out, r_in, n=5, rot=-np.pi / 2):
    a = rot + np.pi * np.arange(2 * n) / n
    r = np.where(np.arange(2 * n) % 2 == 0, r_out, r_in)
    return [(float(cx + ri * np.cos(ai)), float(cy + ri * np.sin(ai))) for ri, ai in zip(r, a, strict=True)]


def draw_logo(d: ImageDraw.ImageDraw, design: LabelDesign, cx: float, cy: float, r: float) -> None:
    """A simple emblem of radius ``r`` with the brand's initial."""
    p = design.palette
    kind = design.logo
    if kind == "circle":
        d.ellipse(
            [cx - r, cy - r, cx + r, cy + r], fill=p.accent, outline=p.highlight, width=max(1, int(r / 10))
        )
    elif kind == "star":
        d.polygon(_star(cx, cy, r, r * 0.5), fill=p.accent)
    elif kind == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=p.accent)
    elif kind == "ribbon":
        w, h = r * 1.4, r * 0.55
        d.polygon(
            [
                (cx - w, cy - h),
                (cx + w, cy - h),
                (cx + w * 0.8, cy),
                (cx + w, cy + h),
                (cx - w, cy + h),
                (cx - w * 0.8, cy),
            ],
            fill=p.accent,
        )
    elif kind == "leaf":
        d.ellipse([cx - r, cy - r * 0.55, cx + r, cy + r * 0.55], fill=p.accent)
        d.line([(cx - r, cy), (cx + r * 0.9, cy)], fill=p.highlight, width=max(1, int(r / 12)))
    else:  # sun
        for k in range(12):
            a = 2 * np.pi * k / 12
            d.line(
                [
                    (cx + 0.7 * r * np.cos(a), cy + 0.7 * r * np.sin(a)),
                    (cx + r * np.cos(a), cy + r * np.sin(a)),
                ],
                fill=p.accent,
                width=max(1, int(r / 8)),
            )
        d.ellipse([cx - 0.6 * r, cy - 0.6 * r, cx + 0.6 * r, cy + 0.6 * r], fill=p.accent)
    if kind not in ("ribbon", "leaf"):
        f = fit_font(design.brand_face, design.brand[0], r * 0.9, r * 0.9)
        if f is not None:
            d.text((cx, cy), design.brand[0], font=f, fill=p.accent_ink, anchor="mm")


def draw_motif(d: ImageDraw.ImageDraw, design: LabelDesign, w: int, h: int, x0: int = 0) -> None:
    """The background graphic that makes a design recognisable at a distance."""
    p = design.palette
    kind = design.motif
    if kind == "band":
        d.rectangle([x0, int(h * 0.58), x0 + w, int(h * 0.78)], fill=p.accent)
    elif kind == "diagonal":
        d.polygon([(x0, h * 0.62), (x0 + w, h * 0.42), (x0 + w, h * 0.72), (x0, h * 0.92)], fill=p.accent)
    elif kind == "wave":
        xs = np.linspace(x0, x0 + w, 64)
        ys = h * 0.7 + h * 0.05 * np.sin(2 * np.pi * (xs - x0) / max(w, 1) * 1.5)
        d.polygon(
            [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)] + [(x0 + w, h), (x0, h)],
            fill=p.accent,
        )
    elif kind == "burst":
        cx, cy, rr = x0 + w * 0.5, h * 0.45, float(np.hypot(w, h))
        for k in range(0, 24, 2):
            a0, a1 = 2 * np.pi * k / 24, 2 * np.pi * (k + 1) / 24
            d.polygon(
                [
                    (cx, cy),
                    (cx + rr * np.cos(a0), cy + rr * np.sin(a0)),
                    (cx + rr * np.cos(a1), cy + rr * np.sin(a1)),
                ],
                fill=mix(p.background, p.highlight, 0.35),
            )
        d.rectangle([x0, int(h * 0.86), x0 + w, h], fill=p.accent)
    else:  # stripes
        n = 9
        for k in range(0, n, 2):
            d.rectangle(
                [x0 + int(w * k / n), 0, x0 + int(w * (k + 1) / n), int(h * 0.2)],
                fill=mix(p.background, p.highlight, 0.5),
            )
        d.rectangle([x0, int(h * 0.2), x0 + w, int(h * 0.23)], fill=p.accent)


def draw_illustration(d: ImageDraw.ImageDraw, design: LabelDesign, box) -> None:
    """A stand-in 'serving suggestion': a plate or bowl with pieces in the contents colour."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w < 8 or h < 8:
        return
    rng = np.random.default_rng(design.dots_seed)
    content = CONTENT_COLORS.get(design.category, (200, 160, 90))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if design.per == "100 ml":  # drinks: a glass of the contents with bubbles
        gw, gh = min(w * 0.35, h * 0.7), h * 0.9
        gx0, gy0 = cx - gw / 2, cy - gh / 2
        d.polygon(
            [(gx0, gy0), (gx0 + gw, gy0), (gx0 + gw * 0.88, gy0 + gh), (gx0 + gw * 0.12, gy0 + gh)],
            fill=(235, 242, 245),
            outline=(170, 180, 185),
        )
        ly = gy0 + gh * 0.22
        d.polygon(
            [
                (gx0 + gw * 0.03, ly),
                (gx0 + gw * 0.97, ly),
                (gx0 + gw * 0.88, gy0 + gh),
                (gx0 + gw * 0.12, gy0 + gh),
            ],
            fill=content,
        )
        for _ in range(int(8 + 12 * rng.random())):
            bx, by = rng.uniform(gx0 + gw * 0.2, gx0 + gw * 0.8), rng.uniform(ly + gh * 0.05, gy0 + gh * 0.95)
            br = max(1.0, gw * rng.uniform(0.015, 0.035))
            d.ellipse([bx - br, by - br, bx + br, by + br], outline=mix(content, (255, 255, 255), 0.6))
        return
    if design.category == "toothpaste":  # a ribbon of striped paste instead of a plate
        xs = np.linspace(x0 + w * 0.08, x1 - w * 0.08, 48)
        amp, th = h * 0.12, max(2.0, h * 0.16)
        ys = cy + amp * np.sin(np.linspace(0, 3 * np.pi, 48))
        top = [(float(x), float(y - th)) for x, y in zip(xs, ys, strict=True)]
        bottom = [(float(x), float(y + th)) for x, y in zip(xs[::-1], ys[::-1], strict=True)]
        d.polygon(top + bottom, fill=(250, 250, 250), outline=(200, 205, 210))
        d.line(
            [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)],
            fill=content,
            width=max(1, int(th * 0.6)),
        )
        return
    rx, ry = w * 0.45, min(h * 0.45, w * 0.22)
    d.ellipse(
        [cx - rx, cy - ry, cx + rx, cy + ry],
        fill=(245, 245, 240),
        outline=(190, 190, 185),
        width=max(1, int(ry / 12)),
    )
    d.ellipse(
        [cx - rx * 0.8, cy - ry * 0.75, cx + rx * 0.8, cy + ry * 0.75],
        fill=mix(content, (255, 255, 255), 0.3),
    )
    n = int(30 + 60 * rng.random())
    pr = max(1.0, min(rx, ry) * 0.09)
    for _ in range(n):
        a, rad = rng.uniform(0, 2 * np.pi), np.sqrt(rng.random()) * 0.72
        px, py = cx + rad * rx * np.cos(a), cy + rad * ry * np.sin(a)
        shade = mix(content, (60, 30, 10), rng.uniform(0.0, 0.35))
        d.ellipse([px - pr, py - pr * 0.7, px + pr, py + pr * 0.7], fill=shade)


def draw_lines(
    d: ImageDraw.ImageDraw, box, lines: list[tuple[str, str]], ink: RGB8, title: str | None = None
) -> None:
    """Two-column small print (label / value) filling ``box``. Lines too small to rasterise legibly
    (< 7 px) are drawn as grey text-like bars, which is what they look like in a photo anyway."""
    x0, y0, x1, y1 = box
    n = len(lines) + (2 if title else 0)
    lh = (y1 - y0) / max(n, 1)
    size = int(lh * 0.72)
    if size >= 7:  # also fit the widest "label  value" line into the box width
        probe = font("sans", 100)
        widest = max(
            probe.getlength(a) + probe.getlength(b) + (probe.getlength("  ") if b else 0) for a, b in lines
        )
        size = min(size, int(100 * (x1 - x0) / max(widest, 1.0)))
    grey = mix(ink, (255, 255, 255), 0.45)
    y = y0
    if title:
        if size >= 7:
            draw_text_box(d, (x0, y, x1, y + 2 * lh), title, "sans_bold", ink, max_size=int(lh * 1.5))
        else:
            d.rectangle([x0, y + lh * 0.4, x0 + (x1 - x0) * 0.7, y + lh * 1.4], fill=ink)
        y += 2 * lh
        d.line([(x0, y - lh * 0.15), (x1, y - lh * 0.15)], fill=ink, width=max(1, int(lh / 8)))
    for label, value in lines:
        if size >= 7:
            f = font("sans", size)
            d.text((x0, y + lh / 2), label, font=f, fill=ink, anchor="lm")
            d.text((x1, y + lh / 2), value, font=f, fill=ink, anchor="rm")
        else:
            llen = min(0.55, 0.08 * len(label) / 2 + 0.1) * (x1 - x0)
            vlen = min(0.35, 0.06 * len(value) / 2 + 0.05) * (x1 - x0)
            d.rectangle([x0, y + lh * 0.3, x0 + llen, y + lh * 0.7], fill=grey)
            d.rectangle([x1 - vlen, y + lh * 0.3, x1, y + lh * 0.7], fill=grey)
        y += lh


def ingredients(design: LabelDesign) -> list[tuple[str, str]]:
    if design.category == "toothpaste":
        return [
            ("Sodium Fluoride", "1450 ppm F"),
            ("Aqua, Hydrated Silica", ""),
            ("Sorbitol, Glycerin", ""),
            ("Aroma, Cellulose Gum", ""),
            ("Keep out of reach", ""),
            ("of children under 6", ""),
        ]
    return [("Ingredients:", design.product), ("Store in a cool", ""), ("dry place", "")]
