"""Printed packaging artwork: brand names, colour schemes, logos, EAN-13 barcodes, nutrition panels,
and the texture atlas that carries them.

Why it looks like this: detectors trained on synthetic shelves learn from text-like strokes, logos,
barcodes and dense small print; flat-coloured boxes teach them nothing about real labels. Everything
here is drawn with Pillow at a known texel density (pixels per metre of the printed surface), so the
packaging generator can map each panel onto its face without stretching.

Fonts: the DejaVu faces bundled with matplotlib (a pinned dependency), so the same seed draws the same
pixels on every machine; Pillow's built-in scalable font is the fallback.
"""

from __future__ import annotations

import colorsys
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synth.errors import AssetError
from synth.procedural.finishes import Finish
from synth.procedural.geometry import Region

RGB8 = tuple[int, int, int]

MAX_TEXTURE_SIDE = 2048  # pixels; keeps a GLB around 1-3 MB and a PNG encode well under a second
TARGET_PX_PER_M = 4000.0  # 4 px/mm: 2 mm print is still legible at close range
ATLAS_PAD = 4  # pixels of edge bleed around each region, so mip-mapping never mixes neighbours

# ---- fonts -----------------------------------------------------------------------------------------

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


# ---- names -----------------------------------------------------------------------------------------

_ONSETS = (
    "b",
    "c",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "cr",
    "dr",
    "fl",
    "gr",
    "pr",
    "st",
    "tr",
    "ch",
    "sh",
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "o", "e", "i", "io", "ea")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "x", "nd", "rt")

PRODUCTS: dict[str, tuple[str, ...]] = {
    "cereal": (
        "Crunchy Oats",
        "Honey Flakes",
        "Corn Flakes",
        "Cocoa Puffs",
        "Fruit Muesli",
        "Bran Flakes",
        "Granola Clusters",
        "Frosted Rings",
        "Multigrain Hoops",
        "Rice Crisps",
    ),
    "crackers": (
        "Sea Salt Crackers",
        "Cracked Pepper Thins",
        "Rosemary Crispbread",
        "Cheddar Crackers",
        "Rye Crispbread",
        "Water Biscuits",
        "Sesame Crackers",
    ),
    "pasta": ("Spaghetti", "Penne Rigate", "Fusilli", "Farfalle", "Linguine", "Rigatoni", "Tagliatelle"),
    "tea": (
        "Earl Grey Tea",
        "English Breakfast",
        "Green Tea",
        "Chamomile Infusion",
        "Peppermint Tea",
        "Rooibos Tea",
        "Jasmine Green Tea",
    ),
    "cake": (
        "Chocolate Cake Mix",
        "Vanilla Sponge Mix",
        "Lemon Drizzle Mix",
        "Brownie Mix",
        "Carrot Cake Mix",
        "Muffin Mix",
    ),
    "sugar": (
        "Granulated Sugar",
        "Caster Sugar",
        "Light Brown Sugar",
        "Icing Sugar",
        "Cane Sugar",
        "Demerara Sugar",
    ),
    "beans": (
        "Baked Beans",
        "Red Kidney Beans",
        "Cannellini Beans",
        "Black Beans",
        "Butter Beans",
        "Chickpeas",
    ),
    "corn": ("Sweet Corn", "Golden Sweetcorn", "Creamed Corn", "Corn Kernels"),
    "fish": ("Tuna Chunks", "Sardines", "Pink Salmon", "Mackerel Fillets", "Tuna in Olive Oil"),
    "soda": ("Cola", "Lemon Lime", "Orange Soda", "Ginger Ale", "Cream Soda", "Tonic Water"),
    "tomato_sauce": ("Chopped Tomatoes", "Tomato Passata", "Tomato Sauce", "Pizza Sauce", "Plum Tomatoes"),
    "water": ("Still Water", "Spring Water", "Sparkling Water", "Mineral Water"),
    "oil": ("Olive Oil", "Sunflower Oil", "Extra Virgin Olive Oil", "Rapeseed Oil", "Vegetable Oil"),
    "juice": ("Orange Juice", "Apple Juice", "Multivitamin Juice", "Pineapple Juice", "Grape Juice"),
    "vinegar": ("White Wine Vinegar", "Balsamic Vinegar", "Cider Vinegar", "Malt Vinegar"),
    "jam": ("Strawberry Jam", "Raspberry Jam", "Apricot Jam", "Blackcurrant Jam", "Orange Marmalade"),
    "honey": ("Pure Honey", "Wildflower Honey", "Clear Honey", "Acacia Honey", "Set Honey"),
    "spices": (
        "Ground Paprika",
        "Ground Cumin",
        "Black Pepper",
        "Mixed Herbs",
        "Ground Turmeric",
        "Chilli Flakes",
    ),
    "nuts": ("Roasted Peanuts", "Mixed Nuts", "Cashews", "Salted Almonds", "Pistachios"),
    "milk": ("Whole Milk", "Semi Skimmed Milk", "Skimmed Milk", "Oat Drink", "Organic Milk"),
    "chips": (
        "Ready Salted Crisps",
        "Salt & Vinegar Crisps",
        "Paprika Chips",
        "Sour Cream Chips",
        "Cheese & Onion Crisps",
        "Tortilla Chips",
    ),
    "candy": ("Fruit Gums", "Chewy Mints", "Jelly Beans", "Sour Worms", "Toffees", "Wine Gums"),
    "coffee": ("Ground Coffee", "Espresso Beans", "Medium Roast", "Dark Roast", "Decaf Coffee"),
    "rice": ("Basmati Rice", "Long Grain Rice", "Jasmine Rice", "Brown Rice", "Risotto Rice"),
    "flour": ("Plain Flour", "Self Raising Flour", "Bread Flour", "Wholemeal Flour", "Spelt Flour"),
    "toothpaste": ("Fresh Mint", "Whitening", "Sensitive", "Total Care", "Herbal Fresh", "Kids Strawberry"),
}
_QUALIFIERS = ("", "", "", "Organic ", "Classic ", "Premium ", "Family ")

