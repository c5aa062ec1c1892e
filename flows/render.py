"""The ``render-dataset`` flow: ``synth.dataset.run_shards`` with Prefect's task runner as its workers.

One task per shard, run in worker processes or on a Dask cluster, with retries; progress and a summary
as artifacts. Everything else (which shards to render, resume, merge, the output lock) is run_shards'.
Tasks never run on Prefect's thread pool: bpy and EGL are not thread-safe (../shared/STACK.md).
"""

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner

from flows.env import api_shared_with_workers
from flows.outputs import dataset_key, held_dataset_key, keyed_folder
from flows.params import RenderParams


@task(name="render-shard", retries=2, retry_delay_seconds=2, task_run_name="render-shard-{shard}")
def render_shard_task(render, plan, out: str, shard: int, indices: list[int]) -> list:
    """``render(plan, out, shard, indices)`` in a task-runner worker: a shard's images. A retry renders
    them again over the same files (each is replaced atomically)."""
    return render(plan, out, shard, indices)


def shard_task_runner(params: RenderParams):
    """Worker processes locally, sharing the cores (``init_worker``: without it each worker's llvmpipe
    started a thread per core); the Dask cluster at ``dask_address`` when given."""
    if params.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=params.dask_address)
    from synth.dataset.worker import init_worker

    return ProcessPoolTaskRunner(
        max_workers=params.workers, initializer=init_worker, initargs=(params.workers, False)
    )


class ShardProgressArtifact:
    """run_shards' progress callback: logs the plan once, then keeps a progress artifact up to date."""

    def __init__(self, plan, out: Path):
        self.plan, self.out, self.artifact = plan, out, None

    def __call__(self, p) -> None:
        if self.artifact is None:
            get_run_logger().info(
                "render %d images in %d shards: %d to render, %d reused (config %s, seed %d, backend %s)",
                self.plan.n,
                p.shards_total,
                p.shards_todo,
                p.shards_total - p.shards_todo,
                self.plan.config_hash,
                self.plan.seed,
                self.plan.backend,
            )
            self.artifact = create_progress_artifact(
                progress=p.percent, key="render-progress", description=f"render {self.out.name}: images done"
            )
        else:
            update_progress_artifact(self.artifact, progress=p.percent)


def render_plan_as_tasks(plan, asked: Path, runner: str):
    """Render ``plan``'s shards as Prefect tasks (with a progress artifact) into ``asked``, or into its
    kept-apart sibling when ``asked`` holds another dataset; returns run_shards' result and the folder."""
    from synth.dataset import run_shards

    out = keyed_folder(asked, dataset_key(plan.identity()), held_dataset_key)
    if out != asked:
        get_run_logger().warning("%s holds another dataset: this one goes to %s", asked, out)
    result = run_shards(
        plan,
        out,
        render_shard_task.submit,
        as_completed=as_completed,
        progress=ShardProgressArtifact(plan, out),
        labels={"task_runner": runner},
    )
    return result, out


@flow(name="render-dataset", log_prints=True, task_runner=ProcessPoolTaskRunner(max_workers=2))
def render_dataset(params: RenderParams) -> dict:
    """Render ``params.n`` images into ``params.out`` (or, when that holds another dataset, into
    ``<out>-<hash>``: flows/outputs.py); returns a summary with the annotations path and the folder.

    The task runner is chosen by the caller (``render_dataset.with_options(task_runner=...)``); see
    ``run_render`` for the usual entry point."""
    from synth.dataset import make_plan

    plan = make_plan(params.load_config(), params.n, params.seed, params.backend, params.backend_opts)
    runner = "dask" if params.dask_address else f"process-pool({params.workers})"
    result, out = render_plan_as_tasks(plan, Path(params.out).resolve(), runner)
    info = result.info
    summary = {
        "annotations": str(result.annotations),
        "out": str(out),
        "shards_total": plan.num_shards,
        **{k: info[k] for k in ("shards_rendered", "shards_reused", "images_rendered", "wall_s")},
        "task_runner": runner,
    }
    create_markdown_artifact(
        key="render-summary",
        markdown=(
            f"### Rendered `{out}`\n\n| shards | rendered | reused | images rendered | seconds |\n"
            f"|---|---|---|---|---|\n| {plan.num_shards} | {info['shards_rendered']} | "
            f"{info['shards_reused']} | {info['images_rendered']} | {info['wall_s']} |\n"
        ),
        description="render-dataset summary",
    )
    return summary


def run_render(params: RenderParams) -> dict:
    """Run ``render-dataset`` with the task runner the parameters ask for; local workers use this
    process's Prefect API (``api_shared_with_workers``) instead of starting their own."""
    flow_run = render_dataset.with_options(task_runner=shard_task_runner(params))
    if params.dask_address:  # a remote cluster's workers cannot reach a server on this machine's 127.0.0.1
        return flow_run(params)
    with api_shared_with_workers():
        return flow_run(params)
