"""One image: scene -> render -> annotate -> encode -> write, timed per stage.

Files are written with temp file + rename but not fsynced one by one: a shard is fsynced once, before
its coco.json marks it finished (see ``shard.finish_shard``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.annotate import annotate
from synth.catalog import Catalog
from synth.dataset.layout import SHARDS_DIR, image_stem
from synth.dataset.plan import RunPlan
from synth.errors import AssetError, ConfigError
from synth.letterbox import apply_letterbox

STAGES = ("scene", "render", "annotate", "encode", "write")


@dataclass
class ImageResult:
    """What the shard's coco.json needs from one rendered image (picklable: it comes back from workers)."""

    index: int
    image: dict  # COCO image entry
    annotations: list[dict]  # without id
    dropped: list[dict]
    timings: dict[str, float] = field(default_factory=dict)


class _StageClock:
    """Wall and CPU seconds per stage. CPU seconds are the worker process's (all its threads, e.g.
    llvmpipe's): on a shared machine they say what the work costs, the wall figures what it took."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.timings[stage] = wall - self._wall
        self.timings[f"cpu.{stage}"] = cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def render_image(plan: RunPlan, backend, catalog: Catalog, index: int, shard_dir: Path) -> ImageResult:
    """Scene -> render -> annotate -> encode -> write, for image ``index`` into ``shard_dir``."""
    clock = _StageClock()
    scene = plan.build(catalog, index)
    cam = scene.camera
    if (cam.width, cam.height) != (plan.cfg.image.width, plan.cfg.image.height):
        raise ConfigError(
            "scene builder",
            f"image {index} is {cam.width}x{cam.height}, the config says "
            f"{plan.cfg.image.width}x{plan.cfg.image.height}",
        )
    clock.lap("scene")
    frame = apply_letterbox(backend.render(scene), scene.letterbox)
    clock.lap("render")
    result = annotate(frame, scene, plan.cfg.annotation, plan.categories)
    clock.lap("annotate")
    files = _encode_files(plan.cfg.output, frame, scene, index, shard_dir)
    clock.lap("encode")
    for name, data in files.items():
        write_file(shard_dir / name, data)
    clock.lap("write")
    timings = {
        **{s: clock.timings[s] for s in STAGES},
        **{f"cpu.{s}": clock.timings[f"cpu.{s}"] for s in STAGES},
        **{f"backend.{k}": v for k, v in frame.timings.items()},
    }
    image = _image_entry(plan.cfg.output, index, shard_dir.name, cam.width, cam.height)
    return ImageResult(index, image, result.annotations, result.dropped, timings)


def _encode_files(out_cfg, frame, scene, index: int, shard_dir: Path) -> dict[str, bytes]:
    """The files of one image, relative to its shard directory, as bytes."""
    import cv2

    stem = image_stem(index)
    bgr = frame.rgb[..., ::-1]
    if out_cfg.image_format == "jpg":
        ok, img_bytes = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, out_cfg.jpeg_quality])
    else:
        ok, img_bytes = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise AssetError(shard_dir, f"could not encode image {index}")
    files = {f"images/{stem}.{out_cfg.image_format}": img_bytes.tobytes()}
    if out_cfg.write_depth:
        depth_mm = np.clip(np.rint(frame.depth * 1000.0), 0, 65535).astype(np.uint16)
        ok, depth_bytes = cv2.imencode(".png", depth_mm, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise AssetError(shard_dir, f"could not encode depth {index}")
        files[f"depth/{stem}.png"] = depth_bytes.tobytes()
    files[f"scenes/{stem}.json"] = scene.to_json().encode()
    return files


def _image_entry(out_cfg, index: int, shard: str, width: int, height: int) -> dict:
    """The COCO image entry: id = index + 1, file names relative to the dataset directory."""
    rel = f"{SHARDS_DIR}/{shard}"
    stem = image_stem(index)
    image = {
        "id": index + 1,
        "file_name": f"{rel}/images/{stem}.{out_cfg.image_format}",
        "width": width,
        "height": height,
    }
    if out_cfg.write_depth:
        image["depth_file"] = f"{rel}/depth/{stem}.png"
    image["scene_file"] = f"{rel}/scenes/{stem}.json"
    return image


def write_file(path: Path, data: bytes) -> None:
    """Temp file + rename, no fsync (the shard is fsynced once, before its coco.json)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
