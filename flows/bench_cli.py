"""``simreal bench sim2real``: argparse builder for the sim-to-real benchmark (flows/sim2real.py).

Mounted by the main CLI under ``simreal bench``; imports nothing heavy until the command runs, so
``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import textwrap

VARIANT_HELP = (
    "a = synthetic, no randomization; b = synthetic + domain randomization; c = b + DANN to the real "
    "train photos; d = real train split only (reference); e = b fine-tuned on the real train split"
)


def _dotted(text: str) -> tuple[str, object]:
    """``key=value`` with a YAML value: ``steps=100``, ``lighting.count=[1,2]``, ``augment.strength=0.3``."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key.strip(), yaml.safe_load(value)


def _run(args) -> int:
    from flows.sim2real import run_benchmark

    extra = {
        k: v
        for k, v in {
            "real_train": args.real_train,
            "real_test": args.real_test,
            "test_fraction": args.test_fraction,
            "seed": args.seed,
            "variants": args.variants,
            "per_class": args.per_class,
            "images": args.images,
            "render_size": args.render_size,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "model": args.model,
            "catalog": args.catalog,
            "backend": args.backend,
            "workers": args.workers,
            "device": args.device,
            "render_overrides": dict(args.render_set) if args.render_set else None,
            "train_overrides": dict(args.train_set) if args.train_set else None,
        }.items()
        if v is not None
    }
    summary = run_benchmark(args.task, args.scale, args.out, **extra)
    rows = []
    for v in summary["variants"].values():
        b = v["bbox"]
        rows.append(
            f"  {v['title']:<48} AP {b['AP'] if b['AP'] is not None else 'n/a':<7} "
            f"AP50 {b['AP50'] if b['AP50'] is not None else 'n/a'}"
        )
    print(
        f"sim2real {summary['task']} ({summary['scale']}), {summary['datasets']['real_test']['images']} real test "
        f"photos, {summary['timings']['wall_s']:.0f} s:"
    )
    print("\n".join(rows))
    print(
        json.dumps(
            {
                "transfer": summary["transfer"],
                "report": summary["report"],
                "json": str(summary["out"]) + "/sim2real.json",
            },
            indent=1,
        )
    )
    return 0


def add_bench_sim2real_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sim2real",
        help="does training on rendered images transfer to real photos? (5 variants, one budget)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Render synthetic sets for a task, split the real photos, train every variant with the same "
        "budget and seed, evaluate all of them on the same real test split, and write sim2real.json "
        "plus an HTML / Markdown comparison report. Variants: " + VARIANT_HELP + ".",
        epilog=textwrap.dedent("""\
            examples:
              simreal bench sim2real --task retail                 # smoke scale, ~30 min on 2 CPU cores
              simreal bench sim2real --task industrial --scale full --device cuda
              simreal bench sim2real --task retail --variants b d --steps 200 --out runs/s2r-quick
              simreal bench sim2real --task industrial --real-train my_photos/ --real-test my_test/
              simreal bench sim2real --task retail --train-set augment.strength=0.3 --render-set image.width=256

            Defaults: retail trains/tests on a seeded split of ../shared/real/retail/freiburg_dev; industrial
            trains on ../shared/real/industrial/amv_screws_train and tests on amv_screws_valid. Any labelled
            COCO sets can be given instead. Outputs in OUT (default runs/sim2real/<task>-<scale>):
            sim2real.json, report.html, report.md, variants/<run>/ (checkpoints, logs, eval/real_test/).
            Re-running the same command reuses finished renders and trained variants.
            """),
    )
    p.add_argument("--task", required=True, choices=["retail", "industrial"])
    p.add_argument(
        "--scale",
        default="smoke",
        choices=["smoke", "full"],
        help="smoke: CPU-sized (default); full: thousands of images and more steps, for a GPU",
    )
    p.add_argument("--out", help="output folder (default runs/sim2real/<task>-<scale>)")
    p.add_argument(
        "--real-train",
        metavar="COCO",
        help="labelled real photos to train on (and split, without --real-test)",
    )
    p.add_argument("--real-test", metavar="COCO", help="separate labelled real test set")
    p.add_argument(
        "--test-fraction", type=float, help="share of --real-train photos held out for testing (0.3)"
    )
    p.add_argument("--seed", type=int, help="one seed for rendering, the split and every training run (0)")
    p.add_argument(
        "--variants", nargs="+", choices=["a", "b", "c", "d", "e"], help="subset to run (default all)"
    )
    p.add_argument(
        "--per-class",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train per-class models on the categories shared with the real set "
        "(default: on at full scale)",
    )
    p.add_argument("--images", type=int, help="images per synthetic set (overrides the scale)")
    p.add_argument("--render-size", type=int, help="rendered image side in pixels (overrides the scale)")
    p.add_argument("--steps", type=int, help="training steps of every variant (overrides the scale)")
    p.add_argument("--batch-size", type=int, help="batch size of every variant (overrides the scale)")
    p.add_argument("--image-size", type=int, help="detector input size (overrides the scale)")
    p.add_argument("--model", help="detector for every variant (overrides the scale), e.g. ssdlite, maskrcnn")
    p.add_argument("--catalog", help="use this catalog instead of building the benchmark's own")
    p.add_argument("--backend", choices=["pyrender", "cycles"], help="renderer (default pyrender)")
    p.add_argument("--workers", type=int, help="render worker processes (default 2)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="training / evaluation device (auto)")
    p.add_argument(
        "--render-set",
        action="append",
        type=_dotted,
        metavar="KEY=VALUE",
        help="render config override for both synthetic sets (repeatable)",
    )
    p.add_argument(
        "--train-set",
        action="append",
        type=_dotted,
        metavar="KEY=VALUE",
        help="TrainConfig override for every variant alike (repeatable)",
    )
    p.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.bench_cli sim2real ...``: the same command without the main ``simreal`` CLI."""
    import os
    import sys

    from synth.errors import SimrealError

    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = argparse.ArgumentParser(
        prog="python -m flows.bench_cli", description="simreal benchmarks (flows)"
    )
    add_bench_sim2real_parser(parser.add_subparsers(dest="bench_cmd", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SimrealError as e:
        print(f"simreal: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
