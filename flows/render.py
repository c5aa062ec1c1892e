"""The ``render-dataset`` flow: one task per shard, run in worker processes or on a Dask cluster.

Shards are the unit of reuse: a shard whose ``coco.json`` exists was rendered by the same (config hash,
seed) — the writer checks that — so a re-run submits only the missing shards, and a retried shard starts
from an empty directory, never duplicating images. Tasks never run on Prefect's thread pool: bpy and EGL
are not thread-safe (../shared/STACK.md).
"""

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner

from flows.params import RenderParams


@task(name="render-shard", retries=2, retry_delay_seconds=2, task_run_name="render-shard-{shard}")
def render_shard_task(cfg, shard: int, n: int, out: str, seed: int, backend: str, backend_opts: dict) -> dict:
    from synth.writer import render_shard

    t = time.perf_counter()
    shard_dir = render_shard(cfg, shard, n, out, seed, backend, backend_opts)
    return {"shard": shard, "dir": str(shard_dir), "seconds": round(time.perf_counter() - t, 2)}


def shard_task_runner(params: RenderParams):
    """Worker processes locally; the Dask cluster at ``dask_address`` when given."""
    if params.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=params.dask_address)
    return ProcessPoolTaskRunner(max_workers=params.workers)


@flow(name="render-dataset", log_prints=True, task_runner=ProcessPoolTaskRunner(max_workers=2))
def render_dataset(params: RenderParams) -> dict:
    """Render ``params.n`` images into ``params.out``; returns a summary with the annotations path.

    The task runner is chosen by the caller (``render_dataset.with_options(task_runner=...)``); see
    ``run_render`` for the usual entry point."""
    from synth.writer import _add_run_info, clean_partial, make_plan, merge_shards, prepare_output

    logger = get_run_logger()
    t0 = time.perf_counter()
    cfg = params.load_config()
    out = Path(params.out).resolve()
    plan = make_plan(cfg, params.n, params.seed, params.backend, params.backend_opts)
    prepare_output(plan, out)
    todo = clean_partial(plan, out)
    logger.info(
        "render %d images in %d shards: %d to render, %d reused (config %s, seed %d, backend %s)",
        plan.n,
        plan.num_shards,
        len(todo),
        plan.num_shards - len(todo),
        plan.config_hash,
        plan.seed,
        plan.backend,
    )
    progress = create_progress_artifact(
        progress=0.0 if todo else 100.0, key="render-progress", description=f"render {out.name}: shards done"
    )
    futures = [
        render_shard_task.submit(cfg, s, plan.n, str(out), plan.seed, plan.backend, plan.backend_opts)
        for s in todo
    ]
    done = 0
    for fut in as_completed(futures):
        fut.result()
        done += 1
        update_progress_artifact(progress, progress=100.0 * done / len(todo))
    annotations = merge_shards(out)
    summary = {
        "annotations": str(annotations),
        "out": str(out),
        "shards_total": plan.num_shards,
        "shards_rendered": len(todo),
        "shards_reused": plan.num_shards - len(todo),
        "images_rendered": sum(len(plan.shard_indices(s)) for s in todo),
        "wall_s": round(time.perf_counter() - t0, 2),
        "task_runner": "dask" if params.dask_address else f"process-pool({params.workers})",
    }
    _add_run_info(out, summary)
    create_markdown_artifact(
        key="render-summary",
        markdown=(
            f"### Rendered `{out}`\n\n| shards | rendered | reused | images rendered | seconds |\n"
            f"|---|---|---|---|---|\n| {plan.num_shards} | {len(todo)} | {plan.num_shards - len(todo)} "
            f"| {summary['images_rendered']} | {summary['wall_s']} |\n"
        ),
        description="render-dataset summary",
    )
    return summary


def run_render(params: RenderParams) -> dict:
    """Run ``render-dataset`` with the task runner the parameters ask for."""
    return render_dataset.with_options(task_runner=shard_task_runner(params))(params)
