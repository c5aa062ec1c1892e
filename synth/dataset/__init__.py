"""Render a dataset into shards with worker processes, then merge them into one COCO file.

Modules, bottom up: ``layout`` (file names of a dataset directory), ``plan`` (what a run is),
``image`` (the per-image pipeline), ``worker`` (one backend per worker process), ``lock`` (one run per
folder), ``shard`` (shard state), ``merge`` (annotations.json + manifest.json), ``run`` (the one
orchestrator, ``run_shards``, and ``render_dataset`` on a process pool).
"""

from synth.dataset.lock import OutputBusyError
from synth.dataset.merge import add_run_info, merge_shards
from synth.dataset.plan import RunPlan, load_config, make_plan
from synth.dataset.run import RunProgress, RunResult, render_dataset, run_shards
from synth.dataset.shard import render_shard

__all__ = [
    "OutputBusyError",
    "RunPlan",
    "RunProgress",
    "RunResult",
    "add_run_info",
    "load_config",
    "make_plan",
    "merge_shards",
    "render_dataset",
    "render_shard",
    "run_shards",
]
