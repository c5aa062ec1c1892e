"""``simreal viz`` and ``simreal stats``: look at any COCO dataset, synthetic or real."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from flows.cli import add_command

VIZ_EPILOG = textwrap.dedent("""\
    examples:
      simreal viz runs/shelf                    -> runs/shelf/viz/sheet-000.png ...
      simreal viz ../shared/real/retail/ycbv_sample --out /tmp/ycbv-viz --per-sheet 9 --columns 3
    """)

STATS_EPILOG = textwrap.dedent("""\
    examples:
      simreal stats runs/shelf                  -> runs/shelf/stats/stats.json + *.png
      simreal stats ../shared/real/industrial/amv_screws_valid --out /tmp/screws-stats
    """)


def add_viz_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "viz",
        help="contact sheets with masks, boxes and labels drawn on",
        description="Write PNG contact sheets of a COCO dataset: modal masks filled, amodal silhouettes "
        "outlined, boxes, 'class visibility%' labels. Also works on real COCO sets.",
        epilog=VIZ_EPILOG,
    )
    p.add_argument("dataset", help="dataset directory (with annotations.json) or a COCO JSON file")
    p.add_argument("--out", help="output folder (default DATASET/viz)")
    p.add_argument("--per-sheet", type=int, default=16)
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--max-sheets", type=int, default=4)
    p.add_argument("--tile-width", type=int, default=320, help="pixels per image tile")
    p.set_defaults(func=_viz)
    return p


def _viz(args) -> int:
    from synth.viz import contact_sheets

    dataset = Path(args.dataset)
    kwargs = {}
    if dataset.is_file():
        dataset, kwargs["annotations"] = dataset.parent, dataset.name
    paths = contact_sheets(
        dataset,
        args.out,
        per_sheet=args.per_sheet,
        columns=args.columns,
        max_sheets=args.max_sheets,
        tile_width=args.tile_width,
        **kwargs,
    )
    for p in paths:
        print(p)
    return 0


def add_stats_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "stats",
        help="objects per class / image, box sizes, visibility: JSON + plots",
        description="Summarise a COCO dataset (synthetic or real) into stats.json and PNG plots, to compare "
        "a synthetic set with the real one it should match.",
        epilog=STATS_EPILOG,
    )
    p.add_argument("dataset", help="dataset directory or COCO JSON file")
    p.add_argument("--out", help="output folder (default DATASET/stats)")
    p.set_defaults(func=_stats)
    return p


def _stats(args) -> int:
    from synth.stats import dataset_stats

    s = dataset_stats(args.dataset, args.out)
    print(
        f"{s['images']} images, {s['annotations']} annotations, {s['categories']} categories; "
        f"objects/image mean {s['objects_per_image']['mean']} max {s['objects_per_image']['max']}; "
        f"COCO S/M/L {s['box_size_px']['coco_small_medium_large']}"
        + (f"; visibility mean {s['visibility']['mean']}" if "visibility" in s else "")
    )
    return 0