# Hue (degrees) families per category, plus the colour of the "contents" shown in the illustration.
_CATEGORY_HUES: dict[str, tuple[float, ...]] = {
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

# Typical nutrition per 100 g/ml: kcal, fat, saturates, carbohydrate, sugars, fibre, protein, salt.
_NUTRITION: dict[str, tuple[float, ...]] = {
    "cereal": (375, 4, 1, 70, 18, 8, 9, 0.6),
    "crackers": (440, 12, 5, 70, 3, 4, 10, 1.5),
    "pasta": (355, 1.5, 0.3, 71, 3, 3, 12, 0.01),
    "tea": (1, 0, 0, 0.3, 0, 0, 0.1, 0),
    "cake": (400, 6, 2, 80, 45, 2, 5, 0.8),
    "sugar": (400, 0, 0, 100, 100, 0, 0, 0),
    "beans": (80, 0.5, 0.1, 12, 4, 4, 5, 0.6),
    "corn": (80, 1.2, 0.2, 14, 5, 3, 3, 0.3),
    "fish": (140, 5, 1, 0, 0, 0, 24, 1.0),
    "soda": (42, 0, 0, 10.6, 10.6, 0, 0, 0),
    "tomato_sauce": (30, 0.2, 0, 5, 4, 1, 1.3, 0.3),
    "water": (0, 0, 0, 0, 0, 0, 0, 0.01),
    "oil": (824, 91.6, 13, 0, 0, 0, 0, 0),
    "juice": (45, 0.1, 0, 10, 9, 0.2, 0.6, 0),
    "vinegar": (20, 0, 0, 0.5, 0.5, 0, 0.2, 0),
    "jam": (250, 0.1, 0, 60, 58, 1, 0.4, 0.05),
    "honey": (330, 0, 0, 82, 82, 0, 0.4, 0.01),
    "spices": (300, 10, 2, 50, 10, 30, 12, 0.1),
    "nuts": (600, 50, 8, 15, 5, 8, 25, 1.0),
    "milk": (64, 3.6, 2.3, 4.8, 4.8, 0, 3.4, 0.1),
    "chips": (530, 32, 3, 52, 1, 4, 6, 1.3),
    "candy": (340, 0.2, 0.1, 78, 60, 0, 5, 0.1),
    "coffee": (2, 0, 0, 0.3, 0, 0, 0.1, 0),
    "rice": (355, 1, 0.3, 78, 0.2, 1.5, 8, 0.01),
    "flour": (340, 1.3, 0.2, 70, 1.5, 3.5, 10, 0.01),
}
_DRINKS = {"soda", "water", "oil", "juice", "vinegar", "milk"}


def _syllable(rng: np.random.Generator, coda_p: float) -> str:
    s = _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
    if rng.random() < coda_p:
        s += _CODAS[rng.integers(len(_CODAS))]
    return s


def brand_name(rng: np.random.Generator) -> str:
    """A pronounceable invented brand of 4-9 letters, e.g. 'Velmora' or 'Kestril'."""
    while True:
        n = int(rng.choice([2, 2, 3]))
        word = "".join(_syllable(rng, 0.25 if i < n - 1 else 0.6) for i in range(n))
        if 4 <= len(word) <= 9:
            return word[:1].upper() + word[1:]


def product_name(rng: np.random.Generator, category: str) -> str:
    names = PRODUCTS.get(category)
    if not names:
        raise AssetError("labels", f"no product names for category '{category}'")
    return _QUALIFIERS[rng.integers(len(_QUALIFIERS))] + names[rng.integers(len(names))]


# ---- colours ---------------------------------------------------------------------------------------


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
    hues = _CATEGORY_HUES.get(category, (0, 60, 120, 180, 240, 300))
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


# ---- EAN-13 ----------------------------------------------------------------------------------------

_L_CODES = (
    "0001101",
    "0011001",
    "0010011",
    "0111101",
    "0100011",
    "0110001",
    "0101111",
    "0111011",
    "0110111",
    "0001011",
)
_G_CODES = tuple(c.translate(str.maketrans("01", "10"))[::-1] for c in _L_CODES)
_R_CODES = tuple(c.translate(str.maketrans("01", "10")) for c in _L_CODES)
_PARITY = ("LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG", "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL")
# GS1 prefixes of national member organisations (a realistic first three digits).
_GS1_PREFIXES = (
    "00",
    "01",
    "03",
    "04",
    "06",
    "07",
    "30",
    "34",
    "37",
    "40",
    "42",
    "44",
    "45",
    "49",
    "50",
    "54",
    "57",
    "64",
    "70",
    "73",
    "76",
    "80",
    "84",
    "87",
    "90",
    "93",
    "94",
)


def ean13_check_digit(first12: str) -> int:
    """GS1 mod-10 check digit: weights 1,3,1,3,... from the left over the first 12 digits."""
    if len(first12) != 12 or not first12.isdigit():
        raise AssetError("ean13", f"need 12 digits to compute a check digit, got '{first12}'")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - total % 10) % 10


