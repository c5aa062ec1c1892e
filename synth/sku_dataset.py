"""A dataset for a few new SKUs: a render config in which they appear in a chosen share of the images,
among the catalog's other items (kept as labelled classes or used as distractors), rendered resumably,
with contact sheets, statistics and the share each new SKU reached.

The layout follows the new SKUs' supercategory (retail: shelf or table, industrial: bin); any render
config can be given instead. Rendering goes through ``synth.dataset`` with ``synth.share``'s scene
builder, so an interrupted run resumes and a finished one re-renders nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from synth.catalog import SkuRecord
from synth.coco import load_coco
from synth.config import read_yaml, set_dotted, validate
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json
from synth.randomize.settings import parse_render_config
from synth.share import ShareConfig, build_share_scene

log = logging.getLogger(__name__)
Others = Literal["labelled", "distractors"]
LAYOUT_CONFIGS = {
    "retail": {"shelf": "configs/retail_shelf.yaml", "table": "configs/retail_table.yaml"},
    "industrial": {"bin": "configs/industrial_bin.yaml"},
}
SUMMARY_FILE = "new_skus.json"


def layout_config(records: Sequence[SkuRecord], layout: str | None = None) -> str:
    """The shipped config whose layout fits the new SKUs' supercategory (first layout by default)."""
    kinds = sorted({r.supercategory for r in records})
    if len(kinds) != 1:
        raise ConfigError("skus", f"new SKUs mix supercategories {kinds}: run once per supercategory")
    choices = LAYOUT_CONFIGS[kinds[0]]
    if layout is None:
        return next(iter(choices.values()))
    if layout not in choices:
        raise ConfigError("layout", f"{kinds[0]} items go on {', '.join(choices)}, not '{layout}'")
    return choices[layout]


def config_data(config: str | Path, overrides: dict | None = None) -> dict:
    """A config file as a mapping with dotted-key ``overrides`` applied."""
    data = read_yaml(config)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value, where=key)
    return data


def share_config(
    data: dict,
    records: Sequence[SkuRecord],
    *,
    catalog_root: str | Path,
    share: float,
    others: Others = "labelled",
    source: str = "<new-sku config>",
) -> ShareConfig:
    """``data`` (a render config mapping) turned into the new-SKU dataset's config."""
    if not 0.0 < share <= 1.0:
        raise ConfigError("share", f"must be in (0, 1], got {share}")
    if others not in ("labelled", "distractors"):
        raise ConfigError("others", f"must be labelled or distractors, got {others!r}")
    ids = [r.id for r in records]
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    data.pop("required", None)
    catalog = data.setdefault("catalog", {})
    catalog["root"] = str(catalog_root)
    catalog["supercategory"] = records[0].supercategory
    if others == "distractors":
        catalog["include"] = ids
        distractors = data.setdefault("distractors", {})
        lo, hi = _pair(distractors.get("count", (0, 4)))
        distractors["count"] = [max(lo, 2), max(hi, 6)]
        distractors["catalog_probability"] = max(float(distractors.get("catalog_probability", 0.5)), 0.9)
    elif catalog.get("include"):
        catalog["include"] = list(dict.fromkeys([*catalog["include"], *ids]))
    catalog["exclude"] = [p for p in catalog.get("exclude", []) if p not in ids]
    parse_render_config(data, source)  # the render part alone: file-and-key errors, backdrop folder
    cfg = validate(ShareConfig, {**data, "required": {"ids": ids, "share": share}}, source)
    cfg._source = source
    return cfg


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def render_new_sku_dataset(
    cfg: ShareConfig,
    n: int,
    out: str | Path,
    seed: int = 0,
    workers: int = 2,
    backend: str = "pyrender",
    progress: bool = True,
) -> Path:
    """Render (or resume) the dataset on a process pool; returns its annotations.json."""
    from synth.dataset import render_dataset
    from synth.randomize import target_categories

    return render_dataset(
        cfg,
        n,
        out,
        seed,
        workers,
        backend,
        scene_builder=build_share_scene,
        categories=target_categories,
        progress=progress,
    )


def measure_share(annotations: str | Path, ids: Sequence[str]) -> dict[str, float]:
    """Fraction of the images in which each id has at least one annotation."""
    source = load_coco(annotations, check_files=False)
    seen = {i: 0 for i in ids}
    for image_id in source.images:
        present = {a.get("sku_id") for a in source.anns_by_image[image_id]}
        for i in ids:
            seen[i] += i in present
    n = max(1, len(source.images))
    return {i: round(seen[i] / n, 4) for i in ids}


def quality_report(out: str | Path, cfg: ShareConfig, extra: dict | None = None) -> dict:
    """Contact sheets, statistics and the share summary of a rendered dataset (``new_skus.json``)."""
    from synth.stats import dataset_stats
    from synth.viz import contact_sheets

    out = Path(out)
    sheets = contact_sheets(out)
    stats = dataset_stats(out)
    shares = measure_share(out / "annotations.json", cfg.required.ids)
    summary = {
        "annotations": str(out / "annotations.json"),
        "images": stats["images"],
        "categories": stats["categories"],
        "required_share": cfg.required.share,
        "share": shares,
        "share_met": all(v >= cfg.required.share for v in shares.values()),
        "contact_sheets": [str(p) for p in sheets],
        "stats": str(out / "stats" / "stats.json"),
        **(extra or {}),
    }
    atomic_write_json(out / SUMMARY_FILE, summary)
    for sku_id, value in shares.items():
        log.info(
            "%s: in %.1f %% of the images (asked: %.1f %%)", sku_id, 100 * value, 100 * cfg.required.share
        )
    return summary
