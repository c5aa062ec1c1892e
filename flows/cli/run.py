"""``simreal run``: the whole chain on one machine through ephemeral Prefect (no server needed)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from flows.cli import add_command, checked_params

_DEFAULT_TAIL = " (default: %(default)s)"
_DEFAULT = "default: %(default)s"

RUN_EPILOG = textwrap.dedent("""\
    examples:
      simreal run                                   # the embedded default (<= 20 min on 2 CPU cores)
      simreal run --config configs/industrial_bin.yaml --n 500 --steps 1000 --out runs/bin
      simreal run --eval ../shared/real/industrial/amv_screws_valid --class-agnostic screw
    Outputs: OUT/data (COCO dataset), OUT/train (checkpoints, log.csv, eval/, report.html, report.md).
    Without --eval the real sets in ../shared/real are used when present, otherwise a held-out
    rendered set (the report says which).
    """)


def pipeline_params_from_args(args):
    """The PipelineParams of a parsed `simreal run` command line (public: the contract tests compare it
    with the served deployment's defaults)."""
    from flows.params import EvalSet, PipelineParams, RenderParams, TrainParams

    out = args.out.rstrip("/")
    render = RenderParams(
        config=args.config,
        n=args.n,
        seed=args.seed,
        out=f"{out}/data",
        backend=args.backend,
        workers=args.workers,
        dask_address=args.dask_address,
        overrides={**RenderParams().overrides, **_image_size(args)},
    )
    train = TrainParams(
        model=args.model,
        steps=args.steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        class_agnostic=args.class_agnostic or None,
        out=f"{out}/train",
    )
    eval_sets = [EvalSet(data=d, class_agnostic=True) for d in args.eval] or None
    return PipelineParams(render=render, train=train, eval_sets=eval_sets)


def _image_size(args) -> dict:
    """--width/--height as config overrides; without them the render config's own size stands."""
    given = {"image.width": args.width, "image.height": args.height}
    return {k: v for k, v in given.items() if v is not None}


def _run(args) -> int:
    params = checked_params(lambda: pipeline_params_from_args(args), "simreal run")
    from flows.env import prepare_local_prefect

    prepare_local_prefect()
    from flows.render_then_train import render_then_train

    result = render_then_train(params)
    print(json.dumps({k: result[k] for k in ("run_dir", "report", "metrics")}, indent=1))
    if result.get("note"):
        from synth.paths import shared_root

        print(f"note: {result['note']} (shared folder here: {shared_root()})")
    print(f"report: {result['report']} (Markdown: {Path(result['report']).with_suffix('.md')})")
    return 0


def add_run_parser(sub) -> None:
    """Every default is read from flows.params, the same models the served and prefect.yaml deployments use."""
    from flows.params import RenderParams, TrainParams

    render, train = RenderParams(), TrainParams()
    p = add_command(
        sub,
        "run",
        help="render -> train -> evaluate -> report, through Prefect (ephemeral)",
        description=textwrap.fill(
            "Render a synthetic dataset, train a detector on it, evaluate it on real photos and write the "
            "report: the Prefect flow render-then-train, run in this process (no server needed). The "
            "defaults are the deployments' (flows/params.py). An output folder that holds another "
            "configuration is kept apart: the run goes to OUT/data-<hash> or OUT/train-<hash> instead.",
            100,
        ),
        epilog=RUN_EPILOG,
    )
    p.add_argument("--config", default=render.config, help="render config (default: %(default)s)")
    p.add_argument("--n", type=int, default=render.n, help="images to render (default: %(default)s)")
    p.add_argument("--seed", type=int, default=render.seed, help="dataset seed (default: %(default)s)")
    p.add_argument("--width", type=int, help="rendered image width (default: the config's)")
    p.add_argument("--height", type=int, help="rendered image height (default: the config's)")
    p.add_argument("--backend", default=render.backend, choices=["pyrender", "cycles"], help=_DEFAULT)
    p.add_argument("--workers", type=int, default=render.workers, help="render processes" + _DEFAULT_TAIL)
    p.add_argument("--dask-address", default=None, help="render shards on this Dask scheduler instead")
    p.add_argument("--model", default=train.model, help=_DEFAULT)
    p.add_argument("--steps", type=int, default=train.steps, help=_DEFAULT)
    p.add_argument("--batch-size", type=int, default=train.batch_size, help=_DEFAULT)
    p.add_argument(
        "--image-size", type=int, default=train.image_size, help="training size in px" + _DEFAULT_TAIL
    )
    p.add_argument(
        "--class-agnostic",
        default=train.class_agnostic,
        help="single class name, '' for per-category" + _DEFAULT_TAIL,
    )
    p.add_argument(
        "--eval", action="append", default=[], metavar="COCO_DIR", help="labelled set (repeatable)"
    )
    p.add_argument(
        "--out",
        default=str(Path(render.out).parent),
        help="output folder: OUT/data and OUT/train" + _DEFAULT_TAIL,
    )
    p.set_defaults(func=_run)
