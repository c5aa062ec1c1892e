"""Datasets in which chosen SKUs appear in a guaranteed share of the images.

A ``ShareConfig`` is a render config plus a ``required`` section (catalog ids and a share). Which images
must show them is a function of the index alone: image ``i`` is required when ``ceil((i + 1) s) >
ceil(i s)``, so every prefix of ``n`` images holds at least ``n s`` of them (spread evenly, whatever the
seed, shard size or worker count). In such an image the layout draws the required SKUs for a part of its
target slots, and the scene is drawn again (``attempt`` 1, 2, ...) until every required SKU is framed.

Plain render configs never reach this module: their scenes, and so their pixels, are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from synth.catalog import Catalog
from synth.randomize.builder import build_scene
from synth.randomize.camera import project
from synth.randomize.items import Item, ItemFactory
from synth.randomize.settings import RenderConfig
from synth.scene import Geometry, Scene

MAX_ATTEMPTS = 24  # scenes drawn for a required image before the best one is kept
MIN_FRAMED = 0.6  # fraction of an object's projected box that must lie inside the image ...
AREA_MARGIN = 6.0  # ... and its part inside at least this many times annotation.min_area_px (occlusion)


class RequiredItems(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(default_factory=list)  # catalog ids that must appear
    share: float = Field(0.8, ge=0.0, le=1.0)  # fraction of images each must appear in
    rate: float = Field(0.35, gt=0.0, le=1.0)  # in such an image: chance a target slot takes one of them


class ShareConfig(RenderConfig):
    required: RequiredItems = Field(default_factory=RequiredItems)


def is_required(index: int, share: float) -> bool:
    """Whether image ``index`` must show the required SKUs (an even spread of ``share`` of the images)."""
    return math.ceil((index + 1) * share - 1e-9) > math.ceil(index * share - 1e-9)


class _ForcingFactory(ItemFactory):
    """Gives a target slot to the required SKUs (in turn) with probability ``rate``."""

    def __init__(self, pool, distractors, rng, required, rate):
        super().__init__(pool, distractors, rng)
        self.required = [r for r in pool.targets if r.id in set(required)]
        self.rate, self.turn = rate, 0

    def target(self, max_size=None) -> Item | None:
        if self.required and self.rng.random() < self.rate:
            record = self.required[self.turn % len(self.required)]
            self.turn += 1
            if max_size is None or all(s <= m for s, m in zip(record.size_m, max_size, strict=True)):
                geometry = Geometry(mesh=self.pool.mesh_path(record))
                return Item("target", geometry, tuple(record.size_m), record, self.pool.category(record))
        return super().target(max_size)


def framed_share(scene: Scene, sku_id: str, size_m, min_px: float = 0.0) -> float:
    """The largest fraction of the projected 3-D box of any instance of ``sku_id`` inside the image,
    counting only instances whose part inside covers at least ``min_px`` pixels."""
    cam = scene.camera
    half = np.asarray(size_m, dtype=np.float64) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half
    best = 0.0
    for obj in scene.objects:
        if obj.sku_id != sku_id or obj.role != "target":
            continue
        pose = np.asarray(obj.pose)
        uv, ok = project(cam, corners @ pose[:3, :3].T + pose[:3, 3])
        if not ok.all():
            continue
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        area = float(np.prod(hi - lo))
        inside = np.clip(hi, 0, [cam.width, cam.height]) - np.clip(lo, 0, [cam.width, cam.height])
        seen = float(np.prod(np.maximum(inside, 0)))
        if area > 0 and seen >= min_px:
            best = max(best, seen / area)
    return best


def build_share_scene(cfg: ShareConfig, catalog: Catalog, seed: int, index: int) -> Scene:
    """The scene of image ``index``: a plain one, or one that frames every required SKU (the best of
    ``MAX_ATTEMPTS`` draws when none frames them all)."""
    req = cfg.required
    if not req.ids or not is_required(index, req.share):
        return build_scene(cfg, catalog, seed, index)
    sizes = {sku_id: catalog.get(sku_id).size_m for sku_id in req.ids}

    def factory(pool, distractors, rng):
        return _ForcingFactory(pool, distractors, rng, req.ids, req.rate)

    min_px = AREA_MARGIN * cfg.annotation.min_area_px
    best, best_score = None, -1.0
    for attempt in range(MAX_ATTEMPTS):
        scene = build_scene(cfg, catalog, seed, index, factory=factory, attempt=attempt)
        score = min(framed_share(scene, s, sizes[s], min_px) for s in req.ids)
        if score >= MIN_FRAMED:
            return scene
        if score > best_score:
            best, best_score = scene, score
    return best
