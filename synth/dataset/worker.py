"""What runs in a render worker process: one backend per process, a list of images at a time.

A backend owns a GL context or a Blender session, which are neither thread-safe nor cheap, so each worker
process makes one on first use and keeps it for its life (``process_backend``); the orchestrating
process never makes one. ``render_images`` is the function orchestrators submit to their workers.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from pathlib import Path

from synth.catalog import Catalog
from synth.dataset.image import ImageResult, render_image
from synth.dataset.layout import shard_path
from synth.dataset.plan import RunPlan
from synth.errors import SimrealError

_PROCESS_BACKENDS: dict = {}
_THREAD_SHARE: dict[str, int] = {}  # set by init_worker: this process's share of the cores


def process_backend(name: str, opts: dict):
    """This process's backend for (name, opts), created on first use and kept for the process's life
    (a GL context / Blender session per process, reused by every shard the process renders)."""
    key = (name, json.dumps(opts, sort_keys=True))
    be = _PROCESS_BACKENDS.get(key)
    if be is None:
        from synth.render import get_backend

        be = _PROCESS_BACKENDS[key] = get_backend(name, **opts)
    return be


def init_worker(workers: int, quick_exit: bool = True) -> None:
    """Process-pool initializer: share the cores between ``workers`` processes instead of every worker's
    llvmpipe / Cycles / BLAS using all of them, and (``quick_exit``) leave without the interpreter's
    teardown. A pool whose processes also run other code (Prefect's task runner) keeps the teardown."""
    if quick_exit:
        atexit.register(_exit_without_teardown)
    share = max(1, (os.cpu_count() or 1) // max(1, workers))
    os.environ.setdefault("LP_NUM_THREADS", str(share))  # llvmpipe threads
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import cv2

    cv2.setNumThreads(1)
    _THREAD_SHARE["threads"] = share


def _exit_without_teardown() -> None:
    """A pool worker's last exit handler (registered first, so it runs after every handler registered
    since): flush the logs and standard streams, then end the process without the interpreter's teardown.
    Freeing every module and the GL context object by object cost a worker 0.35 s after its last image,
    which the run waited for (~4 % of an 80-image run on 2 cores); the OS reclaims it all at once. By then
    every file the worker wrote was closed (atomic writes) and every result sent. A pool worker's exit
    status is always 0 (the executor turns a task's exceptions, SystemExit included, into results), and a
    crash never gets here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


def plan_backend(plan: RunPlan):
    """This process's backend for ``plan`` (Cycles limited to the core share ``init_worker`` set)."""
    opts = dict(plan.backend_opts)
    if plan.backend == "cycles" and "threads" in _THREAD_SHARE and not opts.get("threads"):
        opts["threads"] = _THREAD_SHARE["threads"]  # 0 (all cores) in every worker would oversubscribe
    return process_backend(plan.backend, opts)


def render_images(plan: RunPlan, out_dir: str, shard: int, indices: list[int]) -> list[ImageResult]:
    """Render images ``indices`` of shard ``shard`` of the dataset in ``out_dir`` with this process's
    backend. A SimrealError names the image it happened on, and crosses the process boundary intact."""
    catalog = Catalog(plan.cfg.catalog.root)  # lazy: reads entries as scenes ask for them
    return render_with(plan, plan_backend(plan), catalog, indices, shard_path(Path(out_dir), shard))


def render_with(plan: RunPlan, backend, catalog: Catalog, indices, shard_dir: Path) -> list[ImageResult]:
    """Render images ``indices`` into ``shard_dir`` with a given backend."""
    from synth.prep_cache import STATS

    results = []
    for i in indices:
        before = STATS.seconds
        try:
            result = render_image(plan, backend, catalog, i, shard_dir)
        except SimrealError as e:
            raise type(e)(e.where, f"{e.problem} (image {i})") from None
        # per-SKU preparation (hulls, resting poses, render-ready geometry) this image needed first
        result.timings["scene.sku_prepare"] = STATS.seconds - before
        results.append(result)
    return results
