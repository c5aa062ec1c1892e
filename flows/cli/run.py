"""``simreal run``: the whole chain on one machine through ephemeral Prefect (no server needed)."""

from __future__ import annotations

import json
import textwrap

from flows.cli import add_command

RUN_EPILOG = textwrap.dedent("""\
    examples:
      simreal run                                   # the embedded default (~15 min on 2 CPU cores)
      simreal run --config configs/industrial_bin.yaml --n 500 --steps 1000 --out runs/bin
      simreal run --eval ../shared/real/industrial/amv_screws_valid --class-agnostic screw
    Outputs: OUT/data (COCO dataset), OUT/train (checkpoints, log.csv, eval/, report.html, report.md).
    Without --eval the real sets in ../shared/real are used when present, otherwise a held-out
    rendered set (the report says which).
    """)


def _run(args) -> int:
    from flows.env import prefect_defaults

    prefect_defaults()
    from flows.params import EvalSet, PipelineParams, RenderParams, TrainParams
    from flows.render_then_train import render_then_train

    out = args.out.rstrip("/")
    render = RenderParams(
        config=args.config,
        n=args.n,
        seed=args.seed,
        out=f"{out}/data",
        backend=args.backend,
        workers=args.workers,
        dask_address=args.dask_address,
        overrides={"image.width": args.width, "image.height": args.height},
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
    result = render_then_train(PipelineParams(render=render, train=train, eval_sets=eval_sets))
    print(json.dumps({k: result[k] for k in ("run_dir", "report", "metrics")}, indent=1))
    return 0


def add_run_parser(sub) -> None:
    p = add_command(
        sub,
        "run",
        help="render -> train -> evaluate -> report, through Prefect (ephemeral)",
        epilog=RUN_EPILOG,
    )
    p.add_argument("--config", default="configs/retail_table.yaml", help="render config")
    p.add_argument("--n", type=int, default=240, help="images to render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--backend", default="pyrender", choices=["pyrender", "cycles"])
    p.add_argument("--workers", type=int, default=2, help="render worker processes")
    p.add_argument("--dask-address", default=None, help="render shards on this Dask scheduler instead")
    p.add_argument("--model", default="maskrcnn_mobilenet")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--class-agnostic", default="product", help="single class name ('' for per-category)")
    p.add_argument(
        "--eval", action="append", default=[], metavar="COCO_DIR", help="labelled set (repeatable)"
    )
    p.add_argument("--out", default="runs/default")
    p.set_defaults(func=_run)
