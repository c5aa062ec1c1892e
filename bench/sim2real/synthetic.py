"""The two rendered training sets: one recipe file, one catalog and one seed, so both show the same scenes;
only the looks differ (*plain*: realistic materials and studio lighting, *dr*: the file's randomization)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.sim2real.real_sets import dataset_counts
from bench.sim2real.scales import ScaleSettings, Sim2RealParams
from bench.sim2real.variants import Variant

# Variant (a): the recipe's scenes with realistic looks and studio-like, nearly fixed lighting. Applied as
# dotted overrides on top of configs/sim2real_<task>.yaml (whose own values are the DR recipe).
PLAIN_LOOKS: dict[str, Any] = {
    "materials.mode": "realistic",
    "materials.roughness_jitter": 0.03,
    "materials.metallic_jitter": 0.03,
    "materials.color_jitter": 0.02,
    "lighting.count": [2, 2],
    "lighting.kinds": {"area": 1.0},
    "lighting.irradiance": [1.8, 2.2],
    "lighting.temperature_k": [4800, 5200],
    "lighting.area_size": [0.5, 0.6],
    "lighting.ambient": [0.25, 0.3],
    "background.procedural_kinds": [],  # a plain backdrop colour
    "background.brightness": [0.45, 0.55],
}


@dataclass(frozen=True)
class RenderJob:
    """One dataset to render: a recipe file plus dotted overrides (the fields of the render-dataset flow)."""

    config: str
    n: int
    seed: int
    out: str
    backend: str
    workers: int
    overrides: dict[str, Any] = field(default_factory=dict)


def needed_sets(variants: list[Variant]) -> list[str]:
    """The synthetic sets the chosen variants train on (or start from, through (b))."""
    return sorted(
        {v.data for v in variants if v.synthetic_only}
        | ({"synthetic_dr"} if any(v.init_from for v in variants) else set())
    )


def look_of(set_name: str) -> str:
    return "plain" if set_name == "synthetic_plain" else "dr"


def render_job(params: Sim2RealParams, s: ScaleSettings, set_name: str, catalog_root: str, out) -> RenderJob:
    look = look_of(set_name)
    overrides = {
        "catalog.root": catalog_root,
        "image.width": s.render_size,
        "image.height": s.render_size,
        **(PLAIN_LOOKS if look == "plain" else {}),
        **params.render_overrides,
    }
    return RenderJob(
        config=str(params.render_config_path()),
        overrides=overrides,
        n=s.images,
        seed=params.seed,
        out=str(out / "synthetic" / look),
        backend=params.backend,
        workers=params.workers,
    )


def synthetic_record(job: RenderJob, rendered: dict, set_name: str, variants: list[Variant]) -> dict:
    """The summary's record of a rendered set; ``rendered`` is the render-dataset flow's summary."""
    return {
        **dataset_counts(rendered["annotations"]),
        "out": rendered["out"],
        "role": "training " + ", ".join(v.key for v in variants if v.data == set_name),
        "config": job.config,
        "look": look_of(set_name),
        "overrides": {k: v for k, v in job.overrides.items() if k != "catalog.root"},
        "images_rendered": rendered["images_rendered"],
        "render_s": rendered["wall_s"],
    }
