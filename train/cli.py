"""argparse builders for ``simreal train | evaluate | report | bench train``.

Each ``add_*_parser(subparsers)`` adds one subcommand whose ``func(args) -> int`` the ``simreal``
console script calls. torch is imported inside the handlers so ``--help`` stays instant. This module
also runs on its own, which is how DDP starts: ``torchrun --nproc_per_node 2 -m train.cli train ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from synth.errors import SimrealError


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


# ---- train -----------------------------------------------------------------------------------------
def train_config_from_args(args):
    """The TrainConfig of a parsed `simreal train` command line: --config values, overridden by flags."""
    from train.config import load_train_config, resolve_model_name

    o: dict = {}
    flat = {
        "data": args.data,
        "out": args.out,
        "target_images": args.target_images,
        "val_data": args.val_data,
        "val_fraction": args.val_fraction,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "warmup_steps": args.warmup_steps,
        "workers": args.workers,
        "seed": args.seed,
        "device": args.device,
        "amp": args.amp,
        "threads": args.threads,
        "category_map": args.category_map,
        "class_agnostic": args.class_agnostic,
        "checkpoint_every": args.checkpoint_every,
        "log_every": args.log_every,
        "eval_every": args.eval_every,
        "model.image_size": args.image_size,
        "model.weights": args.weights,
        "augment.strength": args.augment_strength,
        "dann.weight": args.dann_weight,
    }
    o.update({k: v for k, v in flat.items() if v is not None})
    if args.model:
        o["model.name"] = resolve_model_name(args.model)
    if args.no_augment:
        o["augment.enabled"] = False
    if args.dann:
        o["dann.enabled"] = True
    if args.dann_instance:
        o["dann.enabled"] = True
        o["dann.instance_level"] = True
    if args.resume:
        o["resume"] = True
    if args.no_progress:
        o["progress"] = False
    if args.eval:
        o["eval"] = [{"data": d} for d in args.eval]
    if args.config is None:
        for key in ("data", "out"):
            if key not in o:
                raise SimrealError("simreal train", f"--{key} is required (or give --config FILE)")
    return load_train_config(args.config, o)


def _train(args) -> int:
    from train.engine import train

    run = train(train_config_from_args(args))
    print(f"run directory: {run}")
    for mfile in sorted((run / "eval").glob("*/metrics.json")):
        _print_metrics(json.loads(mfile.read_text()))
    return 0


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train Mask R-CNN / SSD on a COCO set (DR, DANN, DDP)",
        formatter_class=_Formatter,
        description="Train a torchvision detector on a COCO dataset (synthetic or real) with kornia domain "
        "randomization and optional adversarial adaptation (DANN) to unlabelled target photos. "
        "Flags override the values of --config.",
        epilog=textwrap.dedent("""\
            examples:
              simreal train --data runs/shelf --model maskrcnn --out runs/train-shelf
              simreal train --data runs/shelf --model maskrcnn_mobilenet --image-size 512 --steps 3000 \\
                  --target-images photos/ --dann --eval ../shared/real/retail/ycbv_sample --out runs/dann
              simreal train --data runs/bin --model ssdlite --class-agnostic screw --out runs/screws
              simreal train --config train.yaml --resume
              torchrun --nproc_per_node 2 -m train.cli train --config train.yaml    (DDP, 2 processes)

            models: maskrcnn (ResNet-50 FPN v2), maskrcnn_mobilenet (MobileNetV3 FPN, CPU-friendly),
                    ssd (SSD300 VGG16), ssdlite (SSDlite320 MobileNetV3). Weights: --weights FILE, else
                    torchvision's files in $TORCH_HOME/hub/checkpoints, else random init (logged).
            """),
    )
    p.add_argument("--config", help="TrainConfig YAML (see train/config.py); flags override it")
    p.add_argument("--data", help="COCO dataset folder (annotations.json + images/) or annotations .json")
    p.add_argument("--out", help="run directory to create (or continue with --resume)")
    p.add_argument("--model", help="maskrcnn | maskrcnn_mobilenet | ssd | ssdlite (or the full names)")
    p.add_argument("--image-size", type=int, help="square training size in px (default 512)")
    p.add_argument(
        "--weights", help="initial weights file (detector or backbone state dict, or a checkpoint)"
    )
    p.add_argument("--steps", type=int, help="optimizer steps (default 2000)")
    p.add_argument("--batch-size", type=int, help="images per step per process (default 4)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.02 for SGD)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--target-images", help="unlabelled target-domain photos: a folder or a COCO set")
    p.add_argument(
        "--dann", action="store_true", help="adversarial adaptation to --target-images (image level)"
    )
    p.add_argument("--dann-instance", action="store_true", help="DANN at image and RoI level (R-CNN only)")
    p.add_argument("--dann-weight", type=float, help="weight of the domain loss (default 0.1)")
    p.add_argument("--augment-strength", type=float, help="domain randomization strength 0..1 (default 0.5)")
    p.add_argument("--no-augment", action="store_true", help="switch domain randomization off")
    p.add_argument("--class-agnostic", metavar="NAME", help="train one class NAME (e.g. product, screw)")
    p.add_argument("--category-map", metavar="FILE", help="YAML/JSON {dataset category: class name or null}")
    p.add_argument("--val-data", help="separate labelled validation set (default: --val-fraction of --data)")
    p.add_argument("--val-fraction", type=float, help="held-out share of --data for validation (default 0.1)")
    p.add_argument(
        "--eval",
        action="append",
        metavar="COCO",
        help="evaluate on this labelled set after training (repeatable; e.g. real photos)",
    )
    p.add_argument("--eval-every", type=int, help="validation AP every N steps (default: only at the end)")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default 2)")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", choices=["auto", "bf16", "off"])
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
    return p


# ---- evaluate --------------------------------------------------------------------------------------
def _print_metrics(m: dict) -> None:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    line = (
        f"{m['set']}: {m['images']} images, {m['gt_instances']} objects | box AP {f(m['bbox']['AP'])} "
        f"AP50 {f(m['bbox']['AP50'])} AP75 {f(m['bbox']['AP75'])}"
    )
    if m.get("segm"):
        line += f" | mask AP {f(m['segm']['AP'])} AP50 {f(m['segm']['AP50'])}"
    print(line)


def _evaluate(args) -> int:
    from train.evaluate import evaluate

    agnostic = None if args.class_agnostic is None else (args.class_agnostic or True)
    m = evaluate(
        args.model,
        args.data,
        out_dir=args.out,
        name=args.name,
        category_map=args.category_map,
        class_agnostic=agnostic,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
    )
    _print_metrics(m)
    print(f"metrics: {m['out_dir']}/metrics.json")
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help="COCO mAP of a checkpoint on a labelled (real) set",
        formatter_class=_Formatter,
        description="COCOeval bbox and segm (segm when the set has masks) of a training checkpoint: AP, AP50, AP75, "
        "AP small/medium/large, per-class AP; predictions saved as COCO results JSON.",
        epilog=textwrap.dedent("""\
            examples:
              simreal evaluate --model runs/train-shelf/checkpoints/last.pt --data ../shared/real/retail/ycbv_sample
              simreal evaluate --model runs/screws/checkpoints/last.pt --data ../shared/real/industrial/amv_screws_valid \\
                  --class-agnostic screw
              simreal evaluate --model ckpt.pt --data photos/ --category-map map.yaml --out results/photos

            Results go to RUN_DIR/eval/<set name>/ (metrics.json, predictions.json); then `simreal report RUN_DIR`.
            """),
    )
    p.add_argument("--model", required=True, metavar="CKPT", help="checkpoint written by simreal train")
    p.add_argument("--data", required=True, help="labelled COCO set (folder or .json)")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--class-agnostic",
        nargs="?",
        const="",
        metavar="NAME",
        help="count every category as one class (NAME optional)",
    )
    group.add_argument("--category-map", metavar="FILE", help="YAML/JSON {set category: model class or null}")
    p.add_argument("--name", help="set name (default: the data folder's name)")
    p.add_argument("--out", help="output folder (default RUN_DIR/eval/<name>)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_evaluate)
    return p


# ---- report ----------------------------------------------------------------------------------------
def _report(args) -> int:
    from train.report import write_report

    path = write_report(args.run_dir, max_examples=args.examples)
    print(f"report: {path}  (and {path.with_suffix('.md')})")
    return 0


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="HTML + Markdown report of a training run",
        formatter_class=_Formatter,
        description="Write RUN_DIR/report.html (self-contained) and RUN_DIR/report.md: metrics, per-class PR curves, "
        "training curves, dataset summary, example predictions on the evaluated photos, provenance.",
        epilog="example:\n  simreal report runs/train-shelf\n",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--examples", type=int, default=6, help="example images per evaluated set (default 6)")
    p.set_defaults(func=_report)
    return p


# ---- bench train -----------------------------------------------------------------------------------
def _bench(args) -> int:
    from train.bench import bench_train

    res = bench_train(
        args.models,
        image_size=args.image_size,
        batch_size=args.batch_size,
        warmup=args.warmup,
        iterations=args.iterations,
        device=args.device,
        amp=args.amp,
        data=args.data,
        workers=args.workers,
        threads=args.threads,
        out=args.out,
    )
    if "written_to" in res:
        print(f"results: {res['written_to']}")
    return 0


def add_bench_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="training images/s and peak memory per model",
        formatter_class=_Formatter,
        description="Training throughput (images/s) and peak memory for each model at 640 px, and data-loading "
        "images/s, as JSON. Each model runs in its own process.",
        epilog=textwrap.dedent("""\
            examples:
              simreal bench train --out runs/bench
              simreal bench train --models maskrcnn ssdlite --batch-size 16 --device cuda --out runs/bench/h100.json
            """),
    )
    p.add_argument("--models", nargs="+", help="default: all four")
    p.add_argument("--image-size", type=int, default=640)
    p.add_argument("--batch-size", type=int, help="default 8 on GPU, 2 on CPU")
    p.add_argument("--iterations", type=int, help="timed steps (default 20 GPU, 2 CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 5 GPU, 1 CPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    p.add_argument("--data", help="COCO set for the data-loading measurement (default: generated JPEGs)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers for the loading measurement")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", help="JSON file, or a folder for bench_train.json")
    p.set_defaults(func=_bench)
    return p


# ---- standalone entry point (torchrun -m train.cli ...) --------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train.cli",
        formatter_class=_Formatter,
        description="simreal training commands (also mounted under `simreal`).",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_report_parser(sub)
    bench = sub.add_parser("bench", help="benchmarks")
    add_bench_train_parser(bench.add_subparsers(dest="bench_cmd", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SimrealError as e:
        print(f"simreal: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
