"""Merge the finished shards of a dataset directory into annotations.json and manifest.json.

The manifest is reproducible (same render, same bytes) except its ``timings`` section, which holds
measurements: mean milliseconds per image and stage, and facts about the last run (``add_run_info``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from synth.coco import load_coco, read_coco_json, summarise
from synth.dataset.image import STAGES
from synth.dataset.layout import (
    ANNOTATIONS_FILE,
    MANIFEST_FILE,
    RUN_FILE,
    SHARD_COCO,
    SHARD_TIMINGS,
    shard_path,
)
from synth.dataset.plan import FORMAT_VERSION, coco_categories
from synth.dataset.shard import sum_timings
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json
from synth.provenance import package_versions

RUN_KEYS = ("config_hash", "seed", "n", "shard_size", "backend", "backend_opts", "image_format", "config")
VERSIONED_PACKAGES = (
    "simreal",
    "numpy",
    "pyrender",
    "PyOpenGL",
    "trimesh",
    "pycocotools",
    "opencv-python-headless",
    "pydantic",
    "bpy",
)


def merge_shards(out_dir: str | Path) -> Path:
    """Merge every finished shard of ``out_dir`` into annotations.json and manifest.json (atomically)."""
    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    if not run_file.is_file():
        raise ConfigError(out_dir, "is not a simreal dataset (no run.json)")
    run = json.loads(run_file.read_text())
    shards = [_read_shard(out_dir, s, run) for s in range(math.ceil(run["n"] / run["shard_size"]))]
    images = [im for coco, _ in shards for im in coco["images"]]
    if len(images) != run["n"] or len({im["id"] for im in images}) != run["n"]:
        raise ConfigError(out_dir, f"shards hold {len(images)} images, run.json expects {run['n']}")
    annotations = []
    for coco, _ in shards:
        for a in coco["annotations"]:
            annotations.append({**a, "id": len(annotations) + 1})
    coco = {
        "info": {
            "description": "simreal synthetic dataset",
            "version": str(FORMAT_VERSION),
            "config_hash": run["config_hash"],
            "seed": run["seed"],
            "backend": run["backend"],
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(run["categories"]),
    }
    ann_path = out_dir / ANNOTATIONS_FILE
    atomic_write_json(ann_path, coco, indent=None)
    dropped = [d for shard_coco, _ in shards for d in shard_coco.get("dropped", [])]
    manifest = _manifest(run, summarise(load_coco(ann_path, check_files=False)), coco["categories"], dropped)
    manifest["timings"] = _timings([t for _, t in shards if t], _previous_run_info(out_dir))
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)
    return ann_path


def _read_shard(out_dir: Path, shard: int, run: dict) -> tuple[dict, dict | None]:
    """A finished shard's COCO dict and its timings (None when the timings file is missing)."""
    d = shard_path(out_dir, shard)
    coco_path = d / SHARD_COCO
    if not coco_path.is_file():
        raise ConfigError(d, "shard is not finished; run the render command again to complete it")
    coco = read_coco_json(coco_path)
    if coco["info"]["config_hash"] != run["config_hash"]:
        raise ConfigError(coco_path, "belongs to a different config than run.json")
    tpath = d / SHARD_TIMINGS
    return coco, (json.loads(tpath.read_text()) if tpath.is_file() else None)


def _manifest(run: dict, summary: dict, categories: list[dict], dropped: list[dict]) -> dict:
    """The reproducible part of the manifest: what was asked for, the versions, what came out."""
    by_reason: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for d in dropped:
        by_reason[d["reason"]] = by_reason.get(d["reason"], 0) + 1
        by_class[d["category"]] = by_class.get(d["category"], 0) + 1
    per_image = summary["objects_per_image"]
    return {
        "format_version": FORMAT_VERSION,
        **{k: run[k] for k in RUN_KEYS},
        "versions": package_versions(VERSIONED_PACKAGES),
        "categories": categories,
        "counts": {
            "images": summary["images"],
            "annotations": summary["annotations"],
            "per_category": summary["per_category"],
            "objects_per_image": {k: per_image[k] for k in ("mean", "max", "images_without_objects")},
        },
        "dropped": {
            "total": len(dropped),
            "by_reason": dict(sorted(by_reason.items())),
            "by_category": dict(sorted(by_class.items())),
            "objects": dropped,
        },
    }


def _timings(shard_timings: list[dict], last_run: dict | None) -> dict:
    """Mean milliseconds per image and stage over the images of every shard, from whichever run rendered
    that shard (measurements, not part of the reproducible dataset)."""
    timed = sum(t.get("images", 0) for t in shard_timings)
    seconds = sum_timings(t.get("seconds", {}) for t in shard_timings)
    stage_ms = {k: round(1000 * v / timed, 3) for k, v in seconds.items()} if timed else {}
    per_image_total = sum(stage_ms.get(s, 0.0) for s in STAGES)
    return {
        "images_timed": timed,
        "ms_per_image": stage_ms,
        "ms_per_image_total": round(per_image_total, 3),
        "annotate_fraction": round(stage_ms.get("annotate", 0.0) / per_image_total, 4)
        if per_image_total
        else None,
        "last_run": last_run,
    }


def _previous_run_info(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST_FILE).read_text())["timings"].get("last_run")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def add_run_info(out_dir: str | Path, info: dict) -> None:
    """Record facts about the run that just finished (workers, wall time...) as the manifest's
    ``timings.last_run``; a measurement, outside the reproducible part of the manifest."""
    path = Path(out_dir) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["timings"]["last_run"] = info
    atomic_write_json(path, manifest)
