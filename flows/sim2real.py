"""The ``sim2real-benchmark`` flow: the protocol of ``bench.sim2real`` (variants, budgets, splits, ratios)
run under Prefect. This module only decorates its steps as tasks and flows and wires them in; see
``bench/sim2real/__init__.py`` for what the benchmark does and the output folder it writes."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, task

from bench.sim2real.catalogs import prepare_catalog
from bench.sim2real.protocol import Runners, run_protocol
from bench.sim2real.real_sets import check_real_sets, prepare_real_sets
from bench.sim2real.scales import Sim2RealParams, parse_params
from bench.sim2real.synthetic import RenderJob
from bench.sim2real.training import evaluate_on_test
from train.config import TrainConfig


@flow(name="train-variant", log_prints=False)  # COCOeval prints its tables
def train_variant(cfg: TrainConfig) -> str:
    """Train one variant's config (``train.engine``), mirroring its log into a Prefect progress artifact."""
    from flows.training import _TrainingProgress
    from train.engine import train

    with _TrainingProgress(Path(cfg.out), cfg.steps):
        return str(train(cfg))


def render_set(job: RenderJob) -> dict:
    """Render through the ``render-dataset`` flow (one task per shard)."""
    from flows.params import RenderParams
    from flows.render import run_render

    return run_render(RenderParams(**asdict(job)))


PREFECT_RUNNERS = Runners(
    render=render_set,
    train=train_variant,
    evaluate=task(name="evaluate-variant", task_run_name="evaluate-{label}", log_prints=False)(
        evaluate_on_test  # COCOeval prints
    ),
    prepare_catalog=task(name="prepare-catalog")(prepare_catalog),
    prepare_real=task(name="prepare-real-sets")(prepare_real_sets),
)


@flow(name="sim2real-benchmark", log_prints=True)
def sim2real_benchmark(params: Sim2RealParams) -> dict:
    """Render, split, train every variant, evaluate on the real test split, write the JSON and the report.

    The protocol logs through the ``bench`` logger, which the CLI prints: Prefect's own run logger stays at
    the project's WARNING level."""
    if params.pretrain and params.pretrained is None:
        params = params.model_copy(update={"pretrained": pretrain_for(params)})
    return run_protocol(params, PREFECT_RUNNERS)


def pretrain_params(params: Sim2RealParams):
    """The ``simreal pretrain`` settings a benchmark run starts from: the defaults, for its model."""
    from flows.params import PretrainParams

    return PretrainParams(model=params.settings().model, device=params.device, workers=params.workers)


def pretrain_for(params: Sim2RealParams) -> dict:
    """``simreal pretrain``'s detector for this run's model (made now, or found in the cache)."""
    from flows.pretrain import pretrain_detector

    pre = pretrain_params(params)
    rec = pretrain_detector(pre)
    return {k: rec[k] for k in ("key", "checkpoint", "reused", "render_s", "train_s", "cost_s", "images")} | {
        "steps": pre.steps,
        "image_size": pre.image_size,
        "recipe": pre.config,
    }


def run_benchmark(task: str, scale: str = "smoke", out: str | None = None, **kwargs) -> dict:
    """Run the benchmark in this process through ephemeral Prefect; returns the summary (also sim2real.json).

    ``kwargs`` are further :class:`Sim2RealParams` fields (real_train, real_test, seed, variants, steps, ...)."""
    from flows.env import prepare_local_prefect

    prepare_local_prefect()
    params = parse_params(task, scale, out, **kwargs)
    check_real_sets(params)  # a missing real set or an impossible test fold fails here, before Prefect starts
    if params.pretrain and params.pretrained is None:
        pretrain_params(params).check()
    return sim2real_benchmark(params)
