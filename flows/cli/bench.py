"""``simreal bench render | train | sim2real``: benchmarks that print figures and write JSON.

The render and train benchmarks are built beside their commands; the sim-to-real one lives here because
it is a flow (flows/sim2real.py) over everything below.
"""

from __future__ import annotations

import argparse
import json
import textwrap

from flows.cli import add_command, key_value

VARIANT_HELP = (
    "a = synthetic, no randomization; b = synthetic + domain randomization; c = b + DANN and "
    "self-training on the real train photos (their labels unused); d = real train split only (reference); "
    "e = b fine-tuned on the real train split"
)

SIM2REAL_EPILOG = textwrap.dedent("""\
    examples:
      simreal bench sim2real --task retail                 # cpu scale: <= 90 min on 2 CPU cores
      simreal bench sim2real --task retail --budget-min 5  # 5 training minutes per variant
      simreal bench sim2real --task industrial --scale full --device cuda
      simreal bench sim2real --task retail --variants b d --steps 200 --out runs/s2r-quick
      simreal bench sim2real --task retail --variants b d --train-seeds 3  # b vs d over 3 training seeds
      simreal bench sim2real --task industrial --real-train my_photos/ --real-test my_test/
      simreal bench sim2real --task retail --train-set augment.strength=0.3 --render-set image.width=256
      simreal bench sim2real --task industrial --pretrain   # from the project's own pretrained detector

    Defaults: retail trains/tests on a seeded split of ../shared/real/retail/freiburg_dev; industrial
    trains on ../shared/real/industrial/amv_screws_train and tests on amv_screws_valid. Any labelled
    COCO sets can be given instead. Outputs in OUT (default runs/sim2real/<task>-<scale>):
    sim2real.json, report.html, report.md, variants/<run>/ (checkpoints, logs, eval/real_test/).
    Re-running the same command reuses finished renders and trained variants.
    """)

# run_benchmark keyword arguments passed through from the flag of the same name when given.
_PASSTHROUGH = (
    "real_train", "real_test", "test_fraction", "test_fold", "seed", "variants", "per_class", "images", "render_size",
    "steps", "batch_size", "image_size", "model", "catalog", "render_config", "backend", "workers", "device",
    "budget_min", "train_seeds", "pretrain",
)  # fmt: skip


def add_bench_parser(sub) -> None:
    from flows.cli import render, training

    bench = add_command(
        sub,
        "bench",
        help="benchmarks that print figures and write JSON",
        epilog="examples:\n  simreal bench render --out runs/bench\n"
        "  simreal bench train --out runs/bench\n"
        "  simreal bench sim2real --task retail --scale cpu\n"
        "  simreal bench pool runs/fold0 runs/fold1 runs/fold2 --out runs/pooled",
    )
    bsub = bench.add_subparsers(dest="bench_cmd", required=True, metavar="{render,train,sim2real,pool}")
    render.add_bench_render_parser(bsub)
    training.add_bench_train_parser(bsub)
    add_bench_sim2real_parser(bsub)
    add_bench_pool_parser(bsub)


def _sim2real(args) -> int:
    from flows.sim2real import run_benchmark

    extra = {k: getattr(args, k) for k in _PASSTHROUGH if getattr(args, k) is not None}
    if args.render_set:
        extra["render_overrides"] = dict(args.render_set)
    if args.train_set:
        extra["train_overrides"] = dict(args.train_set)
    _print_summary(run_benchmark(args.task, args.scale, args.out, **extra))
    return 0


def _print_summary(summary: dict) -> None:
    rows = []
    for v in summary["variants"].values():
        b = v["bbox"]
        rows.append(
            f"  {v['title']:<48} AP {b['AP'] if b['AP'] is not None else 'n/a':<7} "
            f"AP50 {b['AP50'] if b['AP50'] is not None else 'n/a'}" + _per_seed(v)
        )
    print(
        f"sim2real {summary['task']} ({summary['scale']}), {summary['datasets']['real_test']['images']} real test "
        f"photos, {summary['timings']['wall_s']:.0f} s:"
    )
    print("\n".join(rows))
    report = {"transfer": summary["transfer"], "report": summary["report"]}
    print(json.dumps({**report, "json": str(summary["out"]) + "/sim2real.json"}, indent=1))


