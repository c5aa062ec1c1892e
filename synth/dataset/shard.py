"""The state of a dataset directory, shard by shard: created, finished (coco.json written last), cleaned.

A shard is the unit of reuse. Resuming (running the same command again, e.g. after kill -9) keeps every
shard that has its coco.json, deletes shard directories without one, renders the rest and merges; the
result is byte-identical to an uninterrupted run (``timings.json`` files and the ``timings`` section of
the manifest excepted: those are measurements).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from synth.catalog import Catalog
from synth.coco import CocoError, read_coco_json
from synth.dataset.image import ImageResult
from synth.dataset.layout import (
    LOCK_FILE,
    RUN_FILE,
    SHARD_COCO,
    SHARD_SUBDIRS,
    SHARD_TIMINGS,
    SHARDS_DIR,
    shard_name,
    shard_path,
)
from synth.dataset.lock import output_lock
from synth.dataset.plan import CategoryLister, RunPlan, SceneBuilder, coco_categories, make_plan
from synth.dataset.worker import plan_backend, render_with
from synth.errors import ConfigError, SimrealError
from synth.fsutil import atomic_write_json

IDENTITY_KEYS = ("format_version", "config_hash", "seed", "n", "backend", "backend_opts", "categories")


def prepare_output(plan: RunPlan, out_dir: Path) -> None:
    """Create ``out_dir`` with its run.json, or check that an existing one describes the same run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file = out_dir / RUN_FILE
    want = plan.identity()
    if run_file.is_file():
        try:
            have = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError):
            raise ConfigError(run_file, "unreadable; delete the output directory to start over") from None
        for key in IDENTITY_KEYS:
            if have.get(key) != want[key]:
                raise ConfigError(
                    out_dir,
                    f"holds a dataset with a different {key} ({have.get(key)!r}, now "
                    f"{want[key]!r}); use another --out or delete it",
                )
        return
    if any(entry.name != LOCK_FILE for entry in out_dir.iterdir()):
        raise ConfigError(out_dir, "exists, is not empty and is not a simreal dataset; use another --out")
    atomic_write_json(run_file, want)


def shard_done(plan: RunPlan, out_dir: Path, shard: int) -> bool:
    """True when the shard's coco.json exists and covers all its images; a shard of another run is an error."""
    coco = shard_path(out_dir, shard) / SHARD_COCO
    if not coco.is_file():
        return False
    try:
        info = read_coco_json(coco)["info"]
    except (CocoError, KeyError):
        return False
    if info.get("config_hash") != plan.config_hash or info.get("seed") != plan.seed:
        raise ConfigError(
            coco,
            f"was rendered with config hash {info.get('config_hash')} / seed "
            f"{info.get('seed')}, not {plan.config_hash} / {plan.seed}",
        )
    return info.get("count") == len(plan.shard_indices(shard))


def clean_partial(plan: RunPlan, out_dir: Path) -> list[int]:
    """Delete unfinished shard directories and stray temp files; return the shards still to render."""
    shards_root = out_dir / SHARDS_DIR
    shards_root.mkdir(exist_ok=True)
    known = {shard_name(s) for s in range(plan.num_shards)}
    for entry in shards_root.iterdir():
        if entry.name not in known:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    todo = []
    for s in range(plan.num_shards):
        if not shard_done(plan, out_dir, s):
            d = shard_path(out_dir, s)
            if d.exists():
                shutil.rmtree(d)
            todo.append(s)
    for stray in out_dir.glob(".*.tmp"):
        stray.unlink(missing_ok=True)
    return todo


def new_shard_dir(out_dir: Path, shard: int) -> Path:
    """An empty directory for the shard (whatever was there is deleted)."""
    d = shard_path(out_dir, shard)
    if d.exists():
        shutil.rmtree(d)
    for sub in SHARD_SUBDIRS:
        (d / sub).mkdir(parents=True)
    return d


def finish_shard(plan: RunPlan, shard: int, shard_dir: Path, results: list[ImageResult]) -> None:
    """Write the shard's timings, make its files durable, then write coco.json: the completion marker."""
    expected = list(plan.shard_indices(shard))
    got = sorted(r.index for r in results)
    if got != expected:
        raise SimrealError(shard_dir, f"shard has images {got[:3]}... but expects {expected[:3]}...")
    for stray in shard_dir.rglob(".*.tmp"):  # left by an attempt that died mid-write and was retried
        stray.unlink(missing_ok=True)
    timings = {"images": len(results), "seconds": sum_timings(r.timings for r in results)}
    atomic_write_json(shard_dir / SHARD_TIMINGS, timings)
    _fsync_tree(shard_dir)
    atomic_write_json(shard_dir / SHARD_COCO, _shard_coco(plan, shard, results), indent=None)


def _shard_coco(plan: RunPlan, shard: int, results: list[ImageResult]) -> dict:
    results = sorted(results, key=lambda r: r.index)
    annotations = []
    for r in results:
        for a in r.annotations:
            annotations.append({"id": len(annotations) + 1, "image_id": r.index + 1, **a})
    dropped = [{"image_id": r.index + 1, **d} for r in results for d in r.dropped]
    return {
        "info": {
            "description": "simreal synthetic shard",
            "config_hash": plan.config_hash,
            "seed": plan.seed,
            "shard": shard,
            "first_index": plan.shard_indices(shard).start,
            "count": len(results),
        },
        "images": [r.image for r in results],
        "annotations": annotations,
        "categories": coco_categories(plan.categories),
        "dropped": dropped,
    }


def sum_timings(items: Iterable[dict[str, float]]) -> dict[str, float]:
    """Per-stage sums of timing dicts, rounded to microseconds, in key order."""
    total: dict[str, float] = {}
    for t in items:
        for k, v in t.items():
            total[k] = total.get(k, 0.0) + v
    return {k: round(v, 6) for k, v in sorted(total.items())}


def _fsync_tree(root: Path) -> None:
    for dirpath, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def render_shard(
    config_path_or_cfg,
    shard_index: int,
    n: int,
    out_dir: str | Path,
    seed: int,
    backend: str = "pyrender",
    backend_opts: dict | None = None,
    *,
    scene_builder: SceneBuilder | None = None,
    categories: Sequence[str] | CategoryLister | None = None,
    backend_instance=None,
) -> Path:
    """Render shard ``shard_index`` of the dataset (config, n, seed) in THIS process; returns its directory.

    Idempotent: a finished shard (its coco.json exists, same config hash) is left alone. Uses this
    process's backend (``process_backend``) unless ``backend_instance`` is given, so call it in a worker
    process, not in one that will import torchvision afterwards. Holds the output folder's lock while it
    runs. Call ``merge_shards(out_dir)`` when every shard is done."""
    plan = make_plan(config_path_or_cfg, n, seed, backend, backend_opts, scene_builder, categories)
    out_dir = Path(out_dir)
    with output_lock(out_dir):
        prepare_output(plan, out_dir)
        if not 0 <= shard_index < plan.num_shards:
            raise ConfigError("shard_index", f"{shard_index} is outside 0..{plan.num_shards - 1}")
        d = shard_path(out_dir, shard_index)
        if shard_done(plan, out_dir, shard_index):
            return d
        new_shard_dir(out_dir, shard_index)
        be = backend_instance if backend_instance is not None else plan_backend(plan)
        results = render_with(plan, be, Catalog(plan.cfg.catalog.root), plan.shard_indices(shard_index), d)
        finish_shard(plan, shard_index, d, results)
    return d
