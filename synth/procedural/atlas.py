"""The texture atlas of a procedural asset: every printed panel and flat-colour swatch in one texture
(and a matching metallic-roughness map), at one texel density so panels map without stretching."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from synth.errors import AssetError
from synth.mesh.atlas import paste_with_gutter, shelf_pack, square_row_width
from synth.procedural.finishes import Finish
from synth.procedural.geometry import Region
from synth.procedural.labels.palette import RGB8

MAX_TEXTURE_SIDE = 2048  # pixels; keeps a GLB around 1-3 MB and a PNG encode well under a second
TARGET_PX_PER_M = 4000.0  # 4 px/mm: 2 mm print is still legible at close range
# The metallic-roughness map is stored at 1/MR_REDUCTION of the colour atlas's resolution (same UVs). It is
# constant over each panel and swatch, so full resolution carried no detail, yet cost a render worker as
# much to decode and upload as the colour atlas: half of its start-up on the default catalog. Panels are
# >= 8 texels with 4-texel gutters, so every panel keeps texels of its own value.
MR_REDUCTION = 4


def _swatch_image(color: RGB8, size: int) -> Image.Image:
    return Image.new("RGB", (size, size), color)


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
    B = metallic) is filled from each slot's finish. Slots are placed by the shared shelf packer
    (``synth.mesh.atlas``), in reservation order, in rows a quarter wider than square.
    """

    SWATCH = 16

    def __init__(self, px_per_m: float = TARGET_PX_PER_M, max_side: int = MAX_TEXTURE_SIDE):
        self.px_per_m = float(px_per_m)
        self.max_side = int(max_side)
        self._panels: list[tuple[str, float, float, Finish]] = []
        self._swatches: list[tuple[str, RGB8, Finish]] = []
        self._slots: dict[str, _Slot] = {}
        self.size: tuple[int, int] | None = None
        self._base: np.ndarray | None = None  # (h, w, 3) uint8 sRGB
        self._mr: np.ndarray | None = None  # (h, w, 3) uint8: G roughness, B metallic

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
            size = self._place(slots)
            if max(size) <= self.max_side:
                break
            ppm *= 0.97 * self.max_side / max(size)
        else:  # pragma: no cover - the loop always converges for sane sizes
            raise AssetError("atlas", f"cannot fit panels into {self.max_side} px")
        self.px_per_m = ppm
        self.size = size
        self._slots = {s.name: s for s in slots}
        self._base = np.full((size[1], size[0], 3), 128, np.uint8)
        self._mr = np.zeros((size[1], size[0], 3), np.uint8)
        self._mr[..., 1] = 128
        for n, color, _ in self._swatches:
            self.paint(n, _swatch_image(color, self.SWATCH))

    @staticmethod
    def _place(slots: list[_Slot]) -> tuple[int, int]:
        sizes = [(s.w, s.h) for s in slots]
        corners, size = shelf_pack(sizes, square_row_width(sizes, slack=1.25))
        for s, (x, y) in zip(slots, corners, strict=True):
            s.x, s.y = x, y
        return size

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
        paste_with_gutter(self._base, np.asarray(image.convert("RGB")), (s.x, s.y))
        mr = (0, int(round(s.finish.roughness * 255)), int(round(s.finish.metallic * 255)))
        paste_with_gutter(self._mr, np.full((s.h, s.w, 3), mr, np.uint8), (s.x, s.y))

    def images(self) -> tuple[Image.Image, Image.Image]:
        """The colour atlas and the metallic-roughness map (box-filtered to 1/MR_REDUCTION of its size)."""
        return Image.fromarray(self._base), Image.fromarray(self._mr).reduce(MR_REDUCTION)

    def module_px(self) -> int:
        """Barcode module width in pixels: at least the 80 % magnification a scanner accepts (0.264 mm)."""
        return max(1, int(np.ceil(0.264e-3 * self.px_per_m)))
