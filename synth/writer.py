"""Render a dataset into shards with worker processes, then merge them into one COCO file.

Layout of a dataset directory ``DIR``::

    DIR/run.json                              what this directory is a rendering of (config hash, seed, n,
                                              backend, categories); a re-run must match it
    DIR/shards/shard-00000/images/000000.jpg  colour (file name = global image index)
    DIR/shards/shard-00000/depth/000000.png   16-bit depth in millimetres (0 = nothing)
    DIR/shards/shard-00000/scenes/000000.json the exact Scene: re-renderable by any backend
    DIR/shards/shard-00000/timings.json       seconds per stage for this shard's images
    DIR/shards/shard-00000/coco.json          written atomically LAST: the shard's completion marker
    DIR/annotations.json                      merged COCO (image id = index + 1, file names relative to DIR)
    DIR/manifest.json                         config hash, seed, versions, counts, drops, timings

Image ``i`` depends only on (config, seed, i): its scene comes from ``build_scene(cfg, catalog, seed, i)``,
and the backend and annotation are deterministic, so worker count and shard assignment never matter.
Resuming (running the same command again, e.g. after kill -9) keeps every shard that has its coco.json,
deletes shard directories without one, renders the rest and merges; the result is byte-identical to an
uninterrupted run (``timings.json`` files and the ``timings`` section of the manifest excepted: those are
measurements).

Rendering happens only in spawned worker processes, one backend each (see ../shared/STACK.md); the
calling process never creates a GL context. ``render_shard`` renders one shard in the calling process,
for orchestrators (Prefect) that fan shards out to their own worker processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import multiprocessing
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from synth import errors as _errors
from synth.annotate import annotate, category_ids
from synth.catalog import Catalog
from synth.config import config_hash
from synth.errors import AssetError, ConfigError, SimrealError
from synth.fsutil import atomic_write_json
from synth.scene import Scene

FORMAT_VERSION = 1
RUN_FILE = "run.json"
SHARDS_DIR = "shards"
SHARD_COCO = "coco.json"
SHARD_TIMINGS = "timings.json"
ANNOTATIONS_FILE = "annotations.json"
MANIFEST_FILE = "manifest.json"
STAGES = ("scene", "render", "annotate", "encode", "write")
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

SceneBuilder = Callable[[Any, Catalog, int, int], Scene]
CategoryLister = Callable[[Any, Catalog], Sequence[str]]


class CocoValidationError(AssetError):
    """A COCO file that pycocotools or our invariants reject."""


# ---- what a run is ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunPlan:
    """Everything that decides the bytes of a dataset, plus how to make scenes. Picklable (sent to workers)."""

    cfg: Any  # a RenderConfig-like pydantic model: .image .output .annotation .catalog (+ randomization)
    n: int
    seed: int
    backend: str
    backend_opts: dict
    categories: tuple[str, ...]
    scene_builder: SceneBuilder | None = None  # None: synth.randomize.build_scene

    @property
    def config_hash(self) -> str:
        return config_hash(self.cfg)

    @property
    def shard_size(self) -> int:
        return self.cfg.output.shard_size

    @property
    def num_shards(self) -> int:
        return math.ceil(self.n / self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.n, (shard + 1) * self.shard_size))

    def identity(self) -> dict:
        """The run.json content: a directory holds exactly one of these."""
        return {
            "format_version": FORMAT_VERSION,
            "config_hash": self.config_hash,
            "seed": self.seed,
            "n": self.n,
            "shard_size": self.shard_size,
            "backend": self.backend,
            "backend_opts": self.backend_opts,
            "image_format": self.cfg.output.image_format,
            "categories": list(self.categories),
            "config": self.cfg.model_dump(mode="json"),
        }

    def build(self, catalog: Catalog, index: int) -> Scene:
        builder = self.scene_builder
        if builder is None:
            from synth.randomize import build_scene as builder
        scene = builder(self.cfg, catalog, self.seed, index)
        if not isinstance(scene, Scene):
            raise ConfigError("scene builder", f"returned {type(scene).__name__}, not a Scene")
        if (scene.seed, scene.index, scene.config_hash) != (self.seed, index, self.config_hash):
            scene = scene.model_copy(
                update={"seed": self.seed, "index": index, "config_hash": self.config_hash}
            )
        return scene


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def image_stem(index: int) -> str:
    return f"{index:06d}"


def load_config(config_path_or_cfg) -> Any:
    if isinstance(config_path_or_cfg, BaseModel):
        cfg = config_path_or_cfg
    else:
        from synth.randomize import load_render_config

        cfg = load_render_config(config_path_or_cfg)
    for section in ("image", "output", "annotation", "catalog"):
        if not hasattr(cfg, section):
            raise ConfigError("config", f"has no '{section}' section")
    return cfg


def make_plan(
    config_path_or_cfg,
    n: int,
    seed: int,
    backend: str = "pyrender",
    backend_opts: dict | None = None,
    scene_builder: SceneBuilder | None = None,
    categories: Sequence[str] | CategoryLister | None = None,
) -> RunPlan:
    cfg = load_config(config_path_or_cfg)
    for name, value, low in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(name, f"must be an integer >= {low}, got {value!r}")
    from synth.render import BACKENDS

    if backend not in BACKENDS:
        raise ConfigError(
            "backend", f"unknown backend '{backend}' (choose from {', '.join(sorted(BACKENDS))})"
        )
    catalog = Catalog(cfg.catalog.root)
    if categories is None:
        if scene_builder is not None:
            raise ConfigError("categories", "a custom scene builder needs an explicit category list")
        from synth.randomize import target_categories

        names = list(target_categories(cfg, catalog))
    elif callable(categories):
        names = list(categories(cfg, catalog))
    else:
        names = list(categories)
    if cfg.catalog.class_agnostic:
        names = [cfg.catalog.class_agnostic]
    names = sorted(set(names))  # COCO ids = 1 + position in name order, whatever order they came in
    if not names:
        raise ConfigError("categories", "the dataset would have no categories")
    opts = json.loads(json.dumps(backend_opts or {}, sort_keys=True))
    return RunPlan(cfg, int(n), int(seed), backend, opts, tuple(names), scene_builder)


# ---- one image ----------------------------------------------------------------------------------------
@dataclass
class ImageResult:
    index: int
    image: dict  # COCO image entry
    annotations: list[dict]  # without id
    dropped: list[dict]
    timings: dict[str, float] = field(default_factory=dict)


def render_image(plan: RunPlan, backend, catalog: Catalog, index: int, shard_dir: Path) -> ImageResult:
    """Scene -> render -> annotate -> encode -> write, for image ``index`` into ``shard_dir``."""
    import cv2

    out_cfg = plan.cfg.output
    t0, c0 = time.perf_counter(), time.process_time()
    scene = plan.build(catalog, index)
    cam = scene.camera
    if (cam.width, cam.height) != (plan.cfg.image.width, plan.cfg.image.height):
        raise ConfigError(
            "scene builder",
            f"image {index} is {cam.width}x{cam.height}, the config says "
            f"{plan.cfg.image.width}x{plan.cfg.image.height}",
        )
    t1, c1 = time.perf_counter(), time.process_time()
    frame = backend.render(scene)
    t2, c2 = time.perf_counter(), time.process_time()
    result = annotate(frame, scene, plan.cfg.annotation, plan.categories)
    t3, c3 = time.perf_counter(), time.process_time()

    stem = image_stem(index)
    rel = Path(SHARDS_DIR) / shard_dir.name
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
    t4, c4 = time.perf_counter(), time.process_time()
    for name, data in files.items():
        _write_file(shard_dir / name, data)
    t5, c5 = time.perf_counter(), time.process_time()

    image = {
        "id": index + 1,
        "file_name": f"{rel.as_posix()}/images/{stem}.{out_cfg.image_format}",
        "width": cam.width,
        "height": cam.height,
    }
    if out_cfg.write_depth:
        image["depth_file"] = f"{rel.as_posix()}/depth/{stem}.png"
    image["scene_file"] = f"{rel.as_posix()}/scenes/{stem}.json"
    # wall seconds per stage, and CPU seconds of the worker process (all its threads, e.g. llvmpipe's):
    # on a shared machine the CPU figures say what the work costs, the wall figures what it took
    timings = {
        "scene": t1 - t0,
        "render": t2 - t1,
        "annotate": t3 - t2,
        "encode": t4 - t3,
        "write": t5 - t4,
        "cpu.scene": c1 - c0,
        "cpu.render": c2 - c1,
        "cpu.annotate": c3 - c2,
        "cpu.encode": c4 - c3,
        "cpu.write": c5 - c4,
    }
    for k, v in frame.timings.items():
        timings[f"backend.{k}"] = v
    return ImageResult(index, image, result.annotations, result.dropped, timings)


def _write_file(path: Path, data: bytes) -> None:
    """Temp file + rename (no fsync per image: a shard is fsynced once before its coco.json)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ---- one shard ----------------------------------------------------------------------------------------
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
        "categories": _categories(plan.categories),
        "dropped": dropped,
    }


