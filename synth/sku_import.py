"""Bring a handful of new SKUs into the catalog at once, for a new-SKU dataset.

Each item is a mesh file (imported as ``sku add`` imports it) or the id of an entry already there. Every
mesh is read and checked before anything is written, so one bad file stops the whole batch with one line
and the catalog untouched; an item whose entry already holds the same import (same file, labels and
normalised size) is reused, not written again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from synth.catalog import Catalog, SkuRecord, slugify
from synth.errors import AssetError, ConfigError
from synth.mesh import load_mesh
from synth.sku import add_mesh

log = logging.getLogger(__name__)
GENERIC_STEMS = {"textured", "model", "mesh", "scene", "object", "untitled"}


@dataclass(frozen=True)
class NewSku:
    """One item: a mesh file path, or an existing catalog id (then the labels are the entry's)."""

    item: str
    name: str | None = None
    category: str | None = None
    supercategory: str = "retail"
    units: str = "auto"
    up: str = "auto"


def default_name(path: Path) -> str:
    """The file's stem, or its folder's name for generic stems (``ketchup/textured.obj`` -> ketchup)."""
    stem = path.stem
    return path.parent.name if stem.lower() in GENERIC_STEMS and path.parent.name else stem


def _same_import(record: SkuRecord, path: Path, category: str, supercategory: str, size) -> bool:
    src = record.source
    return (
        src.kind == "import"
        and src.path == str(path.resolve())
        and record.category == category
        and record.supercategory == supercategory
        and all(abs(a - b) <= 1e-6 for a, b in zip(record.size_m, size, strict=True))
    )


def import_skus(catalog: Catalog, items: list[NewSku], thumbnail: bool = True) -> list[SkuRecord]:
    """Catalog records for ``items`` in order (existing ids looked up, meshes imported or reused)."""
    plans = plan_imports(catalog, items)
    return [_write(catalog, spec, todo, have, thumbnail) for spec, todo, have in plans]


def plan_imports(catalog: Catalog, items: list[NewSku]) -> list[tuple]:
    """Read and check every item without writing: (spec, (path, name, category) to import, or None,
    the existing record to reuse, or None). Bad input raises a one-line error here."""
    if not items:
        raise ConfigError("skus", "give at least one mesh file or catalog id")
    plans, seen = [], set()
    for spec in items:
        path = Path(spec.item)
        if not path.suffix and spec.item in catalog:
            plans.append((spec, None, catalog.get(spec.item)))
            continue
        if not path.exists():
            raise AssetError(path, "neither a mesh file nor a catalog id")
        name = spec.name or default_name(path)
        category = spec.category or slugify(name)
        sku_id = slugify(name)
        if sku_id in seen:
            raise ConfigError(path, f"two new SKUs would get the id '{sku_id}': give them distinct names")
        seen.add(sku_id)
        imported = load_mesh(path, units=spec.units, up=spec.up)  # checks the file before any write
        size = tuple(round(float(s), 6) for s in imported.size_m)
        if sku_id in catalog:
            have = catalog.get(sku_id)
            if not _same_import(have, path, category, spec.supercategory, size):
                raise AssetError(
                    catalog.entry_dir(sku_id),
                    f"entry exists and is not this import of {path.name}; give another name",
                )
            plans.append((spec, None, have))
            continue
        plans.append((spec, (path, name, category), None))
    return plans


def _write(catalog: Catalog, spec: NewSku, todo, have: SkuRecord | None, thumbnail: bool) -> SkuRecord:
    if have is not None:
        log.info("%s: reusing catalog entry %s", spec.item, have.id)
        return have
    path, name, category = todo
    record = add_mesh(
        catalog,
        path,
        name=name,
        category=category,
        supercategory=spec.supercategory,
        units=spec.units,
        up=spec.up,
        thumbnail=thumbnail,
        echo=log.info,
    )
    log.info("%s: added as %s (%s)", path, record.id, record.category)
    return record
