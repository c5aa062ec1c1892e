"""Retail packaging generators: box, can, bottle, jar, gable-top carton, pillow pouch, squeeze tube.

Each generator samples a product category, real-world dimensions for that category, and a label
design from one ``numpy.random.Generator``, lays out a texture atlas at a uniform texel density, and
builds the mesh so every printed panel maps onto its surface without stretching and reads upright and
un-mirrored from outside. The front of every pack faces -Y (a camera looking along +Y sees it), and
cylindrical labels put their glue seam at the back (+Y).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from trimesh.visual.material import PBRMaterial

from synth.procedural import ProceduralAsset
from synth.procedural.atlas import Atlas
from synth.procedural.finishes import SURFACES, Finish, linear_to_srgb8, srgb8_to_linear
from synth.procedural.geometry import (
    Profile,
    Soup,
    assemble,
    revolve_profile,
    ring,
    uv_band,
    uv_disc,
    uv_swatch,
)
from synth.procedural.labels.design import LabelDesign, sample_design
from synth.procedural.labels.fonts import draw_text_box
from synth.procedural.labels.palette import CONTENT_COLORS, contrast_ink
from synth.procedural.labels.panels import band_panel, front_panel, info_panel, narrow_panel, top_panel

MM = 1e-3
CREASE_DEG = 35.0
REVOLVE_COLS = 64

_NICE_GRAMS = (100, 125, 150, 200, 250, 300, 340, 375, 400, 450, 500, 600, 750, 1000, 1500, 2000, 2500)


def _grams(volume_m3: float, bulk_density_g_per_ml: float) -> str:
    g = volume_m3 * 1e6 * bulk_density_g_per_ml
    nice = min(_NICE_GRAMS, key=lambda x: abs(np.log(x / max(g, 1.0))))
    return f"{nice // 1000} kg" if nice >= 1000 and nice % 1000 == 0 else f"{nice} g"


def _finish(name: str) -> Finish:
    return SURFACES[name]


def _textured_asset(
    kind: str, seed: int, design: LabelDesign, noun: str, soup: Soup, atlas: Atlas, label_finish: Finish
) -> ProceduralAsset:
    base, mr = atlas.images()
    material = PBRMaterial(
        name=f"{kind}_label",
        baseColorTexture=base,
        metallicRoughnessTexture=mr,
        metallicFactor=1.0,
        roughnessFactor=1.0,
    )
    mesh = assemble(soup, material, crease_deg=CREASE_DEG)
    r, g, b = srgb8_to_linear(design.palette.background)
    hints = label_finish.hints(textured=True).model_copy(update={"base_color": (r, g, b, 1.0)})
    return ProceduralAsset(
        mesh=mesh,
        name=f"{design.brand} {design.product} {noun}",
        category=design.category,
        supercategory="retail",
        kind=kind,
        material=hints,
        symmetry="none",
        symmetry_order=None,
        seed=seed,
        label=design,
    )


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


# ---- box ------------------------------------------------------------------------------------------------

# category: (width, depth, height) ranges in metres and bulk density (g/ml) for the net weight.
BOX_SIZES = {
    "cereal": ((0.17, 0.23), (0.05, 0.08), (0.25, 0.33), 0.12),
    "crackers": ((0.14, 0.22), (0.05, 0.08), (0.15, 0.24), 0.22),
    "pasta": ((0.09, 0.12), (0.04, 0.06), (0.18, 0.26), 0.45),
    "tea": ((0.12, 0.16), (0.06, 0.08), (0.07, 0.10), 0.25),
    "cake": ((0.14, 0.19), (0.04, 0.06), (0.19, 0.24), 0.35),
    "sugar": ((0.10, 0.13), (0.05, 0.07), (0.15, 0.19), 0.85),
}


def make_box(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A folding carton (cereal, crackers, pasta, tea, cake mix, sugar): six printed panels."""
    category = _pick(rng, tuple(BOX_SIZES))
    (w0, w1), (d0, d1), (h0, h1), density = BOX_SIZES[category]
    W, D, H = rng.uniform(w0, w1), rng.uniform(d0, d1), rng.uniform(h0, h1)
    design = sample_design(rng, category, _grams(W * D * H * 0.9, density))
    fin = _finish("glossy_print")
    atlas = Atlas()
    for name, (pw, ph) in {
        "front": (W, H),
        "back": (W, H),
        "left": (D, H),
        "right": (D, H),
        "top": (W, D),
        "bottom": (W, D),
    }.items():
        atlas.reserve(name, pw, ph, fin)
    atlas.pack()
    mp = atlas.module_px()
    atlas.paint("front", front_panel(design, *atlas.pixels("front")))
    atlas.paint("back", info_panel(design, *atlas.pixels("back"), mp))
    atlas.paint("left", narrow_panel(design, *atlas.pixels("left")))
    atlas.paint(
        "right",
        info_panel(design, *atlas.pixels("right"), mp, barcode=False)
        if atlas.pixels("right")[0] > 0.45 * atlas.pixels("right")[1]
        else narrow_panel(design, *atlas.pixels("right")),
    )
    atlas.paint("top", top_panel(design, *atlas.pixels("top")))
    atlas.paint("bottom", top_panel(design, *atlas.pixels("bottom")))

    x, y = W / 2, D / 2
    soup = Soup()
    st = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    # Each face: corners in (s right, t up) order as seen from outside, and the outward normal.
    faces = {
        "front": ([(-x, -y, 0), (x, -y, 0), (x, -y, H), (-x, -y, H)], (0, -1, 0)),
        "back": ([(x, y, 0), (-x, y, 0), (-x, y, H), (x, y, H)], (0, 1, 0)),
        "left": ([(-x, y, 0), (-x, -y, 0), (-x, -y, H), (-x, y, H)], (-1, 0, 0)),
        "right": ([(x, -y, 0), (x, y, 0), (x, y, H), (x, -y, H)], (1, 0, 0)),
        "top": ([(-x, -y, H), (x, -y, H), (x, y, H), (-x, y, H)], (0, 0, 1)),
        "bottom": ([(-x, y, 0), (x, y, 0), (x, -y, 0), (-x, -y, 0)], (0, 0, -1)),
    }
    for name, (corners, normal) in faces.items():
        soup.add_polygon(
            np.array(corners, dtype=np.float64), normal, atlas.region(name).uv(st[:, 0], st[:, 1])
        )
    return _textured_asset("box", seed, design, f"{category} box", soup, atlas, fin)


