"""Scene randomizers: a render config + a catalog + (seed, index) -> one settled, lit, framed ``Scene``.

Public API (what the writer, the CLI and the flows call)::

    cfg = load_render_config("configs/retail_shelf.yaml")   # ConfigError "file: key 'x.y': problem"
    scene = build_scene(cfg, catalog, seed, index)          # deterministic, independent per index
    names = target_categories(cfg, catalog)                 # sorted COCO category names

Modules: ``settings`` (the config schema), ``pool`` (which SKUs), ``items`` (targets and distractors),
``shelf`` / ``piles`` (layouts), ``shapes`` + ``physics`` (hulls, collision-checked drops, stability),
``camera``, ``lighting``, ``blackbody``, ``materials``, ``builder``.
"""

from synth.randomize.builder import build_scene, target_categories
from synth.randomize.settings import RenderConfig, load_render_config, parse_render_config

__all__ = ["RenderConfig", "build_scene", "load_render_config", "parse_render_config", "target_categories"]
