"""Surface finish presets: how a metal part or a packaging surface reflects light.

A finish is three numbers a renderer understands everywhere (base colour, metallic, roughness), so the
same preset drives the GLB's PBR material, the catalog's ``MaterialHints`` and the per-region
metallic/roughness map of a printed label. Base colours are *linear* RGB (what glTF ``baseColorFactor``
and Blender's Principled BSDF expect); use :func:`linear_to_srgb8` before painting one into a texture.
Metal values follow measured F0 reflectances (steel ~0.56, zinc bluish, brass yellow).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from trimesh.visual.material import PBRMaterial

from synth.catalog import MaterialHints
from synth.errors import AssetError
from synth.mesh import linear_to_srgb, srgb_to_linear


@dataclass(frozen=True)
class Finish:
    """One surface finish. ``base_color`` is linear RGB in [0, 1]."""

    name: str
    base_color: tuple[float, float, float]
    metallic: float
    roughness: float

    def varied(
        self, rng: np.random.Generator, roughness_spread: float = 0.05, color_spread: float = 0.02
    ) -> Finish:
        """A slightly different batch of the same finish, so two zinc parts are not pixel-identical."""
        tint = 1.0 + rng.uniform(-color_spread, color_spread)
        color = tuple(float(np.clip(c * tint, 0.0, 1.0)) for c in self.base_color)
        rough = float(np.clip(self.roughness + rng.uniform(-roughness_spread, roughness_spread), 0.02, 1.0))
        return replace(self, base_color=color, roughness=round(rough, 4))

    def hints(self, textured: bool = False) -> MaterialHints:
        r, g, b = self.base_color
        return MaterialHints(
            base_color=(r, g, b, 1.0),
            metallic=self.metallic,
            roughness=self.roughness,
            textured=textured,
            finish=self.name,
        )

    def pbr_material(self) -> PBRMaterial:
        """An untextured glTF metallic-roughness material for this finish."""
        r, g, b = self.base_color
        return PBRMaterial(
            name=self.name,
            baseColorFactor=[r, g, b, 1.0],
            metallicFactor=self.metallic,
            roughnessFactor=self.roughness,
        )

    def srgb8(self) -> tuple[int, int, int]:
        return linear_to_srgb8(self.base_color)


# Metals for industrial parts.
METALS: dict[str, Finish] = {
    f.name: f
    for f in (
        Finish("steel", (0.56, 0.57, 0.58), 1.0, 0.38),
        Finish("zinc", (0.62, 0.68, 0.76), 1.0, 0.30),  # bright zinc plating: bluish silver
        Finish("brass", (0.91, 0.76, 0.42), 1.0, 0.25),
        Finish("black_oxide", (0.045, 0.045, 0.05), 0.55, 0.45),  # conversion coating: dark satin, weak sheen
        Finish("stainless", (0.66, 0.65, 0.63), 1.0, 0.20),
        Finish("copper", (0.95, 0.64, 0.54), 1.0, 0.30),  # plumbing fittings
    )
}

# Packaging surfaces: the colour usually comes from the printed texture; base_color is what an
# unprinted area (a swatch) of that surface looks like.
SURFACES: dict[str, Finish] = {
    f.name: f
    for f in (
        Finish("glossy_print", (0.8, 0.8, 0.8), 0.0, 0.32),  # varnished printed board or film
        Finish("matte_board", (0.62, 0.55, 0.45), 0.0, 0.78),  # unprinted cardboard
        Finish("paper_label", (0.8, 0.8, 0.8), 0.0, 0.60),
        Finish("printed_aluminium", (0.91, 0.92, 0.92), 0.75, 0.30),  # ink printed directly on a can body
        Finish("tinplate", (0.70, 0.70, 0.68), 1.0, 0.28),  # food can ends and rims
        Finish("aluminium", (0.91, 0.92, 0.92), 1.0, 0.25),  # drink can ends
        Finish("lacquered_lid", (0.75, 0.55, 0.20), 1.0, 0.30),  # jar lid; colour replaced by the design
        Finish("pet", (0.6, 0.7, 0.75), 0.0, 0.12),  # bottle plastic (rendered opaque, tinted)
        Finish("glass", (0.55, 0.6, 0.55), 0.0, 0.06),
        Finish("pp_cap", (0.8, 0.8, 0.8), 0.0, 0.45),  # polypropylene caps and closures
        Finish("ldpe_tube", (0.9, 0.9, 0.9), 0.0, 0.35),  # squeeze tube
        Finish("metallised_film", (0.8, 0.8, 0.8), 0.25, 0.28),  # snack bags
        Finish("kraft_paper", (0.55, 0.42, 0.28), 0.0, 0.85),  # flour and coffee bags
        Finish("coated_board", (0.9, 0.9, 0.88), 0.0, 0.40),  # milk cartons
    )
}

FINISHES: dict[str, Finish] = {**METALS, **SURFACES}


def get_finish(name: str) -> Finish:
    try:
        return FINISHES[name]
    except KeyError:
        raise AssetError(
            "finish", f"unknown finish '{name}' (known: {', '.join(sorted(FINISHES))})"
        ) from None


def linear_to_srgb8(rgb) -> tuple[int, int, int]:
    """Linear [0, 1] RGB to 8-bit sRGB, on synth.mesh's transfer curve so textures and GLB factors agree."""
    return tuple(int(v) for v in np.round(linear_to_srgb(rgb) * 255).astype(int))


def srgb8_to_linear(rgb) -> tuple[float, float, float]:
    """8-bit sRGB to linear [0, 1] RGB (the inverse of :func:`linear_to_srgb8`)."""
    return tuple(float(v) for v in srgb_to_linear(np.asarray(rgb, dtype=np.float64) / 255.0))
