"""Render a dataset: the one orchestrator, ``run_shards``, and the CLI's process-pool entry point.

``run_shards(plan, out, submit)`` takes the output folder's lock, checks or writes run.json, deletes
unfinished shards, fans the images of the missing shards out, writes each shard's coco.json as soon as
all its images are back, merges, and records facts about the run in the manifest. What runs the work is
the caller's:

- ``submit(fn, *args) -> future``: run ``fn(*args)`` in a worker PROCESS (never a thread of this one:
  bpy and EGL are not thread-safe, and this process never creates a GL context). ``fn`` is
  ``worker.render_images``; it returns a list of ``ImageResult``.
- ``as_completed(futures)``: yields the futures as they finish; ``future.result()`` returns the value or
  raises the worker's exception. ``concurrent.futures.as_completed`` by default;
  ``prefect.futures.as_completed`` for Prefect task futures.

``render_dataset`` gives it a pool of spawned processes and cuts the work into chunks of a few images
so that every worker stays busy whatever the shard size; the Prefect flow (flows/render.py) gives it
task submission, one task per shard, and adds retries and artifacts.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.dataset.image import ImageResult
from synth.dataset.lock import output_lock
from synth.dataset.merge import add_run_info, merge_shards
from synth.dataset.plan import CategoryLister, RunPlan, SceneBuilder, make_plan
from synth.dataset.shard import clean_partial, finish_shard, new_shard_dir, prepare_output
from synth.dataset.worker import init_worker, render_images
from synth.errors import ConfigError, SimrealError

Submit = Callable[..., Any]  # submit(fn, *args) -> a future with .result()
AsCompleted = Callable[[list], Iterable]
MAX_CHUNK = 8  # images per unit of work when work is cut for a process pool


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands; given to the progress callback before the fan-out and after each unit of work."""

    shards_total: int
    shards_todo: int
    images_todo: int
    images_done: int

    @property
    def percent(self) -> float:
        return 100.0 * self.images_done / self.images_todo if self.images_todo else 100.0


@dataclass(frozen=True)
class RunResult:
    annotations: Path  # the merged annotations.json
    info: dict  # what was recorded as the manifest's timings.last_run


def run_shards(
    plan: RunPlan,
    out: str | Path,
    submit: Submit,
    *,
    as_completed: AsCompleted = concurrent.futures.as_completed,
    workers: int | None = None,
    progress: Callable[[RunProgress], None] | None = None,
    labels: dict | None = None,
) -> RunResult:
    """Render whatever ``out`` still lacks of ``plan``, merge, record; see the module docstring.

    ``workers``: how many workers ``submit`` feeds; given, the work is cut into chunks of a few images so
    they all stay busy, else each shard is one unit. ``labels``: facts to record first in the manifest's
    ``timings.last_run`` (e.g. the worker count or task runner)."""
    t_start = time.perf_counter()
    out = Path(out)
    with output_lock(out):
        prepare_output(plan, out)
        todo = clean_partial(plan, out)
        info = {
            **(labels or {}),
            "shards_rendered": len(todo),
            "shards_reused": plan.num_shards - len(todo),
            "images_rendered": plan.images_in(todo),
        }
        if todo:
            units = _work_units(plan, todo, workers)
            info.update(_fan_out(plan, out, units, submit, as_completed, progress, workers or 1))
        elif progress is not None:
            progress(RunProgress(plan.num_shards, 0, 0, 0))
        path = merge_shards(out)
        info["wall_s"] = round(time.perf_counter() - t_start, 3)
        rendered = info["images_rendered"]
        info["images_per_s"] = round(rendered / info["wall_s"], 3) if rendered else None
        add_run_info(out, info)
    return RunResult(path, info)


def _work_units(plan: RunPlan, todo: list[int], workers: int | None) -> list[tuple[int, list[int]]]:
    """(shard, image indices) pairs: whole shards, or chunks of a few images to keep ``workers`` busy."""
    n_images = plan.images_in(todo)
    chunk = plan.shard_size
    if workers is not None:
        chunk = max(1, min(plan.shard_size, math.ceil(n_images / (min(workers, n_images) * 4)), MAX_CHUNK))
    units = []
    for s in todo:
        idx = list(plan.shard_indices(s))
        units += [(s, idx[k : k + chunk]) for k in range(0, len(idx), chunk)]
    return units


def _fan_out(plan, out: Path, units, submit, as_completed, progress, workers: int = 1) -> dict:
    """Submit every unit, finish each shard when its last images are back. Returns timing facts: seconds
    until the first results (worker start-up + first images) and the throughput once every worker is
    delivering ("steady": counted from the ``workers``-th returned unit, when each has likely sent one;
    counted from the first, the other workers' nearly finished units would inflate it)."""
    shards = sorted({s for s, _ in units})
    shard_dirs = {s: new_shard_dir(out, s) for s in shards}
    pending = {s: len(plan.shard_indices(s)) for s in shards}
    results: dict[int, list[ImageResult]] = {s: [] for s in shards}
    n_images, done = sum(pending.values()), 0
    report = progress or (lambda _: None)
    report(RunProgress(plan.num_shards, len(shards), n_images, 0))
    t0 = time.perf_counter()
    futures: dict = {}  # future -> shard
    returned: list[tuple[float, int]] = []  # (seconds since the fan-out, images done) per returned unit
    try:
        for s, idx in units:
            futures[submit(render_images, plan, str(out), s, idx)] = s
        for fut in as_completed(list(futures)):
            s, got = futures[fut], fut.result()
            back = time.perf_counter() - t0
            results[s].extend(got)
            pending[s] -= len(got)
            if pending[s] == 0:
                finish_shard(plan, s, shard_dirs[s], results.pop(s))
            done += len(got)
            returned.append((back, done))
            report(RunProgress(plan.num_shards, len(shards), n_images, done))
    except BaseException:
        _drain(list(futures), as_completed)
        raise
    elapsed = time.perf_counter() - t0
    steady = None
    if len(returned) > workers:
        t_warm, done_warm = returned[workers - 1]
        if elapsed > t_warm:
            steady = (n_images - done_warm) / (elapsed - t_warm)
    return {
        "render_s": round(elapsed, 3),
        "first_results_s": round(returned[0][0], 3),
        "steady_images_per_s": round(steady, 3) if steady else None,
    }


def _drain(futures: list, as_completed: AsCompleted) -> None:
    """After a failure: cancel the work that has not started and wait for the rest, so that no worker
    writes into the folder once its lock is released. Their results and errors are dropped."""
    for fut in futures:
        if hasattr(fut, "cancel"):
            fut.cancel()
    for _ in as_completed(futures):
        pass


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
    """Render ``n`` images of a config into ``out_dir`` with ``workers`` spawned processes; resume if
    interrupted. Returns the path of the merged ``annotations.json``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("workers", f"must be an integer >= 1, got {workers!r}")
    plan = make_plan(config_path_or_cfg, n, seed, backend, backend_opts, scene_builder, categories)
    bar = _ProgressBar(enabled=progress)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(workers,),
    )
    try:
        result = run_shards(
            plan, out_dir, pool.submit, workers=workers, progress=bar, labels={"workers": workers}
        )
    except BrokenProcessPool:
        raise SimrealError(
            out_dir, "a render worker died (crash or out of memory); re-run the same command to resume"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return result.annotations


class _ProgressBar:
    """A tqdm bar over the images to render, made when their number is known."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, p: RunProgress) -> None:
        if p.images_todo == 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=p.images_todo, desc="render", unit="img", disable=not self.enabled, dynamic_ncols=True
            )
        self.bar.update(p.images_done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
