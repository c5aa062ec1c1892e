"""What a run is: the config, n, seed, backend and categories that decide every byte of a dataset.

Image ``i`` depends only on (config, seed, i): its scene comes from ``build_scene(cfg, catalog, seed, i)``,
and the backend and annotation are deterministic, so worker count and shard assignment never matter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from synth.annotate import category_ids
from synth.catalog import Catalog
from synth.config import config_hash
from synth.errors import ConfigError
from synth.scene import Scene

FORMAT_VERSION = 1

SceneBuilder = Callable[[Any, Catalog, int, int], Scene]
CategoryLister = Callable[[Any, Catalog], Sequence[str]]


@dataclass(frozen=True)
class RunPlan:
    """Everything that decides the bytes of a dataset, plus how to make scenes. Picklable (sent to workers)."""

    cfg: Any  # a RenderConfig-like pydantic model: .image .output .annotation .catalog (+ randomization)
    n: int
    seed: int
    backend: str
    backend_opts: dict
    categories: tuple[str, ...]
    scene_builder: SceneBuilder | None = None  # None: synth.randomize.build_scene

    @property
    def config_hash(self) -> str:
        return config_hash(self.cfg)

    @property
    def shard_size(self) -> int:
        return self.cfg.output.shard_size

    @property
    def num_shards(self) -> int:
        return math.ceil(self.n / self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.n, (shard + 1) * self.shard_size))

    def images_in(self, shards: Sequence[int]) -> int:
        return sum(len(self.shard_indices(s)) for s in shards)

    def identity(self) -> dict:
        """The run.json content: a directory holds exactly one of these."""
        return {
            "format_version": FORMAT_VERSION,
            "config_hash": self.config_hash,
            "seed": self.seed,
            "n": self.n,
            "shard_size": self.shard_size,
            "backend": self.backend,
            "backend_opts": self.backend_opts,
            "image_format": self.cfg.output.image_format,
            "categories": list(self.categories),
            "config": self.cfg.model_dump(mode="json"),
        }

    def build(self, catalog: Catalog, index: int) -> Scene:
        """The scene of image ``index``, stamped with this run's seed, index and config hash."""
        builder = self.scene_builder
        if builder is None:
            from synth.randomize import build_scene as builder
        scene = builder(self.cfg, catalog, self.seed, index)
        if not isinstance(scene, Scene):
            raise ConfigError("scene builder", f"returned {type(scene).__name__}, not a Scene")
        if (scene.seed, scene.index, scene.config_hash) != (self.seed, index, self.config_hash):
            scene = scene.model_copy(
                update={"seed": self.seed, "index": index, "config_hash": self.config_hash}
            )
        return scene


def coco_categories(names: Sequence[str]) -> list[dict]:
    """The COCO ``categories`` list of a run (ids from ``synth.annotate.category_ids``)."""
    return [{"id": i, "name": name, "supercategory": "object"} for name, i in category_ids(names).items()]


def load_config(config_path_or_cfg) -> Any:
    """A render config from a YAML path (or an already-built model), checked for the sections we use."""
    if isinstance(config_path_or_cfg, BaseModel):
        cfg = config_path_or_cfg
    else:
        from synth.randomize import load_render_config

        cfg = load_render_config(config_path_or_cfg)
    for section in ("image", "output", "annotation", "catalog"):
        if not hasattr(cfg, section):
            raise ConfigError("config", f"has no '{section}' section")
    return cfg


def make_plan(
    config_path_or_cfg,
    n: int,
    seed: int,
    backend: str = "pyrender",
    backend_opts: dict | None = None,
    scene_builder: SceneBuilder | None = None,
    categories: Sequence[str] | CategoryLister | None = None,
) -> RunPlan:
    """Check the arguments of a run (one-line ConfigErrors) and fix its category list."""
    cfg = load_config(config_path_or_cfg)
    for name, value, low in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(name, f"must be an integer >= {low}, got {value!r}")
    from synth.render import check_backend_options

    if not isinstance(backend_opts or {}, dict):
        raise ConfigError(
            "backend_opts", f"must be a mapping of option names to values, got {backend_opts!r}"
        )
    # checked here, before anything is written or spawned; the run records every option with its default,
    # so a folder rendered under another default is never resumed into a mix of two looks
    resolved = check_backend_options(backend, backend_opts or {})
    names = _category_names(cfg, scene_builder, categories)
    opts = json.loads(json.dumps(resolved, sort_keys=True))
    return RunPlan(cfg, int(n), int(seed), backend, opts, tuple(names), scene_builder)


def _category_names(cfg, scene_builder, categories) -> list[str]:
    catalog = Catalog(cfg.catalog.root)
    if categories is None:
        if scene_builder is not None:
            raise ConfigError("categories", "a custom scene builder needs an explicit category list")
        from synth.randomize import target_categories

        names = list(target_categories(cfg, catalog))
    elif callable(categories):
        names = list(categories(cfg, catalog))
    else:
        names = list(categories)
    if cfg.catalog.class_agnostic:
        names = [cfg.catalog.class_agnostic]
    names = sorted(set(names))  # COCO ids = 1 + position in name order, whatever order they came in
    if not names:
        raise ConfigError("categories", "the dataset would have no categories")
    return names
