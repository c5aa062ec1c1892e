"""``simreal evaluate`` and ``simreal report``: scoring a checkpoint on labelled photos and writing it up."""

from __future__ import annotations

import argparse
import textwrap

from flows.cli import add_command

EVALUATE_EPILOG = textwrap.dedent("""\
    examples:
      simreal evaluate --model runs/train-shelf/checkpoints/last.pt --data ../shared/real/retail/ycbv_sample
      simreal evaluate --model runs/screws/checkpoints/last.pt --data ../shared/real/industrial/amv_screws_valid \\
          --class-agnostic screw
      simreal evaluate --model ckpt.pt --data photos/ --category-map map.yaml --out results/photos

    Results go to RUN_DIR/eval/<set name>/ (metrics.json, predictions.json); then `simreal report RUN_DIR`.
    """)


def print_metrics(m: dict) -> None:
    """One line per evaluated set: what `simreal train` prints after training and `simreal evaluate` prints."""

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    line = (
        f"{m['set']}: {m['images']} images, {m['gt_instances']} objects | box AP {f(m['bbox']['AP'])} "
        f"AP50 {f(m['bbox']['AP50'])} AP75 {f(m['bbox']['AP75'])}"
    )
    if m.get("segm"):
        line += f" | mask AP {f(m['segm']['AP'])} AP50 {f(m['segm']['AP50'])}"
    print(line)
    floor = m.get("floor") or {}
    if "verdict" in floor:
        from train.report import floor_words

        print(f"  {floor_words(floor)} (floor from {floor['prior_from']})")
    elif floor.get("skipped"):
        print(f"  {floor['skipped']}")


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
        floor_from=args.floor_from,
    )
    print_metrics(m)
    print(f"metrics: {m['out_dir']}/metrics.json")
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "evaluate",
        help="COCO mAP of a checkpoint on a labelled (real) set",
        description="COCOeval bbox and segm (segm when the set has masks) of a training checkpoint: AP, AP50, AP75, "
        "AP small/medium/large, per-class AP; predictions saved as COCO results JSON.",
        epilog=EVALUATE_EPILOG,
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
    p.add_argument(
        "--floor-from",
        metavar="COCO",
        help="labelled set whose boxes the blind floor may know, e.g. the real train split "
        "(default: the checkpoint's training set)",
    )
    p.add_argument("--out", help="output folder (default RUN_DIR/eval/<name>)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_evaluate)
    return p


def _report(args) -> int:
    from train.report import write_report

    path = write_report(args.run_dir, max_examples=args.examples)
    print(f"report: {path}  (and {path.with_suffix('.md')})")
    return 0


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "report",
        help="HTML + Markdown report of a training run",
        description="Write RUN_DIR/report.html (self-contained) and RUN_DIR/report.md: metrics, per-class PR curves, "
        "training curves, dataset summary, example predictions on the evaluated photos, provenance.",
        epilog="example:\n  simreal report runs/train-shelf\n",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--examples", type=int, default=6, help="example images per evaluated set (default 6)")
    p.set_defaults(func=_report)
    return p
