"""``simreal extend``: add new classes to a trained detector, fine-tuning with replayed old data."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from flows.cli import add_command
from synth.errors import ConfigError

EXTEND_EPILOG = textwrap.dedent("""\
    examples:
      simreal extend runs/train-shelf/checkpoints/last.pt --new runs/new-skus --out runs/extended
      simreal extend ckpt.pt --new runs/new-skus --replay runs/shelf --replay-fraction 0.3 \\
          --steps 1000 --batch-size 8 --eval real=../shared/real/retail/ycbv_sample --out runs/extended

    Categories are matched to the model's classes by name; the others are appended as new classes
    (old model labels stay as they were). Without --replay the checkpoint's own training set is replayed
    when it still exists. Without --eval the model is measured on held-out splits of the new and the
    replayed set: old-class AP before and after, new-class AP, per class, in OUT/report.html.
    """)


def _eval_sets(values: list[str] | None) -> dict[str, Path] | None:
    if not values:
        return None
    sets = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise ConfigError("--eval", f"expected NAME=COCO, got '{v}'")
        sets[name] = Path(path)
    return sets


def _extend(args) -> int:
    from train.extend import extend_detector

    r = extend_detector(
        Path(args.checkpoint),
        Path(args.new),
        Path(args.replay) if args.replay else None,
        Path(args.out),
        steps=args.steps,
        batch_size=args.batch_size,
        replay_fraction=args.replay_fraction,
        device=args.device,
        eval_sets=_eval_sets(args.eval),
        lr=args.lr,
        workers=args.workers,
        seed=args.seed,
        progress=not args.no_progress,
    )

    def ap(s):
        return "n/a" if s is None else f"AP {s['AP']:.3f} (AP50 {s['AP50']:.3f})"

    print(f"classes: {', '.join(r['classes']['old'])} + new {', '.join(r['classes']['new'])}")
    print(f"old classes: before {ap(r['old_class_ap_before'])}, after {ap(r['old_class_ap_after'])}")
    print(f"new classes: {ap(r['new_class_ap'])}")
    print(f"extended model: {r['checkpoint']}\nreport: {r['report']}")
    return 0


def add_extend_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "extend",
        help="add new classes to a trained detector (fine-tuning with replay)",
        description="Enlarge a `simreal train` checkpoint's class heads for the new set's categories (old "
        "classes keep their outputs), fine-tune on the new set mixed with replayed original data, and "
        "report old-class AP before/after and new-class AP.",
        epilog=EXTEND_EPILOG,
    )
    p.add_argument("checkpoint", help="the base model: a `simreal train` checkpoint (checkpoints/last.pt)")
    p.add_argument("--new", required=True, help="COCO set of the new classes (folder or annotations .json)")
    p.add_argument("--replay", help="COCO set of the base model's training data (default: the recorded one)")
    p.add_argument("--out", required=True, help="output folder (data/, train/, before/, report.html)")
    p.add_argument("--steps", type=int, default=500, help="fine-tuning steps (default 500)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    p.add_argument(
        "--replay-fraction", type=float, default=0.5, help="share of each batch from the replay set (0.5)"
    )
    p.add_argument(
        "--eval",
        action="append",
        metavar="NAME=COCO",
        help="measure on this labelled set (repeatable; default: held-out splits of new and replay)",
    )
    p.add_argument("--lr", type=float, help="peak learning rate (default: the base run's)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default: the base run's)")
    p.add_argument("--seed", type=int, help="default: the base run's")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_extend)
    return p