# ---- can ------------------------------------------------------------------------------------------------

# category: nominal (diameter mm, height mm, contents) of common can formats.
CAN_SIZES = {
    "beans": ((73, 110, "400 g"), (65, 101, "300 g"), (83, 114, "500 g")),
    "corn": ((73, 110, "340 g"), (65, 80, "200 g")),
    "fish": ((85, 40, "160 g"), (65, 45, "120 g"), (99, 38, "185 g")),
    "soda": ((66, 115, "330 ml"), (66, 168, "500 ml"), (53, 134, "250 ml")),
    "tomato_sauce": ((73, 110, "400 g"), (99, 118, "800 g"), (54, 88, "200 g")),
}


def _lid_image(w: int, h: int, metal: tuple[int, int, int], beverage: bool) -> Image.Image:
    """The printed look of a can end: expansion rings on a food can, a pull tab on a drink can."""
    img = Image.new("RGB", (w, h), metal)
    d = ImageDraw.Draw(img)
    dark = tuple(int(c * 0.72) for c in metal)
    light = tuple(min(255, int(c * 1.12)) for c in metal)
    cx, cy = w / 2, h / 2
    if beverage:
        tw, th = w * 0.20, h * 0.34
        d.rounded_rectangle(
            [cx - tw, cy - 0.05 * h, cx + tw, cy + th],
            radius=int(tw * 0.6),
            fill=light,
            outline=dark,
            width=max(1, w // 90),
        )
        d.ellipse([cx - tw * 0.45, cy + th * 0.45, cx + tw * 0.45, cy + th * 0.8], fill=metal, outline=dark)
        d.ellipse([cx - w * 0.03, cy - w * 0.03, cx + w * 0.03, cy + w * 0.03], fill=dark)
        d.rounded_rectangle(
            [cx - w * 0.15, cy - h * 0.38, cx + w * 0.15, cy - h * 0.1],
            radius=int(w * 0.08),
            outline=dark,
            width=max(1, w // 120),
        )
    else:
        for f in (0.92, 0.75, 0.55):
            d.ellipse(
                [cx - f * w / 2, cy - f * h / 2, cx + f * w / 2, cy + f * h / 2],
                outline=dark,
                width=max(1, w // 80),
            )
    return img


def make_can(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A food can (rolled double seams, recessed ends, paper label) or a drink can (necked top, domed
    base, printed body, pull tab)."""
    category = _pick(rng, tuple(CAN_SIZES))
    d_mm, h_mm, qty = _pick(rng, CAN_SIZES[category])
    jitter = rng.uniform(0.985, 1.015)
    R, H = d_mm * MM / 2 * jitter, h_mm * MM * rng.uniform(0.985, 1.015)
    design = sample_design(rng, category, qty)
    beverage = category == "soda"
    metal_f = _finish("aluminium" if beverage else "tinplate")
    label_f = _finish("printed_aluminium" if beverage else "paper_label")
    metal_rgb = linear_to_srgb8(metal_f.base_color)

    if beverage:
        z_body0, z_body1 = 11 * MM, H - 13 * MM
        r_lid = 0.83 * R - 2.4 * MM
    else:
        rho = 1.1 * MM
        z_body0, z_body1 = 2 * rho + 0.6 * MM, H - 2 * rho - 0.6 * MM
        r_lid = R - 3.0 * MM
    z_lab0, z_lab1 = (z_body0, z_body1) if beverage else (z_body0 + 0.6 * MM, z_body1 - 0.6 * MM)

    atlas = Atlas()
    atlas.reserve("label", 2 * np.pi * R, z_lab1 - z_lab0, label_f)
    atlas.reserve("lid", 2 * r_lid, 2 * r_lid, metal_f)
    atlas.reserve_swatch("metal", metal_rgb, metal_f)
    atlas.pack()
    atlas.paint("label", band_panel(design, *atlas.pixels("label"), atlas.module_px()))
    atlas.paint("lid", _lid_image(*atlas.pixels("lid"), metal_rgb, beverage))
    metal = uv_swatch(atlas.region("metal"))
    lid = uv_disc(atlas.region("lid"), r_lid)
    base = uv_disc(atlas.region("lid"), r_lid, from_below=True)
    label = uv_band(atlas.region("label"), z_lab0, z_lab1)

    if beverage:
        rf = 0.74 * R
        p = Profile(0.0, 9.0 * MM)
        p.curve(lambda t: t * 0.70 * R, lambda t: 1.5 * MM + 7.5 * MM * (1 - t**2) ** 0.6, metal, n=10)
        p.line(rf, 0.0, metal)
        p.curve(
            lambda t: rf + (R - rf) * np.sin(np.pi * t / 2),
            lambda t: z_body0 * (1 - np.cos(np.pi * t / 2)),
            metal,
            n=10,
        )
        p.line(R, z_body1, label, n=4)
        rn = 0.83 * R
        p.curve(
            lambda t: R - (R - rn) * (1 - np.cos(np.pi * t)) / 2,
            lambda t: z_body1 + (H - 3 * MM - z_body1) * t,
            metal,
            n=10,
        )
        p.line(rn, H - 1.0 * MM, metal)
        p.arc(rn - 0.9 * MM, H - 1.0 * MM, 0.9 * MM, 0, 180, metal)
        p.line(r_lid, H - 6.0 * MM, metal)
        p.line(0.0, H - 6.0 * MM, lid, n=2)
    else:
        e = 3.0 * MM
        p = Profile(0.0, e)
        p.line(r_lid, e, base, n=2)
        p.line(R - 0.3 * MM - rho, rho, metal)
        p.arc(R - 0.3 * MM, rho, rho, 180, 450, metal)
        p.line(R, z_body0, metal)
        p.line(R, z_lab0, metal)
        p.line(R, z_lab1, label, n=4)
        p.line(R, z_body1, metal)
        p.line(R - 0.3 * MM, H - 2 * rho, metal)
        p.arc(R - 0.3 * MM, H - rho, rho, -90, 180, metal)
        p.line(r_lid, H - e, metal)
        p.line(0.0, H - e, lid, n=2)
    soup = Soup()
    revolve_profile(soup, p, REVOLVE_COLS)
    return _textured_asset("can", seed, design, f"{category.replace('_', ' ')} can", soup, atlas, label_f)


# ---- bottle ---------------------------------------------------------------------------------------------

# category: (body radius mm, height mm, contents, neck radius mm, glass?)
BOTTLE_SIZES = {
    "water": (
        (32.5, 205, "500 ml", 13.5, False),
        (36, 240, "750 ml", 13.5, False),
        (45, 310, "1.5 L", 13.5, False),
    ),
    "oil": ((40, 290, "1 L", 13.5, False), (33, 280, "750 ml", 12.0, True), (30, 250, "500 ml", 12.0, True)),
    "juice": ((40, 250, "1 L", 19.0, False), (30, 150, "330 ml", 19.0, False)),
    "vinegar": ((30, 230, "500 ml", 12.0, True), (25, 190, "250 ml", 11.0, True)),
    "soda": (
        (33, 210, "500 ml", 13.5, False),
        (45, 320, "1.5 L", 13.5, False),
        (52, 335, "2 L", 13.5, False),
    ),
}
_BOTTLE_TINT = {
    "water": (175, 215, 235),
    "oil": (205, 180, 45),
    "juice": (245, 150, 25),
    "vinegar": (110, 40, 30),
    "soda": (60, 150, 70),
}


def make_bottle(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A PET or glass bottle: rounded base, optional grip ribs, label band, curved shoulder, neck with a
    support ring, and a cap in its own colour."""
    category = _pick(rng, tuple(BOTTLE_SIZES))
    r_mm, h_mm, qty, neck_mm, glass = _pick(rng, BOTTLE_SIZES[category])
    R, H = r_mm * MM * rng.uniform(0.98, 1.02), h_mm * MM * rng.uniform(0.98, 1.02)
    rn = neck_mm * MM
    design = sample_design(rng, category, qty)
    body_f = _finish("glass" if glass else "pet")
    label_f = _finish("glossy_print")
    cap_f = _finish("pp_cap")
    tint = _BOTTLE_TINT[category]
    if category == "soda" and rng.random() < 0.5:
        tint = (200, 215, 210)  # clear PET showing a pale drink
    cap_rgb = design.palette.accent if rng.random() < 0.6 else (240, 240, 240)

    cap_h = rng.uniform(0.075, 0.095) * H if not glass else rng.uniform(0.09, 0.12) * H
    neck_len = (rng.uniform(0.03, 0.05) if not glass else rng.uniform(0.10, 0.16)) * H
    shoulder = (rng.uniform(0.12, 0.2) if not glass else rng.uniform(0.12, 0.18)) * H
    z_sh = H - cap_h - neck_len - shoulder
    z_lab0 = rng.uniform(0.15, 0.25) * z_sh + 6 * MM
    z_lab1 = z_sh - rng.uniform(0.05, 0.2) * z_sh
    rc = rn + 1.6 * MM

    atlas = Atlas()
    atlas.reserve("label", 2 * np.pi * R, z_lab1 - z_lab0, label_f)
    atlas.reserve_swatch("body", tint, body_f)
    atlas.reserve_swatch("cap", cap_rgb, cap_f)
    atlas.pack()
    atlas.paint("label", band_panel(design, *atlas.pixels("label"), atlas.module_px()))
    body, cap = uv_swatch(atlas.region("body")), uv_swatch(atlas.region("cap"))
    label = uv_band(atlas.region("label"), z_lab0, z_lab1)

    p = Profile(0.0, 2.5 * MM)
    p.line(R - 6 * MM, 0.0, body, n=2)
    p.arc(R - 6 * MM, 6 * MM, 6 * MM, -90, 0, body)
    ribs = int(rng.integers(0, 4)) if not glass else 0
    z = 6 * MM
    rib_zone = max(z_lab0 - 6 * MM - z, 0.0)
    for k in range(ribs):  # grip grooves below the label
        zc = z + rib_zone * (k + 1) / (ribs + 1)
        if zc - 2 * MM <= p.end[1] + 1e-4 or zc + 2 * MM >= z_lab0 - 1e-3:
            continue
        p.line(R, zc - 2 * MM, body)
        p.curve(
            lambda t: R - 1.2 * MM * np.sin(np.pi * t), lambda t, zc=zc: zc - 2 * MM + 4 * MM * t, body, n=8
        )
    p.line(R, z_lab0, body)
    p.line(R, z_lab1, label, n=4)
    p.line(R, z_sh, body)
    p.curve(lambda t: rn + (R - rn) * (1 + np.cos(np.pi * t)) / 2, lambda t: z_sh + shoulder * t, body, n=16)
    z_ring = z_sh + shoulder + neck_len * 0.35
    p.line(rn, z_ring, body)
    p.line(rn + 2.8 * MM, z_ring, body)  # support ring
    p.line(rn + 2.8 * MM, z_ring + 1.2 * MM, body)
    p.line(rn, z_ring + 1.2 * MM, body)
    z_cap0 = H - cap_h
    p.line(rn, z_cap0, body)
    p.line(rc, z_cap0, cap)
    p.line(rc, H - 1.5 * MM, cap)
    p.arc(rc - 1.5 * MM, H - 1.5 * MM, 1.5 * MM, 0, 90, cap, step_deg=15)
    p.line(0.0, H, cap, n=2)
    soup = Soup()
    revolve_profile(soup, p, REVOLVE_COLS)
    return _textured_asset("bottle", seed, design, f"{category} bottle", soup, atlas, label_f)


# ---- jar ------------------------------------------------------------------------------------------------

# category: (body radius range mm, height range mm, net quantity, plastic lid?)
JAR_SIZES = {
    "jam": ((33, 38), (85, 105), ("340 g", "454 g"), False),
    "honey": ((34, 40), (80, 110), ("340 g", "454 g"), False),
    "spices": ((21, 25), (85, 105), ("40 g", "50 g"), True),
    "nuts": ((45, 55), (100, 140), ("400 g", "500 g"), True),
}


def make_jar(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A wide-mouth jar: glass or PET body showing its contents, a label band and a metal or plastic lid."""
    category = _pick(rng, tuple(JAR_SIZES))
    (r0, r1), (h0, h1), qtys, plastic_lid = JAR_SIZES[category]
    R, H = rng.uniform(r0, r1) * MM, rng.uniform(h0, h1) * MM
    design = sample_design(rng, category, _pick(rng, qtys))
    body_f = _finish("glass" if category != "nuts" else "pet")
    lid_f = _finish("pp_cap" if plastic_lid else "lacquered_lid")
    label_f = _finish("paper_label")
    lid_rgb = design.palette.accent if plastic_lid or rng.random() < 0.5 else (200, 160, 70)
    contents = CONTENT_COLORS[category]

    rn = R * rng.uniform(0.84, 0.92)
    rl = rn + 1.5 * MM
    lid_h = rng.uniform(0.11, 0.16) * H
    shoulder = rng.uniform(0.06, 0.1) * H
    z_sh = H - lid_h - 2.5 * MM - shoulder
    z_lab0, z_lab1 = z_sh * rng.uniform(0.12, 0.22), z_sh * rng.uniform(0.78, 0.92)

    atlas = Atlas()
    atlas.reserve("label", 2 * np.pi * R, z_lab1 - z_lab0, label_f)
    atlas.reserve("lid_top", 2 * (rl - 2 * MM), 2 * (rl - 2 * MM), lid_f)
    atlas.reserve_swatch("body", contents, body_f)
    atlas.reserve_swatch("lid", lid_rgb, lid_f)
    atlas.pack()
    atlas.paint("label", band_panel(design, *atlas.pixels("label"), atlas.module_px(), front_fraction=0.48))
    atlas.paint("lid_top", _jar_lid_image(design, *atlas.pixels("lid_top"), lid_rgb))
    body, lid = uv_swatch(atlas.region("body")), uv_swatch(atlas.region("lid"))
    label = uv_band(atlas.region("label"), z_lab0, z_lab1)
    top = uv_disc(atlas.region("lid_top"), rl - 2 * MM)

    p = Profile(0.0, 1.5 * MM)
    p.line(R - 4 * MM, 0.0, body, n=2)
    p.arc(R - 4 * MM, 4 * MM, 4 * MM, -90, 0, body)
    p.line(R, z_lab0, body)
    p.line(R, z_lab1, label, n=3)
    p.line(R, z_sh, body)
    p.curve(
        lambda t: rn + (R - rn) * np.cos(np.pi * t / 2),
        lambda t: z_sh + shoulder * np.sin(np.pi * t / 2),
        body,
        n=10,
    )
    z_l0 = H - lid_h
    p.line(rn, z_l0, body)
    p.line(rl, z_l0, lid)
    p.line(rl, H - 2 * MM, lid, n=2)
    p.arc(rl - 2 * MM, H - 2 * MM, 2 * MM, 0, 90, lid, step_deg=15)
    p.line(0.0, H, top, n=3)
    soup = Soup()
    revolve_profile(soup, p, REVOLVE_COLS)
    return _textured_asset("jar", seed, design, f"{category} jar", soup, atlas, label_f)


def _jar_lid_image(design: LabelDesign, w: int, h: int, rgb) -> Image.Image:
    img = Image.new("RGB", (w, h), rgb)
    d = ImageDraw.Draw(img)
    ink = contrast_ink(rgb)
    d.ellipse([w * 0.12, h * 0.12, w * 0.88, h * 0.88], outline=ink, width=max(1, w // 60))
    draw_text_box(d, (w * 0.2, h * 0.38, w * 0.8, h * 0.62), design.brand, design.brand_face, ink)
    return img


# ---- gable-top carton ----------------------------------------------------------------------------------

# category: (width mm, body height mm, contents) of common gable-top formats.
CARTON_SIZES = {
    "milk": ((57, 135, "500 ml"), (70, 195, "1 L"), (95, 235, "2 L")),
    "juice": ((57, 135, "500 ml"), (70, 195, "1 L")),
}


def make_carton(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A gable-top carton: square body, two roof panels, the top fin seal, gable ends printed with the
    sides. Front and roof are one unfolded panel, as on the printed blank."""
    category = _pick(rng, tuple(CARTON_SIZES))
    w_mm, h_mm, qty = _pick(rng, CARTON_SIZES[category])
    W, Hb = w_mm * MM * rng.uniform(0.98, 1.02), h_mm * MM * rng.uniform(0.98, 1.02)
    g = W * rng.uniform(0.45, 0.6)  # gable height
    fin, tf = rng.uniform(7, 10) * MM, 2.0 * MM  # fin seal height and thickness
    design = sample_design(rng, category, qty)
    fin_f = _finish("coated_board")
    slant = float(np.hypot(W / 2 - tf / 2, g))
    side_h = Hb + g + fin

    atlas = Atlas()
    atlas.reserve("front", W, Hb + slant, fin_f)
    atlas.reserve("back", W, Hb + slant, fin_f)
    atlas.reserve("right", W, side_h, fin_f)
    atlas.reserve("left", W, side_h, fin_f)
    atlas.reserve_swatch("fin", design.palette.background, fin_f)
    atlas.reserve_swatch("bottom", (236, 232, 222), fin_f)
    atlas.pack()
    mp = atlas.module_px()
    front = front_panel(design, *atlas.pixels("front"))
    atlas.paint("front", front)
    atlas.paint("back", front.copy())
    atlas.paint("right", info_panel(design, *atlas.pixels("right"), mp, barcode=False))
    atlas.paint("left", info_panel(design, *atlas.pixels("left"), mp, nutrition=False))

    # The side profile in (y, z), counter-clockwise seen from +X, extruded along X.
    y, t = W / 2, tf / 2
    prof = np.array(
        [
            (-y, 0),
            (y, 0),
            (y, Hb),
            (t, Hb + g),
            (t, Hb + g + fin),
            (-t, Hb + g + fin),
            (-t, Hb + g),
            (-y, Hb),
        ],
        dtype=np.float64,
    )
    x = W / 2
    soup = Soup()
    for sign, name in ((1, "right"), (-1, "left")):
        loop = np.column_stack([np.full(len(prof), sign * x), prof])
        s = (prof[:, 0] + y) / W if sign > 0 else (y - prof[:, 0]) / W
        soup.add_polygon(loop, (sign, 0, 0), atlas.region(name).uv(s, prof[:, 1] / side_h))

    def wall(a, b, normal, uv_a, uv_b):
        """Quad from profile edge a->b extruded across x; uv_* give (s, t) at x = -W/2 and +W/2."""
        quad = np.array([(-x, *a), (x, *a), (x, *b), (-x, *b)], dtype=np.float64)
        soup.add_polygon(quad, normal, np.array([uv_a[0], uv_a[1], uv_b[1], uv_b[0]]))

    front_r, back_r = atlas.region("front"), atlas.region("back")
    total = Hb + slant
    ny = (0.0, -g, (W / 2 - t))
    nroof = np.array(ny) / np.linalg.norm(ny)
    for region, sgn in ((front_r, -1), (back_r, 1)):
        s_at = (0.0, 1.0) if sgn < 0 else (1.0, 0.0)  # s at x = -W/2 and +W/2, as seen from outside
        body = (
            region.uv(np.array(s_at), np.array([0.0, 0.0])),
            region.uv(np.array(s_at), np.array([Hb / total] * 2)),
        )
        roof = (
            region.uv(np.array(s_at), np.array([Hb / total] * 2)),
            region.uv(np.array(s_at), np.array([1.0, 1.0])),
        )
        wall((sgn * y, 0), (sgn * y, Hb), (0, sgn, 0), *body)
        wall((sgn * y, Hb), (sgn * t, Hb + g), (0, sgn * -nroof[1], nroof[2]), *roof)
    fin_uv = atlas.region("fin").center_uv()
    fin_pair = np.array([fin_uv, fin_uv])
    for a, b, n in (
        ((t, Hb + g), (t, Hb + g + fin), (0, 1, 0)),
        ((t, Hb + g + fin), (-t, Hb + g + fin), (0, 0, 1)),
        ((-t, Hb + g + fin), (-t, Hb + g), (0, -1, 0)),
    ):
        wall(a, b, n, fin_pair, fin_pair)
    bottom_uv = atlas.region("bottom").center_uv()
    wall((-y, 0), (y, 0), (0, 0, -1), np.array([bottom_uv] * 2), np.array([bottom_uv] * 2))
    return _textured_asset("carton", seed, design, f"{category} carton", soup, atlas, fin_f)


# ---- pouch ----------------------------------------------------------------------------------------------

# category: (width, height, max thickness) ranges in metres, film finish, net quantities.
POUCH_SIZES = {
    "chips": ((0.18, 0.25), (0.26, 0.35), (0.06, 0.09), "metallised_film", ("150 g", "200 g")),
    "candy": ((0.13, 0.17), (0.18, 0.23), (0.025, 0.04), "glossy_print", ("150 g", "200 g")),
    "coffee": ((0.12, 0.14), (0.22, 0.27), (0.05, 0.07), "metallised_film", ("250 g", "500 g")),
    "rice": ((0.13, 0.16), (0.22, 0.27), (0.05, 0.07), "glossy_print", ("500 g", "1 kg")),
    "flour": ((0.12, 0.15), (0.22, 0.28), (0.07, 0.09), "kraft_paper", ("1 kg", "1.5 kg")),
    "nuts": ((0.12, 0.15), (0.17, 0.22), (0.035, 0.05), "glossy_print", ("150 g", "200 g")),
}


def _arclength_param(points: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised cumulative arc length of a point grid along ``axis`` and the mean total length:
    printed film is flat before it is formed, so its texture follows the surface's own length."""
    seg = np.linalg.norm(np.diff(points, axis=axis), axis=-1)
    cum = np.concatenate([np.zeros_like(np.take(seg, [0], axis=axis)), np.cumsum(seg, axis=axis)], axis=axis)
    total = np.take(cum, [-1], axis=axis)
    return cum / total, float(np.mean(total))


def make_pouch(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A pillow bag: two printed film sheets bulging apart, crimped seals across top and bottom."""
    category = _pick(rng, tuple(POUCH_SIZES))
    (w0, w1), (h0, h1), (t0, t1), film, qtys = POUCH_SIZES[category]
    W, H, T = rng.uniform(w0, w1), rng.uniform(h0, h1), rng.uniform(t0, t1)
    seal = rng.uniform(0.012, 0.022)
    design = sample_design(rng, category, _pick(rng, qtys))
    film_f = _finish(film)

    n_ridge = int(np.clip(round(W / 0.004), 20, 64))
    K = 2 * n_ridge
    s = np.linspace(0.0, 1.0, K + 1)
    xf = (s - 0.5) * W
    zb = np.linspace(seal, H - seal, 33)
    z = np.concatenate([[0.0], zb, [H]])
    body_t = np.clip((z - seal) / (H - 2 * seal), 0.0, 1.0)
    bz = np.sin(np.pi * body_t) ** 0.7
    bx = np.sqrt(np.clip(1.0 - (2 * xf / W) ** 2, 0.0, 1.0))
    half = 0.3 * MM + 0.5 * T * bz[:, None] * bx[None, :]
    in_seal = (z <= seal + 1e-12) | (z >= H - seal - 1e-12)
    crimp = np.where(
        in_seal[:, None], 0.7 * MM * np.where(np.arange(K + 1) % 2 == 0, 1.0, -1.0)[None, :], 0.0
    )
    x = xf[None, :] * (1.0 - 0.07 * bz[:, None])
    zz = np.broadcast_to(z[:, None], half.shape)
    front = np.stack([x, crimp - half, zz], axis=-1)
    back = np.stack([x, crimp + half, zz], axis=-1)[:, ::-1]  # columns run right-to-left seen from +Y
    smooth = np.stack([x, -half, zz], axis=-1)  # the film without crimp ridges, for its own lengths
    u, film_w = _arclength_param(smooth, axis=1)
    v, film_h = _arclength_param(smooth, axis=0)

    atlas = Atlas()
    atlas.reserve("front", film_w, film_h, film_f)
    atlas.reserve("back", film_w, film_h, film_f)
    atlas.reserve_swatch("edge", design.palette.background, film_f)
    atlas.pack()
    atlas.paint("front", front_panel(design, *atlas.pixels("front")))
    atlas.paint("back", info_panel(design, *atlas.pixels("back"), atlas.module_px()))

    soup = Soup()
    soup.add_grid(front, atlas.region("front").uv(u, v))
    soup.add_grid(back, atlas.region("back").uv(u, v))
    edge = atlas.region("edge").center_uv()
    soup.add_grid(np.stack([front[:, -1], back[:, 0]], axis=1), edge)
    soup.add_grid(np.stack([back[:, -1], front[:, 0]], axis=1), edge)
    soup.add_grid(np.stack([front[-1], back[-1, ::-1]], axis=0), edge)
    soup.add_grid(np.stack([back[0, ::-1], front[0]], axis=0), edge)
    return _textured_asset("pouch", seed, design, f"{category} bag", soup, atlas, film_f)


# ---- tube -----------------------------------------------------------------------------------------------

TUBE_SIZES = ((14.5, 130, "50 ml"), (17.5, 160, "75 ml"), (19.0, 175, "100 ml"), (21.0, 190, "125 ml"))


def _ellipse_at_uniform_length(a: float, b: float, n: int, start: float) -> tuple[np.ndarray, np.ndarray]:
    """n+1 points on an ellipse spaced evenly by arc length from angle ``start`` (so a label maps onto
    a flattening tube with constant texel density around the section)."""
    th = start + np.linspace(0.0, 2 * np.pi, 4097)
    px, py = a * np.cos(th), b * np.sin(th)
    seg = np.hypot(np.diff(px), np.diff(py))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    want = np.linspace(0.0, cum[-1], n + 1)
    ti = np.interp(want, cum, th)
    x, y = a * np.cos(ti), b * np.sin(ti)
    x[-1], y[-1] = x[0], y[0]
    return x, y


def _semi_axis_for_perimeter(perimeter: float, b: float) -> float:
    """The semi-axis a >= b of an ellipse with the given perimeter (Ramanujan's approximation)."""

    def per(a):
        return np.pi * (3 * (a + b) - np.sqrt((3 * a + b) * (a + 3 * b)))

    lo, hi = b, perimeter / 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if per(mid) < perimeter else (lo, mid)
    return 0.5 * (lo + hi)


def make_tube(rng: np.random.Generator, seed: int) -> ProceduralAsset:
    """A squeeze tube standing on its screw cap: round at the shoulder, flattening to a crimped seal.
    The label runs along the tube and reads with the cap to the right."""
    r_mm, l_mm, qty = _pick(rng, TUBE_SIZES)
    R, L = r_mm * MM * rng.uniform(0.98, 1.02), l_mm * MM * rng.uniform(0.98, 1.02)
    design = sample_design(rng, "toothpaste", qty)
    tube_f, cap_f = _finish("ldpe_tube"), _finish("pp_cap")
    cap_rgb = design.palette.accent if rng.random() < 0.7 else (245, 245, 245)
    rc = R * rng.uniform(0.72, 0.92)
    cap_h = rng.uniform(12, 18) * MM
    sh_h = rng.uniform(5, 8) * MM
    seal_h = rng.uniform(8, 12) * MM
    z_s, z_c = cap_h + sh_h, L - seal_h
    n = REVOLVE_COLS

    atlas = Atlas()
    atlas.reserve("label", 2 * np.pi * R, z_c - z_s, tube_f)
    atlas.reserve_swatch("tube", design.palette.background, tube_f)
    atlas.reserve_swatch("cap", cap_rgb, cap_f)
    atlas.pack()
    lw, lh = atlas.pixels("label")
    atlas.paint("label", _tube_label(design, lw, lh, atlas.module_px()))
    tube, cap = uv_swatch(atlas.region("tube")), uv_swatch(atlas.region("cap"))

    p = Profile(0.0, 0.0)
    p.line(rc - 1.5 * MM, 0.0, cap, n=2)
    p.arc(rc - 1.5 * MM, 1.5 * MM, 1.5 * MM, -90, 0, cap, step_deg=15)
    p.line(rc, cap_h, cap, n=2)
    r0 = 0.5 * R
    p.line(r0, cap_h, cap)
    p.curve(
        lambda t: r0 + (R - r0) * np.sin(np.pi * t / 2),
        lambda t: cap_h + sh_h * (1 - np.cos(np.pi * t / 2)),
        tube,
        n=8,
    )
    soup = Soup()
    revolve_profile(soup, p, n)

    # Body: rows from the shoulder (circle) to the seal (flat), columns at equal arc length.
    _, c, s_ = ring(n)
    rows = 40
    zr = np.linspace(z_s, z_c, rows + 1)
    f = np.linspace(0.0, 1.0, rows + 1) ** 1.6
    b_min = 0.4 * MM
    body = np.empty((rows + 1, n + 1, 3))
    for i, fi in enumerate(f):
        b = R * (1 - fi) + b_min * fi
        a = _semi_axis_for_perimeter(2 * np.pi * R, b)  # the tube wall keeps its length as it flattens
        if i == 0:
            x, y = R * c, R * s_
        else:
            x, y = _ellipse_at_uniform_length(a, b, n, np.pi / 2)
        body[i] = np.stack([x, y, np.full(n + 1, zr[i])], axis=1)
    s_cols = np.linspace(0.0, 1.0, n + 1)
    soup.add_grid(body, atlas.region("label").uv(s_cols[None, :], ((zr - z_s) / (z_c - z_s))[:, None]))

    # Crimped seal: the flat end with ridges across it.
    nr = 9
    zs = np.linspace(z_c, L, nr + 1)
    ridge = np.where(np.arange(nr + 1) % 2 == 1, 0.35 * MM, 0.0)
    ridge[-1] = 0.0
    seal = np.repeat(body[-1][None], nr + 1, axis=0).copy()
    seal[:, :, 2] = zs[:, None]
    seal[:, :, 1] += ridge[:, None]
    soup.add_grid(seal, tube(seal, None, s_cols))
    top = seal[-1]
    q = n // 4
    lower = [top[(q + k) % n] for k in range(n // 2 + 1)]
    upper = [top[(q - k) % n] for k in range(n // 2 + 1)]
    cap_grid = np.stack([np.array(lower), np.array(upper)], axis=0)
    soup.add_grid(cap_grid, atlas.region("tube").center_uv())
    return _textured_asset("tube", seed, design, "toothpaste tube", soup, atlas, tube_f)


def _tube_label(design: LabelDesign, w: int, h: int, module_px: int) -> Image.Image:
    """The label drawn landscape (reading along the tube) and turned so it reads with the cap on the
    right: front design on the half facing -Y, ingredients and barcode on the back half."""
    canvas = Image.new("RGB", (h, w), design.palette.background)  # landscape: length x circumference
    quarter = w // 4
    front_h = w - 2 * quarter
    canvas.paste(front_panel(design, h, front_h), (0, quarter))
    canvas.paste(info_panel(design, h, quarter, module_px, barcode=False), (0, 0))
    canvas.paste(info_panel(design, h, quarter, module_px, nutrition=False), (0, quarter + front_h))
    return canvas.transpose(Image.Transpose.ROTATE_270)


GENERATORS = {
    "box": make_box,
    "can": make_can,
    "bottle": make_bottle,
    "jar": make_jar,
    "carton": make_carton,
    "pouch": make_pouch,
    "tube": make_tube,
}
