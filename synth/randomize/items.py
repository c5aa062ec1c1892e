"""Things a layout places: targets drawn from the SKU pool and distractors (other catalog entries or
primitives with random textures), described by geometry and size before they have a pose."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from synth.catalog import SkuRecord
from synth.randomize.pool import SkuPool
from synth.randomize.settings import DistractorsConfig
from synth.randomize.shapes import Shape, geometry_shape
from synth.scene import Geometry


@dataclass(frozen=True, eq=False)
class Item:
    role: Literal["target", "distractor"]
    geometry: Geometry
    size: tuple[float, float, float]  # local axis-aligned extents, centred at the local origin
    record: SkuRecord | None = None  # catalog entry, None for primitives
    category: str | None = None  # COCO label (targets only)

    @property
    def sku_id(self) -> str | None:
        return self.record.id if self.record else None

    @cached_property
    def shape(self) -> Shape:
        """Convex hull and resting poses (loads the mesh once per process)."""
        return geometry_shape(self.geometry)


class ItemFactory:
    """Draws items from one image's generator."""

    def __init__(self, pool: SkuPool, distractors: DistractorsConfig, rng: np.random.Generator):
        self.pool = pool
        self.cfg = distractors
        self.rng = rng

    def target(self, max_size=None) -> Item | None:
        record = self.pool.sample_target(self.rng, max_size)
        if record is None:
            return None
        return Item(
            "target",
            Geometry(mesh=self.pool.mesh_path(record)),
            tuple(record.size_m),
            record,
            self.pool.category(record),
        )

    def distractor(self, max_size=None) -> Item | None:
        """A non-target catalog entry (with probability ``catalog_probability``) or a primitive."""
        rng = self.rng
        lo, hi = self.cfg.size
        if self.pool.others and rng.random() < self.cfg.catalog_probability:
            limit = np.minimum(np.full(3, hi), max_size) if max_size is not None else np.full(3, hi)
            record = self.pool.sample_other(rng, tuple(limit.tolist()))
            if record is not None:
                return Item(
                    "distractor", Geometry(mesh=self.pool.mesh_path(record)), tuple(record.size_m), record
                )
        kind = self.cfg.primitives[int(rng.integers(len(self.cfg.primitives)))]
        cap = np.full(3, np.inf) if max_size is None else np.asarray(max_size, dtype=np.float64)
        if np.any(cap < 1e-3):
            return None
        if kind == "box":
            ext = np.minimum(rng.uniform(lo, hi, 3), cap)
            return Item("distractor", Geometry(box=tuple(float(e) for e in ext)), tuple(ext.tolist()))
        diameter = min(rng.uniform(lo, hi), cap[0], cap[1])
        height = min(rng.uniform(lo, hi), cap[2])
        size = (float(diameter), float(diameter), float(height))
        return Item("distractor", Geometry(cylinder=(float(diameter / 2), float(height))), size)