def ean13_modules(code: str) -> str:
    """The 95-module bar pattern ('1' = bar) of a valid 13-digit EAN: start guard, six left digits in
    L/G parity chosen by the first digit, centre guard, six right digits in R code, end guard."""
    if len(code) != 13 or not code.isdigit():
        raise AssetError("ean13", f"'{code}' is not 13 digits")
    if ean13_check_digit(code[:12]) != int(code[12]):
        raise AssetError(
            "ean13", f"'{code}' has a wrong check digit (expected {ean13_check_digit(code[:12])})"
        )
    parity = _PARITY[int(code[0])]
    left = "".join(
        (_L_CODES if p == "L" else _G_CODES)[int(d)] for p, d in zip(parity, code[1:7], strict=True)
    )
    right = "".join(_R_CODES[int(d)] for d in code[7:])
    return "101" + left + "01010" + right + "101"


def random_ean13(rng: np.random.Generator) -> str:
    prefix = _GS1_PREFIXES[rng.integers(len(_GS1_PREFIXES))]
    body = prefix + "".join(str(d) for d in rng.integers(0, 10, size=12 - len(prefix)))
    return body + str(ean13_check_digit(body))


def barcode_size(module_px: int) -> tuple[int, int]:
    """Pixel size of a drawn EAN-13 including quiet zones and the human-readable digits."""
    return (95 + 11 + 7) * module_px, int(round(95 * module_px * 0.62))


