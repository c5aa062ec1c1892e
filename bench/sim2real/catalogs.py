"""The benchmark's own catalog: procedural packages (retail), or procedural fasteners plus the meshes in
``../shared/meshes/fasteners`` (industrial). Entry ids follow from seeds, so a re-run keeps what is there."""

from __future__ import annotations

from pathlib import Path

from synth.catalog import Catalog
from synth.paths import shared_root

INDUSTRIAL_TARGET_KINDS = ("wood_screw", "drywall_screw", "socket_cap_screw", "hex_bolt")
INDUSTRIAL_DISTRACTOR_KINDS = ("hex_nut", "washer")
# ../shared/meshes/fasteners (millimetres): file, display name, category
SHARED_FASTENERS = (
    ("hex_head_screw_M8x30.stl", "M8x30 hex head screw", "bolt"),
    ("socket_head_cap_screw_M6x20.stl", "M6x20 socket head cap screw", "screw"),
    ("hexnut_M6.stl", "M6 hex nut", "nut"),
    ("squarenut_M6.stl", "M6 square nut", "nut"),
    ("plain_washer_M6.stl", "M6 plain washer", "washer"),
)


def prepare_catalog(task_name: str, root: str, items: int, seed: int) -> dict:
    """Fill ``root`` with the task's objects; entries already there are kept (ids follow from seeds)."""
    catalog = Catalog(root)
    if task_name == "retail":
        from synth.library import generate_library

        added, kept = generate_library(catalog, items, 0, seed, thumbnails=False)
        sources = ["procedural packaging (synth.procedural)"]
    else:
        added, kept = _procedural_fasteners(catalog, items, seed)
        more_added, more_kept, sources = _shared_fasteners(catalog)
        added, kept = added + more_added, kept + more_kept
        sources = ["procedural fasteners (synth.procedural)", *sources]
    return {
        "root": str(catalog.root),
        "added": added,
        "kept": kept,
        "entries": len(list(catalog)),
        "sources": sources,
    }


def _procedural_fasteners(catalog: Catalog, per_kind: int, seed: int) -> tuple[int, int]:
    import numpy as np

    from synth.library import entry_id
    from synth.procedural import generate_asset
    from synth.sku import write_entry

    added = kept = 0
    for k, kind in enumerate(INDUSTRIAL_TARGET_KINDS + INDUSTRIAL_DISTRACTOR_KINDS):
        for i in range(per_kind):
            item_seed = int(np.random.SeedSequence([seed, 2, k, i]).generate_state(1, dtype=np.uint32)[0])
            sku_id = entry_id(kind, item_seed)
            if sku_id in catalog:
                kept += 1
                continue
            asset = generate_asset(kind, item_seed)
            write_entry(catalog, asset.record(sku_id), asset.mesh, thumbnail=False)
            added += 1
    return added, kept


def _shared_fasteners(catalog: Catalog) -> tuple[int, int, list[str]]:
    """Add the measured fastener meshes from ../shared when present: (added, kept, source notes)."""
    from synth.catalog import MaterialHints
    from synth.sku import add_mesh

    folder = shared_root() / "meshes" / "fasteners"
    if not folder.is_dir():
        return 0, 0, [f"({folder} not found: procedural fasteners only)"]
    steel = MaterialHints(base_color=(0.72, 0.72, 0.74, 1.0), metallic=1.0, roughness=0.35, finish="zinc")
    added = kept = 0
    for file, name, category in SHARED_FASTENERS:
        path = folder / file
        if not path.is_file():
            continue
        sku_id = "shared-" + Path(file).stem.lower().replace("_", "-")
        if sku_id in catalog:
            kept += 1
            continue
        add_mesh(
            catalog,
            path,
            name=name,
            category=category,
            supercategory="industrial",
            units="mm",
            sku_id=sku_id,
            material=steel,
            thumbnail=False,
            echo=None,
            license="Apache-2.0 tool output",
        )
        added += 1
    return added, kept, [f"meshes from {folder}"]
