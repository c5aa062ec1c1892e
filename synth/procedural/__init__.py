"""Procedural asset library: a catalog for users who have no meshes.

``generate_asset(kind, seed)`` returns one textured retail package or one untextured metal part as a
single trimesh in metres, bounding-box centred, +Z up, with real-world dimensions for its category and
everything random drawn from ``seed`` (same kind and seed -> byte-identical GLB). Retail packs carry a
printed label atlas (brand, logo, EAN-13, nutrition panel) mapped without stretching; their front
faces -Y. Industrial parts follow ISO-ish tables (M3..M12 bolts, nuts, washers, screws) and carry a
metal finish.

Material convention: textured assets use a glTF metallic-roughness texture (G = roughness,
B = metallic) with ``metallicFactor = roughnessFactor = 1``, because one pack mixes paper, plastic and
metal (a can's label and its lid); ``material`` (MaterialHints) gives the dominant surface for
renderers that ignore textures. Untextured parts use ``baseColorFactor`` and scalar factors.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import trimesh

from synth.catalog import MaterialHints, SkuRecord, Source
from synth.errors import AssetError

if TYPE_CHECKING:
    from synth.procedural.labels.design import LabelDesign


@dataclass
class ProceduralAsset:
    """One generated object, ready to be written into the catalog."""

    mesh: trimesh.Trimesh  # metres, bounding-box centre at the origin, +Z up
    name: str  # display name, e.g. "Velmora Crunchy Oats cereal box"
    category: str  # COCO class label
    supercategory: str  # "retail" | "industrial"
    kind: str  # generator name, e.g. "box"
    material: MaterialHints
    symmetry: str  # "none" | "mirror" | "cylindrical" | "discrete"
    symmetry_order: int | None
    seed: int
    label: LabelDesign | None = None  # the printed design (retail only): brand, EAN-13, palette, ...

    @property
    def size_m(self) -> tuple[float, float, float]:
        return tuple(float(x) for x in self.mesh.extents)

    def record(self, sku_id: str) -> SkuRecord:
        """The catalog record for this asset (the caller writes ``mesh.export(file_type="glb")``)."""
        return SkuRecord(
            id=sku_id,
            name=self.name,
            category=self.category,
            supercategory=self.supercategory,
            size_m=self.size_m,
            material=self.material,
            symmetry=self.symmetry,
            symmetry_order=self.symmetry_order,
            source=Source(kind="procedural", generator=self.kind, seed=self.seed),
        )


Generator = Callable[[np.random.Generator, int], ProceduralAsset]

RETAIL_KINDS: tuple[str, ...] = ("box", "can", "bottle", "jar", "carton", "pouch", "tube")
INDUSTRIAL_KINDS: tuple[str, ...] = (
    "hex_bolt",
    "hex_nut",
    "washer",
    "wood_screw",
    "drywall_screw",
    "socket_cap_screw",
    "spur_gear",
    "l_bracket",
    "pipe_fitting",
)
ALL_KINDS: tuple[str, ...] = RETAIL_KINDS + INDUSTRIAL_KINDS


def _generators() -> dict[str, Generator]:
    from synth.procedural import fasteners, packaging

    return {**packaging.GENERATORS, **fasteners.GENERATORS}


def kind_rng(kind: str, seed: int) -> np.random.Generator:
    """The random stream for (kind, seed); salted by the kind so 'can' 7 and 'box' 7 are unrelated."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, zlib.crc32(kind.encode())])
    )


def generate_asset(kind: str, seed: int) -> ProceduralAsset:
    """Generate one asset. Deterministic: the same (kind, seed) gives the same mesh and texture bytes."""
    gens = _generators()
    if kind not in gens:
        raise AssetError("procedural", f"unknown kind '{kind}' (known: {', '.join(ALL_KINDS)})")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise AssetError("procedural", f"seed must be a non-negative integer, got {seed!r}")
    return gens[kind](kind_rng(kind, int(seed)), int(seed))


def default_library(n_retail: int, n_industrial: int, seed: int) -> list[tuple[str, int]]:
    """(kind, seed) pairs cycling over all retail then all industrial kinds. Item seeds come from
    ``seed`` and the item's position, so growing a library keeps its existing items unchanged."""
    if n_retail < 0 or n_industrial < 0:
        raise AssetError(
            "procedural", f"library sizes must be >= 0, got {n_retail} retail, {n_industrial} industrial"
        )
    out: list[tuple[str, int]] = []
    for group, kinds, n in ((0, RETAIL_KINDS, n_retail), (1, INDUSTRIAL_KINDS, n_industrial)):
        for i in range(n):
            item_seed = int(
                np.random.SeedSequence([int(seed), group, i]).generate_state(1, dtype=np.uint32)[0]
            )
            out.append((kinds[i % len(kinds)], item_seed))
    return out
