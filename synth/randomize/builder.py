"""``build_scene``: one randomized, settled, lit and framed Scene per (config, seed, index).

All randomness of image ``index`` comes from ``np.random.default_rng([seed, index])``, so an image depends
on nothing but (config, catalog, seed, index): not on other images, worker count or order. That generator
is split into independent streams per concern (layout, camera, lights, looks, background, letterbox), so
changing, say, the lighting section of a config re-lights the same scenes instead of reshuffling every
object.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synth.catalog import Catalog
from synth.config import config_hash
from synth.errors import ConfigError
from synth.randomize.camera import sample_camera
from synth.randomize.items import ItemFactory
from synth.randomize.letterbox import sample_letterbox
from synth.randomize.lighting import sample_lights
from synth.randomize.materials import SupportLooks, object_material, randomized_image, sample_environment
from synth.randomize.piles import build_bin, build_table
from synth.randomize.placed import LayoutResult, Placed
from synth.randomize.pool import sku_pool
from synth.randomize.settings import RenderConfig
from synth.randomize.shelf import build_shelf
from synth.scene import Scene, SceneObject

MAX_INSTANCES = 65535  # instance ids are stored in a uint16 image
_STREAMS = (
    "layout",
    "camera",
    "lights",
    "looks",
    "background",
    "letterbox",
)  # append only: spawned by position


def build_scene(
    cfg: RenderConfig,
    catalog: Catalog,
    seed: int,
    index: int,
    *,
    factory: Callable[..., ItemFactory] = ItemFactory,
    attempt: int = 0,
) -> Scene:
    """The scene of image ``index`` of the dataset ``(cfg, seed)``.

    ``factory(pool, distractors, rng)`` makes the layout's items (a subclass may force some SKUs into the
    scene) and ``attempt`` > 0 draws another scene for the same image; the defaults are plain datasets'."""
    for name, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(name, f"must be a non-negative integer, got {value!r}")
    key = [int(seed), int(index)] + ([int(attempt)] if attempt else [])
    root = np.random.default_rng(key)
    streams = dict(zip(_STREAMS, root.spawn(len(_STREAMS)), strict=True))

    pool = sku_pool(cfg, catalog)
    layout = _build_layout(cfg, factory(pool, cfg.distractors, streams["layout"]), streams["layout"])

    ordered = layout.placed("target") + layout.placed("distractor") + layout.placed("support")
    if len(ordered) > MAX_INSTANCES:
        raise ConfigError(
            cfg.source,
            f"key 'layout': {len(ordered)} objects exceed the {MAX_INSTANCES} instance ids an image can hold",
        )
    looks = streams["looks"]
    randomized = randomized_image(cfg.materials, looks)
    supports = SupportLooks(cfg.materials, randomized, looks)
    objects = []
    for instance_id, placed in enumerate(ordered, start=1):
        material = (
            supports.material(placed)
            if placed.role == "support"
            else object_material(placed, cfg.materials, randomized, looks)
        )
        objects.append(_scene_object(instance_id, placed, material))

    target_points = np.array([p.pose[:3, 3] for p in layout.placed("target")]).reshape(-1, 3)
    boxes = [_aabb(p) for p in layout.placed("support")]
    camera = sample_camera(cfg.camera, cfg.image, layout, target_points, boxes, streams["camera"])
    lights, ambient_color, ambient = sample_lights(cfg.lighting, layout, streams["lights"])
    environment = sample_environment(cfg.background, ambient_color, ambient, streams["background"])
    return Scene(
        seed=int(seed),
        index=int(index),
        config_hash=config_hash(cfg),
        camera=camera,
        lights=lights,
        objects=objects,
        environment=environment,
        letterbox=sample_letterbox(cfg.letterbox, cfg.image, streams["letterbox"]),
    )


def target_categories(cfg: RenderConfig, catalog: Catalog) -> list[str]:
    """Sorted COCO category names that scenes of this config can contain (ids are 1 + position)."""
    return sku_pool(cfg, catalog).categories()


# ---- helpers -------------------------------------------------------------------------------------------
def _build_layout(cfg: RenderConfig, factory: ItemFactory, rng: np.random.Generator) -> LayoutResult:
    layout = cfg.layout
    if layout.kind == "shelf":
        return build_shelf(layout, cfg.distractors, factory, rng)
    if layout.kind == "table":
        return build_table(layout, cfg.objects, cfg.distractors, factory, rng)
    return build_bin(layout, cfg.objects, cfg.distractors, factory, rng)


def _scene_object(instance_id: int, placed: Placed, material) -> SceneObject:
    return SceneObject(
        instance_id=instance_id,
        role=placed.role,
        sku_id=placed.record.id if placed.record else None,
        category=placed.category if placed.role == "target" else None,
        geometry=placed.geometry,
        pose=_clean(placed.pose),
        material=material,
    )


def _clean(pose: np.ndarray) -> list[list[float]]:
    """Round away float noise (1e-17 for a zero) so scene JSON stays short and diff-able."""
    out = np.round(np.asarray(pose, dtype=np.float64), 12) + 0.0  # + 0.0 turns -0.0 into 0.0
    return out.tolist()


def _aabb(placed: Placed) -> tuple[np.ndarray, np.ndarray]:
    half = np.asarray(placed.geometry.box if placed.geometry.box is not None else (0.0, 0.0, 0.0)) / 2
    extent = np.abs(placed.pose[:3, :3]) @ half
    return placed.pose[:3, 3] - extent, placed.pose[:3, 3] + extent
