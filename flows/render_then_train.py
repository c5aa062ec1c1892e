"""The ``render-then-train`` flow: render a dataset, train on it, evaluate on real photos, publish the report.

Run it once in-process (ephemeral Prefect, no server) with ``simreal run``, or as a deployment:
``prefect deployment run render-then-train/local --watch`` (see flows/serve.py and scripts/deploy_local.sh).
"""

# No `from __future__ import annotations` in flow modules: a served deployment builds its parameter model
# from the real annotation objects, and string annotations leave it "not fully defined".
from pathlib import Path

from prefect import flow, get_run_logger

from flows.params import EvalSet, PipelineParams, RenderParams
from flows.render import run_render
from flows.training import evaluate_transfer, train_model
from synth.paths import shared_root

# The real photographed sets used when eval_sets is not given: (relative path, name). The models trained
# here are class-agnostic by default, so every set is scored class-agnostically.
DEFAULT_REAL_SETS = (
    ("real/retail/freiburg_dev", "freiburg_dev (real, retail)"),
    ("real/retail/ycbv_sample", "ycbv_sample (real, retail, masks)"),
)


def default_eval_sets() -> tuple[list[EvalSet], str]:
    """The real sets present in the shared folder, and a sentence saying what was found. The sentence names
    no machine path: it goes into the report, which is made to be shared."""
    root = shared_root()
    found = [(rel, name) for rel, name in DEFAULT_REAL_SETS if (root / rel / "annotations.json").is_file()]
    sets = [EvalSet(data=str(root / rel), name=name, class_agnostic=True) for rel, name in found]
    if sets:
        return sets, f"Evaluated on real photos from the shared folder: {', '.join(n for _, n in found)}."
    looked = " and ".join(f"`{rel}`" for rel, _ in DEFAULT_REAL_SETS)
    return [], (
        f"No real photos to evaluate on: neither {looked} is in the shared folder (`SIMREAL_SHARED`, by "
        "default `../shared` beside the repository), so these scores are on a held-out RENDERED set and say "
        "nothing about transfer to real photos."
    )


def heldout_params(render: RenderParams) -> RenderParams:
    """A rendered test set from the same config but disjoint seeds (never seen in training)."""
    out = Path(render.out)
    return render.model_copy(
        update={
            "n": max(20, render.n // 5),
            "seed": render.seed + 1_000_003,
            "out": str(out.with_name(out.name + "-heldout")),
        }
    )


@flow(name="render-then-train", log_prints=True)
def render_then_train(params: PipelineParams = PipelineParams()) -> dict:  # noqa: B008 (pydantic default)
    logger = get_run_logger()
    rendered = run_render(params.render)
    logger.info(
        "dataset: %s (%d shards rendered, %d reused)",
        rendered["annotations"],
        rendered["shards_rendered"],
        rendered["shards_reused"],
    )

    eval_sets, note = (params.eval_sets, "") if params.eval_sets is not None else default_eval_sets()
    if not eval_sets:
        heldout = run_render(heldout_params(params.render))
        eval_sets = [
            EvalSet(data=heldout["annotations"], name="heldout (rendered)", class_agnostic=True, note=note)
        ]
    if note:
        logger.info(note)

    run_dir = train_model(params.train, rendered["out"])
    evaluation = evaluate_transfer(run_dir, eval_sets, note=note)
    return {"dataset": rendered, "run_dir": run_dir, "note": note, **evaluation}
