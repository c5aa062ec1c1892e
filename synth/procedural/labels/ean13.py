"""EAN-13 barcodes: valid codes with realistic GS1 prefixes, drawn as printed on retail packs."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from synth.errors import AssetError
from synth.procedural.labels.fonts import font

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
