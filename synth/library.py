"""Fill a catalog from the procedural library, so a user with no meshes of their own still gets a dataset.

Entry ids are derived from (kind, item seed), so re-running with the same seed keeps what is already there
and only adds what is missing.
"""

from __future__ import annotations

from tqdm import tqdm

from synth.catalog import Catalog, SkuRecord, Source, slugify


def entry_id(kind: str, item_seed: int) -> str:
    return slugify(f"{kind}-{item_seed}")


def generate_library(
    catalog: Catalog,
    n_retail: int,
    n_industrial: int,
    seed: int,
    replace: bool = False,
    thumbnails: bool = True,
) -> tuple[int, int]:
    """Generate ``n_retail`` packages and ``n_industrial`` parts; returns (added, already present)."""
    from synth.procedural import default_library, generate_asset
    from synth.sku import write_entry

    plan = default_library(n_retail, n_industrial, seed)
    added = kept = 0
    for kind, item_seed in tqdm(plan, desc="procedural catalog", unit="sku", disable=None):
        sku_id = entry_id(kind, item_seed)
        if sku_id in catalog and not replace:
            kept += 1
            continue
        asset = generate_asset(kind, item_seed)
        record = SkuRecord(
            id=sku_id,
            name=asset.name,
            category=asset.category,
            supercategory=asset.supercategory,
            size_m=tuple(float(x) for x in asset.mesh.extents),
            material=asset.material,
            symmetry=asset.symmetry,
            symmetry_order=asset.symmetry_order,
            source=Source(kind="procedural", generator=kind, seed=item_seed, license="generated"),
        )
        write_entry(catalog, record, asset.mesh, thumbnail=thumbnails, replace=replace)
        added += 1
    return added, kept
