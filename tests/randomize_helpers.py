"""Tiny real catalogs for the randomizer tests: boxes, cylinders and an L-bracket written as GLB files
through ``Catalog.add``, like any imported or procedural entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from synth.catalog import Catalog, MaterialHints, SkuRecord, Source

# id, category, supercategory, kind, dimensions (box: x, y, z; cylinder: radius, height)
RETAIL = [
    ("cereal-a", "cereal", "retail", "box", (0.19, 0.07, 0.28)),
    ("crackers-b", "crackers", "retail", "box", (0.16, 0.06, 0.21)),
    ("tea-c", "tea", "retail", "box", (0.12, 0.07, 0.08)),
    ("beans-can", "beans", "retail", "cylinder", (0.037, 0.11)),
    ("soda-can", "soda", "retail", "cylinder", (0.033, 0.115)),
    ("water-bottle", "water", "retail", "cylinder", (0.035, 0.24)),
]
INDUSTRIAL = [
    ("nut-m8", "nut", "industrial", "cylinder", (0.0075, 0.0065)),
    ("washer-m8", "washer", "industrial", "cylinder", (0.009, 0.0016)),
    ("bolt-m6", "bolt", "industrial", "cylinder", (0.003, 0.04)),
    ("block-a", "block", "industrial", "box", (0.03, 0.02, 0.012)),
    ("bracket-l", "bracket", "industrial", "bracket", (0.04, 0.02, 0.03)),
]


def _mesh(kind: str, dims) -> trimesh.Trimesh:
    if kind == "box":
        return trimesh.creation.box(extents=dims)
    if kind == "cylinder":
        return trimesh.creation.cylinder(radius=dims[0], height=dims[1], sections=40)
    # an L-shaped bracket: two plates, non-convex, so hulls and real surfaces differ
    w, d, h = dims
    t = 0.003
    base = trimesh.creation.box(extents=(w, d, t))
    base.apply_translation((0, 0, -h / 2 + t / 2))
    wall = trimesh.creation.box(extents=(t, d, h))
    wall.apply_translation((-w / 2 + t / 2, 0, 0))
    mesh = trimesh.util.concatenate([base, wall])
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


def make_catalog(root: Path, entries=RETAIL + INDUSTRIAL) -> Catalog:
    """A catalog of real GLB meshes (metres, bbox centred, +Z up) with records matching them."""
    catalog = Catalog(root)
    for i, (sku_id, category, supercat, kind, dims) in enumerate(entries):
        mesh = _mesh(kind, dims)
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
        size = tuple(float(s) for s in mesh.extents)
        colour = tuple(float(c) for c in np.random.default_rng(i).uniform(0.2, 0.9, 3))
        record = SkuRecord(
            id=sku_id,
            name=sku_id.replace("-", " "),
            category=category,
            supercategory=supercat,
            size_m=size,
            thumbnail=None,
            source=Source(kind="procedural", generator=kind, seed=i),
            material=MaterialHints(
                base_color=(*colour, 1.0), roughness=0.5, metallic=0.8 if supercat == "industrial" else 0.0
            ),
        )

        def write(tmp: Path, mesh=mesh) -> None:
            mesh.export(tmp / "mesh.glb")

        catalog.add(record, write)
    return catalog