def draw_ean13(img: Image.Image, code: str, x: int, y: int, module_px: int) -> None:
    """Draw ``code`` on a white background at (x, y) top-left, with 11/7-module quiet zones and the
    digits below as printed on retail packs (first digit left of the start guard)."""
    bits = ean13_modules(code)
    w, h = barcode_size(module_px)
    d = ImageDraw.Draw(img)
    d.rectangle([x, y, x + w - 1, y + h - 1], fill=(255, 255, 255))
    quiet = 11 * module_px
    digit_h = max(6, int(round(h * 0.16)))
    bar_top = y + max(1, module_px * 2)
    bar_bottom = y + h - digit_h - module_px
    guard = {i for i in range(3)} | {i for i in range(45, 50)} | {i for i in range(92, 95)}
    for i, b in enumerate(bits):
        if b != "1":
            continue
        x0 = x + quiet + i * module_px
        bottom = bar_bottom + (digit_h // 2 if i in guard else 0)
        d.rectangle([x0, bar_top, x0 + module_px - 1, bottom], fill=(0, 0, 0))
    f = font("mono", max(6, int(digit_h * 1.1)))
    ty = bar_bottom + digit_h // 2 + module_px
    d.text((x + quiet - 2 * module_px, ty), code[0], font=f, fill=(0, 0, 0), anchor="rm")
    d.text((x + quiet + 24 * module_px, ty), code[1:7], font=f, fill=(0, 0, 0), anchor="mm")
    d.text((x + quiet + 71 * module_px, ty), code[7:], font=f, fill=(0, 0, 0), anchor="mm")


# ---- the design of one product -----------------------------------------------------------------------


@dataclass(frozen=True)
class LabelDesign:
    """Everything random about one product's artwork, decided once from the seed."""

    brand: str
    product: str
    category: str
    palette: Palette
    brand_face: str
    logo: str  # circle | star | diamond | ribbon | leaf | sun
    motif: str  # band | diagonal | wave | burst | stripes
    ean: str
    net_quantity: str
    nutrition: tuple[tuple[str, str], ...] | None  # None: not a food (ingredients text instead)
    per: str = "100 g"
    dots_seed: int = 0
    claims: tuple[str, ...] = field(default_factory=tuple)


LOGOS = ("circle", "star", "diamond", "ribbon", "leaf", "sun")
MOTIFS = ("band", "diagonal", "wave", "burst", "stripes")
_CLAIMS = (
    "NEW",
    "High in Fibre",
    "No Added Sugar",
    "Vegan",
    "Gluten Free",
    "Source of Protein",
    "Family Size",
    "Value Pack",
    "Since 1921",
    "Product of Italy",
    "Recyclable",
)


def sample_nutrition(rng: np.random.Generator, category: str) -> tuple[tuple[str, str], ...] | None:
    base = _NUTRITION.get(category)
    if base is None:
        return None
    v = [x * rng.uniform(0.85, 1.15) for x in base]
    kcal = v[0]
    return (
        ("Energy", f"{kcal * 4.184:.0f} kJ / {kcal:.0f} kcal"),
        ("Fat", f"{v[1]:.1f} g"),
        ("  of which saturates", f"{min(v[2], v[1]):.1f} g"),
        ("Carbohydrate", f"{v[3]:.1f} g"),
        ("  of which sugars", f"{min(v[4], v[3]):.1f} g"),
        ("Fibre", f"{v[5]:.1f} g"),
        ("Protein", f"{v[6]:.1f} g"),
        ("Salt", f"{v[7]:.2f} g"),
    )


def sample_design(rng: np.random.Generator, category: str, net_quantity: str) -> LabelDesign:
    palette = sample_palette(rng, category)
    claims = tuple(str(c) for c in rng.choice(_CLAIMS, size=int(rng.integers(0, 3)), replace=False))
    return LabelDesign(
        brand=brand_name(rng),
        product=product_name(rng, category),
        category=category,
        palette=palette,
        brand_face=BRAND_FACES[rng.integers(len(BRAND_FACES))],
        logo=LOGOS[rng.integers(len(LOGOS))],
        motif=MOTIFS[rng.integers(len(MOTIFS))],
        ean=random_ean13(rng),
        net_quantity=net_quantity,
        nutrition=sample_nutrition(rng, category),
        per="100 ml" if category in _DRINKS else "100 g",
        dots_seed=int(rng.integers(0, 2**31 - 1)),
        claims=claims,
    )


# ---- drawing primitives -------------------------------------------------------------------------------


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
                fill=_mix(p.background, p.highlight, 0.35),
            )
        d.rectangle([x0, int(h * 0.86), x0 + w, h], fill=p.accent)
    else:  # stripes
        n = 9
        for k in range(0, n, 2):
            d.rectangle(
                [x0 + int(w * k / n), 0, x0 + int(w * (k + 1) / n), int(h * 0.2)],
                fill=_mix(p.background, p.highlight, 0.5),
            )
        d.rectangle([x0, int(h * 0.2), x0 + w, int(h * 0.23)], fill=p.accent)