def _categories(names: Sequence[str]) -> list[dict]:
    return [{"id": i, "name": name, "supercategory": "object"} for name, i in category_ids(names).items()]


def _finish_shard(plan: RunPlan, shard: int, shard_dir: Path, results: list[ImageResult]) -> None:
    expected = list(plan.shard_indices(shard))
    got = sorted(r.index for r in results)
    if got != expected:
        raise SimrealError(shard_dir, f"shard has images {got[:3]}... but expects {expected[:3]}...")
    timings = {"images": len(results), "seconds": _sum_timings(r.timings for r in results)}
    atomic_write_json(shard_dir / SHARD_TIMINGS, timings)
    _fsync_tree(shard_dir)
    atomic_write_json(shard_dir / SHARD_COCO, _shard_coco(plan, shard, results), indent=None)


def _sum_timings(items) -> dict[str, float]:
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


def _new_shard_dir(out_dir: Path, shard: int) -> Path:
    d = Path(out_dir) / SHARDS_DIR / shard_name(shard)
    if d.exists():
        shutil.rmtree(d)
    for sub in ("images", "depth", "scenes"):
        (d / sub).mkdir(parents=True)
    return d


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
    process, not in one that will import torchvision afterwards. Call ``merge_shards(out_dir)`` when
    every shard is done."""
    plan = make_plan(config_path_or_cfg, n, seed, backend, backend_opts, scene_builder, categories)
    out_dir = Path(out_dir)
    prepare_output(plan, out_dir)
    if not 0 <= shard_index < plan.num_shards:
        raise ConfigError("shard_index", f"{shard_index} is outside 0..{plan.num_shards - 1}")
    if _shard_done(plan, out_dir, shard_index):
        return out_dir / SHARDS_DIR / shard_name(shard_index)
    shard_dir = _new_shard_dir(out_dir, shard_index)
    catalog = Catalog(plan.cfg.catalog.root)
    be = (
        backend_instance if backend_instance is not None else process_backend(plan.backend, plan.backend_opts)
    )
    results = [render_image(plan, be, catalog, i, shard_dir) for i in plan.shard_indices(shard_index)]
    _finish_shard(plan, shard_index, shard_dir, results)
    return shard_dir


_PROCESS_BACKENDS: dict = {}


def process_backend(name: str, opts: dict):
    """This process's backend for (name, opts), created on first use and kept for the process's life
    (a GL context / Blender session per process, reused by every shard the process renders)."""
    key = (name, json.dumps(opts, sort_keys=True))
    be = _PROCESS_BACKENDS.get(key)
    if be is None:
        from synth.render import get_backend

        be = _PROCESS_BACKENDS[key] = get_backend(name, **opts)
    return be


# ---- run directory state ------------------------------------------------------------------------------
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
        for key in ("format_version", "config_hash", "seed", "n", "backend", "backend_opts", "categories"):
            if have.get(key) != want[key]:
                raise ConfigError(
                    out_dir,
                    f"holds a dataset with a different {key} ({have.get(key)!r}, now "
                    f"{want[key]!r}); use another --out or delete it",
                )
        return
    if any(out_dir.iterdir()):
        raise ConfigError(out_dir, "exists, is not empty and is not a simreal dataset; use another --out")
    atomic_write_json(run_file, want)


def _shard_done(plan: RunPlan, out_dir: Path, shard: int) -> bool:
    coco = out_dir / SHARDS_DIR / shard_name(shard) / SHARD_COCO
    if not coco.is_file():
        return False
    try:
        info = json.loads(coco.read_text())["info"]
    except (OSError, ValueError, KeyError):
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
        if not _shard_done(plan, out_dir, s):
            d = shards_root / shard_name(s)
            if d.exists():
                shutil.rmtree(d)
            todo.append(s)
    for stray in out_dir.glob(".*.tmp"):
        stray.unlink(missing_ok=True)
    return todo


# ---- worker processes ---------------------------------------------------------------------------------
_WORKER: dict = {}


def _worker_init(plan: RunPlan, workers: int) -> None:
    """Runs once in each spawned worker: thread limits first, then the one backend of this process."""
    cpus = os.cpu_count() or 1
    os.environ.setdefault("LP_NUM_THREADS", str(max(1, cpus // max(1, workers))))  # llvmpipe threads
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import cv2

    cv2.setNumThreads(1)
    from synth.render import get_backend

    t = time.perf_counter()
    _WORKER["plan"] = plan
    _WORKER["catalog"] = Catalog(plan.cfg.catalog.root)
    opts = dict(plan.backend_opts)
    if plan.backend == "cycles":  # share the cores instead of every worker's Cycles using all of them
        opts.setdefault("threads", max(1, cpus // max(1, workers)))
    _WORKER["backend"] = get_backend(plan.backend, **opts)
    _WORKER["init_s"] = time.perf_counter() - t


def _worker_task(shard: int, indices: list[int], shard_dir: str) -> list[ImageResult] | dict:
    """Render some images of one shard. SimrealErrors come back as data (they do not pickle)."""
    plan, catalog, backend = _WORKER["plan"], _WORKER["catalog"], _WORKER["backend"]
    results = []
    for i in indices:
        try:
            results.append(render_image(plan, backend, catalog, i, Path(shard_dir)))
        except SimrealError as e:
            return {"error": type(e).__name__, "where": e.where, "problem": e.problem, "index": i}
    return results


def _raise_worker_error(err: dict) -> None:
    cls = getattr(_errors, err["error"], SimrealError)
    if not (isinstance(cls, type) and issubclass(cls, SimrealError)):
        cls = SimrealError
    raise cls(err["where"], f"{err['problem']} (image {err['index']})")


def render_dataset(
    config_path_or_cfg,
    n: int,
    out_dir: str | Path,
    seed: int = 0,
    workers: int = 1,
    backend: str = "pyrender",
    backend_opts: dict | None = None,
    *,
    scene_builder: SceneBuilder | None = None,
    categories: Sequence[str] | CategoryLister | None = None,
    progress: bool = True,
) -> Path:
    """Render ``n`` images of a config into ``out_dir`` with ``workers`` processes; resume if interrupted.

    Returns the path of the merged ``annotations.json``."""
    t_start = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("workers", f"must be an integer >= 1, got {workers!r}")
    plan = make_plan(config_path_or_cfg, n, seed, backend, backend_opts, scene_builder, categories)
    out_dir = Path(out_dir)
    prepare_output(plan, out_dir)
    todo = clean_partial(plan, out_dir)
    run_info = {
        "workers": workers,
        "shards_rendered": len(todo),
        "shards_reused": plan.num_shards - len(todo),
        "images_rendered": sum(len(plan.shard_indices(s)) for s in todo),
    }
    if todo:
        run_info.update(_render_shards(plan, out_dir, todo, workers, progress))
    path = merge_shards(out_dir)
    run_info["wall_s"] = round(time.perf_counter() - t_start, 3)
    run_info["images_per_s"] = (
        round(run_info["images_rendered"] / run_info["wall_s"], 3) if run_info["images_rendered"] else None
    )
    add_run_info(out_dir, run_info)
    return path


def _render_shards(plan: RunPlan, out_dir: Path, todo: list[int], workers: int, progress: bool) -> dict:
    """Fan the images of the unfinished shards out to worker processes; finish each shard when complete.

    Work is split into chunks of a few consecutive images (not whole shards) so that every worker stays
    busy whatever the shard size; a shard's coco.json is written by this process once all its images are in.
    Returns timing facts: seconds until the first results (worker start-up + first images) and the
    throughput after that ("steady")."""
    from tqdm import tqdm

    n_images = sum(len(plan.shard_indices(s)) for s in todo)
    workers = min(workers, n_images)
    chunk = max(1, min(plan.shard_size, math.ceil(n_images / (workers * 4)), 8))
    shard_dirs = {s: _new_shard_dir(out_dir, s) for s in todo}
    pending_per_shard = {s: len(plan.shard_indices(s)) for s in todo}
    results: dict[int, list[ImageResult]] = {s: [] for s in todo}
    tasks = []
    for s in todo:
        idx = list(plan.shard_indices(s))
        tasks += [(s, idx[k : k + chunk]) for k in range(0, len(idx), chunk)]

    ctx = multiprocessing.get_context("spawn")
    bar = tqdm(total=n_images, desc="render", unit="img", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(plan, workers)
        ) as pool:
            futures = {pool.submit(_worker_task, s, idx, str(shard_dirs[s])): (s, idx) for s, idx in tasks}
            first_done = None
            first_images = 0
            try:
                remaining = set(futures)
                while remaining:
                    done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in done:
                        s, idx = futures[fut]
                        out = fut.result()
                        if isinstance(out, dict):
                            _raise_worker_error(out)
                        if first_done is None:
                            first_done = time.perf_counter() - t0
                            first_images = len(out)
                        results[s].extend(out)
                        pending_per_shard[s] -= len(out)
                        bar.update(len(out))
                        if pending_per_shard[s] == 0:
                            _finish_shard(plan, s, shard_dirs[s], results.pop(s))
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    except BrokenProcessPool:
        raise SimrealError(
            out_dir, "a render worker died (crash or out of memory); re-run the same command to resume"
        ) from None
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    steady = (n_images - first_images) / (elapsed - first_done) if n_images > first_images else None
    return {
        "render_s": round(elapsed, 3),
        "first_results_s": round(first_done or 0.0, 3),
        "steady_images_per_s": round(steady, 3) if steady else None,
    }


# ---- merge ----------------------------------------------------------------------------------------------
def merge_shards(out_dir: str | Path) -> Path:
    """Merge every finished shard of ``out_dir`` into annotations.json and manifest.json (atomically)."""
    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    if not run_file.is_file():
        raise ConfigError(out_dir, "is not a simreal dataset (no run.json)")
    run = json.loads(run_file.read_text())
    n, size = run["n"], run["shard_size"]
    num_shards = math.ceil(n / size)
    images, annotations, dropped = [], [], []
    timing_sum: dict[str, float] = {}
    timed = 0
    for s in range(num_shards):
        shard_dir = out_dir / SHARDS_DIR / shard_name(s)
        coco_path = shard_dir / SHARD_COCO
        if not coco_path.is_file():
            raise ConfigError(shard_dir, "shard is not finished; run the render command again to complete it")
        coco = json.loads(coco_path.read_text())
        if coco["info"]["config_hash"] != run["config_hash"]:
            raise ConfigError(coco_path, "belongs to a different config than run.json")
        images += coco["images"]
        for a in coco["annotations"]:
            annotations.append({**a, "id": len(annotations) + 1})
        dropped += coco.get("dropped", [])
        tpath = shard_dir / SHARD_TIMINGS
        if tpath.is_file():
            t = json.loads(tpath.read_text())
            timed += t.get("images", 0)
            for k, v in t.get("seconds", {}).items():
                timing_sum[k] = timing_sum.get(k, 0.0) + v
    if len(images) != n or len({im["id"] for im in images}) != n:
        raise ConfigError(out_dir, f"shards hold {len(images)} images, run.json expects {n}")

    categories = _categories(run["categories"])
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
        "categories": categories,
    }
    ann_path = out_dir / ANNOTATIONS_FILE
    atomic_write_json(ann_path, coco, indent=None)
    atomic_write_json(
        out_dir / MANIFEST_FILE,
        _manifest(
            run, images, annotations, dropped, categories, timing_sum, timed, _previous_run_info(out_dir)
        ),
    )
    return ann_path


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


_add_run_info = add_run_info  # the name flows/render.py imports


def _manifest(run: dict, images, annotations, dropped, categories, timing_sum, timed, last_run) -> dict:
    names = {c["id"]: c["name"] for c in categories}
    per_class = {c["name"]: 0 for c in categories}
    per_image = np.zeros(len(images), dtype=np.int64)
    first_id = min((im["id"] for im in images), default=1)
    for a in annotations:
        per_class[names[a["category_id"]]] += 1
        per_image[a["image_id"] - first_id] += 1
    by_reason: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for d in dropped:
        by_reason[d["reason"]] = by_reason.get(d["reason"], 0) + 1
        by_class[d["category"]] = by_class.get(d["category"], 0) + 1
    stage_ms = {k: round(1000 * v / timed, 3) for k, v in sorted(timing_sum.items())} if timed else {}
    per_image_total = sum(stage_ms.get(s, 0.0) for s in STAGES)
    return {
        "format_version": FORMAT_VERSION,
        "config_hash": run["config_hash"],
        "seed": run["seed"],
        "n": run["n"],
        "shard_size": run["shard_size"],
        "backend": run["backend"],
        "backend_opts": run["backend_opts"],
        "image_format": run["image_format"],
        "config": run["config"],
        "versions": package_versions(),
        "categories": categories,
        "counts": {
            "images": len(images),
            "annotations": len(annotations),
            "per_category": per_class,
            "objects_per_image": {
                "mean": round(float(per_image.mean()), 4) if len(images) else 0.0,
                "max": int(per_image.max()) if len(images) else 0,
                "images_without_objects": int((per_image == 0).sum()),
            },
        },
        "dropped": {
            "total": len(dropped),
            "by_reason": dict(sorted(by_reason.items())),
            "by_category": dict(sorted(by_class.items())),
            "objects": dropped,
        },
        # measurements (not part of the reproducible dataset): mean milliseconds per image and stage,
        # over the images of every shard, from whichever run rendered that shard
        "timings": {
            "images_timed": timed,
            "ms_per_image": stage_ms,
            "ms_per_image_total": round(per_image_total, 3),
            "annotate_fraction": round(stage_ms.get("annotate", 0.0) / per_image_total, 4)
            if per_image_total
            else None,
            "last_run": last_run,
        },
    }


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ---- validation ---------------------------------------------------------------------------------------
def validate_coco(path: str | Path, check_files: bool = True) -> dict:
    """Load a COCO file with pycocotools and check the invariants every simreal dataset keeps.

    Raises CocoValidationError (one line) on: unreadable JSON / pycocotools failure, category id 0 or
    duplicate ids, duplicate image or annotation ids, dangling image/category references, empty or
    zero-area annotations, RLE whose size or area disagrees with the image / ``area``, missing files.
    Returns counts {"images", "annotations", "categories"}."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    path = Path(path)

    def fail(problem: str):
        raise CocoValidationError(path, problem)

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(f"cannot read JSON ({e.__class__.__name__})")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            fail(f"missing '{key}' list")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            COCO(str(path))
    except Exception as e:  # pycocotools asserts / KeyErrors on malformed files
        fail(f"pycocotools cannot load it ({e.__class__.__name__}: {str(e)[:80]})")

    cat_ids = [c.get("id") for c in data["categories"]]
    if any(not isinstance(c, int) or c < 1 for c in cat_ids):
        fail("category ids must be integers >= 1 (found 0 or invalid)")
    if len(set(cat_ids)) != len(cat_ids):
        fail("duplicate category ids")
    images = {}
    for im in data["images"]:
        if im.get("id") in images:
            fail(f"duplicate image id {im.get('id')}")
        images[im.get("id")] = im
        if check_files and not (path.parent / im["file_name"]).is_file():
            fail(f"image file {im['file_name']} does not exist")
    seen = set()
    cats = set(cat_ids)
    for a in data["annotations"]:
        aid = a.get("id")
        if aid in seen:
            fail(f"duplicate annotation id {aid}")
        seen.add(aid)
        if a.get("image_id") not in images:
            fail(f"annotation {aid} refers to missing image {a.get('image_id')}")
        if a.get("category_id") not in cats:
            fail(f"annotation {aid} has unknown category {a.get('category_id')}")
        if not a.get("area", 0) > 0:
            fail(f"annotation {aid} has zero area")
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and bbox[2] > 0 and bbox[3] > 0):
            fail(f"annotation {aid} has an empty bbox {bbox}")
        seg = a.get("segmentation")
        if isinstance(seg, dict):
            im = images[a["image_id"]]
            if list(seg.get("size", [])) != [im["height"], im["width"]]:
                fail(f"annotation {aid}: RLE size {seg.get('size')} is not the image size")
            rle = {
                "size": seg["size"],
                "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"],
            }
            if isinstance(seg["counts"], list):
                rle = mask_utils.frPyObjects(seg, *seg["size"])
            area = int(mask_utils.area(rle))
            if area == 0:
                fail(f"annotation {aid} has an empty mask")
            if area != a["area"]:
                fail(f"annotation {aid}: mask has {area} pixels but area says {a['area']}")
            box = [float(v) for v in mask_utils.toBbox(rle)]
            if any(abs(x - y) > 1e-6 for x, y in zip(box, bbox, strict=True)):
                fail(f"annotation {aid}: bbox {bbox} does not match its mask {box}")
        elif not seg:
            fail(f"annotation {aid} has no segmentation")
    return {"images": len(images), "annotations": len(seen), "categories": len(cats)}