def add_bench_sim2real_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "sim2real",
        help="does training on rendered images transfer to real photos? (5 variants, one budget)",
        description="Render synthetic sets for a task, split the real photos, train every variant with the same "
        "budget and seed, evaluate all of them on the same real test split, and write sim2real.json "
        "plus an HTML / Markdown comparison report. Variants: " + VARIANT_HELP + ".",
        epilog=SIM2REAL_EPILOG,
    )
    p.add_argument("--task", required=True, choices=["retail", "industrial"])
    p.add_argument(
        "--scale",
        default="cpu",
        choices=["smoke", "cpu", "full"],
        help="cpu: sized for 2 CPU cores, time-budgeted (default); smoke: a few minutes, numbers at the "
        "blind floor (the tests' toy); full: thousands of images and more steps, for a GPU",
    )
    p.add_argument(
        "--budget-min",
        type=float,
        help="training minutes per variant; the step count (the same for every variant) is measured "
        "from it on this machine (default: the scale's; ignored with --steps)",
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
    p.add_argument(
        "--test-fold",
        type=int,
        metavar="K",
        help="test on the K-th disjoint block of the seeded photo draw instead of the first (0); runs on "
        "folds 0, 1, 2 test on different photos and `simreal bench pool` scores them together",
    )
    p.add_argument("--seed", type=int, help="one seed for rendering, the split and every training run (0)")
    p.add_argument(
        "--variants", nargs="+", choices=["a", "b", "c", "d", "e"], help="subset to run (default all)"
    )
    p.add_argument(
        "--train-seeds",
        type=int,
        metavar="N",
        help="training runs per variant, with seeds SEED .. SEED+N-1 on the same split and renders; "
        "AP50 is their mean and its interval covers the spread between them (default 1)",
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
    p.add_argument(
        "--render-config",
        metavar="YAML",
        help="render config for both synthetic sets (default: the task's recipe)",
    )
    p.add_argument("--backend", choices=["pyrender", "cycles"], help="renderer (default pyrender)")
    p.add_argument("--workers", type=int, help="render worker processes (default 2)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="training / evaluation device (auto)")
    p.add_argument(
        "--pretrain",
        action="store_true",
        default=None,
        help="start (a)-(d) from `simreal pretrain`'s detector instead of random init (trained on first "
        "use, ~25 min on 2 cores, then cached; its cost is reported apart from the training budget)",
    )
    for flag, what in (
        ("--render-set", "render config override for both synthetic sets"),
        ("--train-set", "TrainConfig override for every variant alike"),
    ):
        p.add_argument(
            flag, action="append", type=key_value, metavar="KEY=VALUE", help=f"{what} (repeatable)"
        )
    p.set_defaults(func=_sim2real)
    return p


POOL_EPILOG = textwrap.dedent("""\
    examples:
      # three disjoint test folds of freiburg_dev, (b) and (c) on each, scored together
      for k in 0 1 2; do simreal bench sim2real --task retail --variants b c --test-fold $k --out runs/f$k; done
      simreal bench pool runs/f0 runs/f1 runs/f2 --out runs/pooled
      # an A/B of recipes: runs whose --train-set differs become separate arms ("c [fda.enabled=True]")
      simreal bench pool runs/f0 runs/f1 runs/f0-fda runs/f1-fda --variants c --out runs/fda-ab

    Writes OUT/pool.json and OUT/report.html / report.md. Runs must share one protocol (budget, model,
    input size, the real set); runs on the same test photos are one fold, other folds must not overlap it.
    """)


def add_bench_pool_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "pool",
        help="score several sim2real runs together (test folds, more training seeds)",
        description="Score `bench sim2real` runs together: each arm's AP50 is the mean over the disjoint test "
        "folds (weighted by objects) of its mean over training seeds, beside the blind floor, with one "
        "paired bootstrap over every fold's photos and the paired difference between every two arms.",
        epilog=POOL_EPILOG,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="--out folders of `simreal bench sim2real`")
    p.add_argument("--out", default="runs/sim2real/pool", help="output folder (default runs/sim2real/pool)")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=["a", "b", "c", "d", "e"],
        help="pool these variants only (default: every variant of the runs; each needs a run on every fold)",
    )
    p.add_argument("--samples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=_pool)
    return p


def _pool(args) -> int:
    from bench.sim2real.pool import pool_runs

    record = pool_runs(args.runs, args.out, variants=args.variants, samples=args.samples, seed=args.seed)
    floor = record["floor"]
    print(
        f"pooled {len(record['runs'])} run(s) over {len(record['folds'])} test fold(s), "
        f"{sum(f['images'] for f in record['folds'])} photos; floor AP50 {floor['estimate']:.3f} {floor['ci95']}"
    )
    for a, arm in record["arms"].items():
        runs = " + ".join(str(len(s)) for s in arm["seeds_per_fold"])
        print(
            f"  {a:<40} AP50 {arm['AP50']:.3f} {arm['AP50_ci95']}  runs {runs}  ({arm['floor_margin']['verdict']})"
        )
    for name, d in record["differences"].items():
        print(f"  {name:<40} {d['estimate']:+.3f} {d['ci95']}")
    share = record["share_of_real_only"]
    if share["shown"]:
        for a, r in share["arms"].items():
            print(f"  {a + ' / ' + share['reference']:<40} {r['estimate']:.1%} of real-only {r['ci95']}")
    else:
        print(f"  no share of real-only: {share['why']}")
    print(f"report: {record['report']}")
    return 0


def _per_seed(rec: dict) -> str:
    """`` (seeds 0 / 1: 0.65 / 0.72)`` when the variant was trained with several seeds, else nothing."""
    runs = rec.get("seed_runs") or []
    if len(runs) < 2:
        return ""
    ap50 = [x["bbox"].get("AP50") for x in runs]
    seeds = " / ".join(str(x["seed"]) for x in runs)
    return f"  (mean; seeds {seeds}: " + " / ".join("n/a" if a is None else f"{a:.3f}" for a in ap50) + ")"