def _mix(a: RGB8, b: RGB8, t: float) -> RGB8:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))


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
            d.ellipse([bx - br, by - br, bx + br, by + br], outline=_mix(content, (255, 255, 255), 0.6))
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
        fill=_mix(content, (255, 255, 255), 0.3),
    )
    n = int(30 + 60 * rng.random())
    pr = max(1.0, min(rx, ry) * 0.09)
    for _ in range(n):
        a, rad = rng.uniform(0, 2 * np.pi), np.sqrt(rng.random()) * 0.72
        px, py = cx + rad * rx * np.cos(a), cy + rad * ry * np.sin(a)
        shade = _mix(content, (60, 30, 10), rng.uniform(0.0, 0.35))
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
    grey = _mix(ink, (255, 255, 255), 0.45)
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


def _ingredients(design: LabelDesign) -> list[tuple[str, str]]:
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


# ---- panels -------------------------------------------------------------------------------------------


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
        draw_lines(d, inner, _ingredients(design), (25, 25, 25), "Ingredients")


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
    ground = _mix(p.background, (255, 255, 255), 0.25)
    img = Image.new("RGB", (w, h), ground)
    d = ImageDraw.Draw(img)
    ink = contrast_ink(ground)
    m = max(2, int(min(w, h) * 0.06))
    n_lines = (len(design.nutrition) if design.nutrition is not None else len(_ingredients(design))) + 2
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


def swatch_image(color: RGB8, size: int) -> Image.Image:
    return Image.new("RGB", (size, size), color)


# ---- atlas --------------------------------------------------------------------------------------------


@dataclass
class _Slot:
    name: str
    w: int
    h: int
    finish: Finish
    x: int = 0
    y: int = 0


