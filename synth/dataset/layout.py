"""Where things live in a dataset directory ``DIR``: the one place that names its files.

::

    DIR/run.json                              what this directory is a rendering of (config hash, seed, n,
                                              backend, categories); a re-run must match it
    DIR/.lock                                 held (flock) by the run rendering into DIR, holds its pid
    DIR/shards/shard-00000/images/000000.jpg  colour (file name = global image index)
    DIR/shards/shard-00000/depth/000000.png   16-bit depth in millimetres (0 = nothing)
    DIR/shards/shard-00000/scenes/000000.json the exact Scene: re-renderable by any backend
    DIR/shards/shard-00000/timings.json       seconds per stage for this shard's images
    DIR/shards/shard-00000/coco.json          written atomically LAST: the shard's completion marker
    DIR/annotations.json                      merged COCO (image id = index + 1, file names relative to DIR)
    DIR/manifest.json                         config hash, seed, versions, counts, drops, timings
"""

from __future__ import annotations

from pathlib import Path

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
SHARDS_DIR = "shards"
SHARD_COCO = "coco.json"
SHARD_TIMINGS = "timings.json"
ANNOTATIONS_FILE = "annotations.json"
MANIFEST_FILE = "manifest.json"
SHARD_SUBDIRS = ("images", "depth", "scenes")


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def shard_path(out_dir: Path, shard: int) -> Path:
    return Path(out_dir) / SHARDS_DIR / shard_name(shard)


def image_stem(index: int) -> str:
    return f"{index:06d}"