class Atlas:
    """One texture holding every printed panel and flat-colour swatch of an asset.

    Use in two phases: ``reserve`` / ``reserve_swatch`` everything (physical sizes in metres), ``pack()``,
    then ``region(name)`` for UVs and ``paint(name, image)`` for pixels. The texel density is the same
    in both directions of every panel, so textures map without stretching; it is lowered uniformly if
    the atlas would exceed MAX_TEXTURE_SIDE. A matching metallic-roughness map (glTF: G = roughness,
    B = metallic) is filled from each slot's finish.
    """

    SWATCH = 16

    def __init__(self, px_per_m: float = TARGET_PX_PER_M, max_side: int = MAX_TEXTURE_SIDE):
        self.px_per_m = float(px_per_m)
        self.max_side = int(max_side)
        self._panels: list[tuple[str, float, float, Finish]] = []
        self._swatches: list[tuple[str, RGB8, Finish]] = []
        self._slots: dict[str, _Slot] = {}
        self.size: tuple[int, int] | None = None
        self._base: Image.Image | None = None
        self._mr: Image.Image | None = None

    def reserve(self, name: str, width_m: float, height_m: float, finish: Finish) -> None:
        self._panels.append((name, float(width_m), float(height_m), finish))

    def reserve_swatch(self, name: str, color: RGB8, finish: Finish) -> None:
        self._swatches.append((name, tuple(int(c) for c in color), finish))

    def pack(self) -> None:
        ppm = self.px_per_m
        for _ in range(40):
            slots = [
                _Slot(n, max(8, round(w * ppm)), max(8, round(h * ppm)), f) for n, w, h, f in self._panels
            ]
            slots += [_Slot(n, self.SWATCH, self.SWATCH, f) for n, _, f in self._swatches]
            size = self._shelf_pack(slots)
            if max(size) <= self.max_side:
                break
            ppm *= 0.97 * self.max_side / max(size)
        else:  # pragma: no cover - the loop always converges for sane sizes
            raise AssetError("atlas", f"cannot fit panels into {self.max_side} px")
        self.px_per_m = ppm
        self.size = size
        self._slots = {s.name: s for s in slots}
        self._base = Image.new("RGB", size, (128, 128, 128))
        self._mr = Image.new("RGB", size, (0, 128, 0))
        for n, color, _ in self._swatches:
            self.paint(n, swatch_image(color, self.SWATCH))

    def _shelf_pack(self, slots: list[_Slot]) -> tuple[int, int]:
        pad = ATLAS_PAD
        area = sum((s.w + 2 * pad) * (s.h + 2 * pad) for s in slots)
        row_w = max(max(s.w + 2 * pad for s in slots), int(np.ceil(np.sqrt(area * 1.25))))
        x = y = row_h = 0
        width = 0
        for s in slots:
            if x + s.w + 2 * pad > row_w and x > 0:
                y += row_h
                x = row_h = 0
            s.x, s.y = x + pad, y + pad
            x += s.w + 2 * pad
            row_h = max(row_h, s.h + 2 * pad)
            width = max(width, x)
        height = y + row_h
        return (int(np.ceil(width / 4) * 4), int(np.ceil(height / 4) * 4))

    def pixels(self, name: str) -> tuple[int, int]:
        s = self._slots[name]
        return s.w, s.h

    def region(self, name: str) -> Region:
        if self.size is None:
            raise AssetError("atlas", "pack() before asking for regions")
        s = self._slots[name]
        return Region(s.x, s.y, s.w, s.h, self.size[0], self.size[1])

    def paint(self, name: str, image: Image.Image) -> None:
        """Place a panel image (exactly the slot's pixel size) with its edges bled into the padding."""
        s = self._slots[name]
        if image.size != (s.w, s.h):
            raise AssetError("atlas", f"panel '{name}' is {image.size}, slot is {(s.w, s.h)}")
        arr = np.pad(
            np.asarray(image.convert("RGB")), ((ATLAS_PAD,) * 2, (ATLAS_PAD,) * 2, (0, 0)), mode="edge"
        )
        self._base.paste(Image.fromarray(arr), (s.x - ATLAS_PAD, s.y - ATLAS_PAD))
        mr = (0, int(round(s.finish.roughness * 255)), int(round(s.finish.metallic * 255)))
        ImageDraw.Draw(self._mr).rectangle(
            [s.x - ATLAS_PAD, s.y - ATLAS_PAD, s.x + s.w + ATLAS_PAD - 1, s.y + s.h + ATLAS_PAD - 1], fill=mr
        )

    def images(self) -> tuple[Image.Image, Image.Image]:
        return self._base, self._mr

    def module_px(self) -> int:
        """Barcode module width in pixels: at least the 80 % magnification a scanner accepts (0.264 mm)."""
        return max(1, int(np.ceil(0.264e-3 * self.px_per_m)))
