"""Subcommands of the data path, mounted by ``synth.cli``: ``render``, ``viz``, ``stats``, ``bench render``.

Each builder adds one parser with an example in its --help and sets ``func`` to a handler that returns
an exit code; heavy modules are imported inside the handlers so ``simreal --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from synth.errors import ConfigError


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _backend_opts(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("--backend-opts", f"not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError("--backend-opts", 'must be a JSON object, e.g. \'{"antialias": "edge"}\'')
    return value


def _add_cycles_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "optix", "cuda", "hip"],
        default=None,
        help="cycles: render device (auto picks OptiX > CUDA > HIP > CPU; the choice is logged)",
    )
    p.add_argument("--samples", type=int, default=None, help="cycles: samples per pixel")


def _merged_opts(args) -> dict:
    """--backend-opts JSON plus the --device/--samples shorthands (which only the cycles backend takes)."""
    opts = _backend_opts(args.backend_opts)
    for key in ("device", "samples"):
        value = getattr(args, key, None)
        if value is not None:
            if args.backend != "cycles":
                raise ConfigError(f"--{key}", "is a cycles option (use --backend cycles)")
            opts[key] = value
    return opts


# ---- render -------------------------------------------------------------------------------------------
def add_render_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "render",
        help="render a labelled synthetic dataset (COCO) from a config",
        formatter_class=_Formatter,
        description="Render N images of a config in worker processes into shards, then merge them into "
        "OUT/annotations.json and OUT/manifest.json. Re-running the same command after an "
        "interruption resumes: finished shards are kept and the result is identical.",
        epilog=textwrap.dedent("""\
            examples:
              simreal render --config configs/retail_shelf.yaml --n 200 --out runs/shelf --seed 0 --workers 2
              simreal render --config configs/industrial_bin.yaml --n 50 --out runs/bin --backend cycles
              simreal render --config configs/retail_shelf.yaml --n 20 --out runs/c --backend cycles --device cpu --samples 32
              simreal render --config configs/retail_table.yaml --n 100 --out runs/t \\
                  --backend-opts '{"antialias": "edge"}'
            """),
    )
    p.add_argument("--config", required=True, help="render config YAML (see configs/)")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="dataset directory (created; resumed if it holds this run)")
    p.add_argument(
        "--seed", type=int, default=0, help="dataset seed: image i depends only on (config, seed, i)"
    )
    p.add_argument("--workers", type=int, default=2, help="render processes (one backend each)")
    p.add_argument("--backend", default="pyrender", help="pyrender (fast, EGL) or cycles (path traced)")
    p.add_argument("--backend-opts", help='backend options as JSON, e.g. \'{"antialias": "edge"}\'')
    _add_cycles_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_render)
    return p


def _render(args) -> int:
    from synth.writer import render_dataset, validate_coco

    path = render_dataset(
        args.config,
        args.n,
        args.out,
        seed=args.seed,
        workers=args.workers,
        backend=args.backend,
        backend_opts=_merged_opts(args),
        progress=not args.quiet,
    )
    counts = validate_coco(path)
    manifest = json.loads((Path(args.out) / "manifest.json").read_text())
    run = manifest["timings"].get("last_run") or {}
    print(
        f"{path}: {counts['images']} images, {counts['annotations']} annotations, "
        f"{counts['categories']} categories; {manifest['dropped']['total']} objects dropped "
        f"{manifest['dropped']['by_reason']}; rendered {run.get('images_rendered', 0)} images in "
        f"{run.get('wall_s', 0)} s ({run.get('shards_reused', 0)} shards reused)"
    )
    return 0


# ---- viz ----------------------------------------------------------------------------------------------
def add_viz_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "viz",
        help="contact sheets with masks, boxes and labels drawn on",
        formatter_class=_Formatter,
        description="Write PNG contact sheets of a COCO dataset: modal masks filled, amodal silhouettes "
        "outlined, boxes, 'class visibility%%' labels. Also works on real COCO sets.",
        epilog=textwrap.dedent("""\
            examples:
              simreal viz runs/shelf                    -> runs/shelf/viz/sheet-000.png ...
              simreal viz ../shared/real/retail/ycbv_sample --out /tmp/ycbv-viz --per-sheet 9 --columns 3
            """),
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


# ---- stats --------------------------------------------------------------------------------------------
def add_stats_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "stats",
        help="objects per class / image, box sizes, visibility: JSON + plots",
        formatter_class=_Formatter,
        description="Summarise a COCO dataset (synthetic or real) into stats.json and PNG plots, to compare "
        "a synthetic set with the real one it should match.",
        epilog=textwrap.dedent("""\
            examples:
              simreal stats runs/shelf                  -> runs/shelf/stats/stats.json + *.png
              simreal stats ../shared/real/industrial/amv_screws_valid --out /tmp/screws-stats
            """),
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


# ---- bench render -------------------------------------------------------------------------------------
def add_bench_render_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "render",
        help="end-to-end render throughput for 1 and 2 workers, per stage",
        formatter_class=_Formatter,
        description="Render N images (default: a built-in 640x480 table with 20 objects) once per worker "
        "count, end to end (scene, render, masks + RLE, encode, write, merge), and report images/s "
        "and the per-stage split as JSON. Goal here: >= 10 images/s with 2 workers and "
        "annotation <= 25 %% of the per-image time.",
        epilog=textwrap.dedent("""\
            examples:
              simreal bench render --out runs/bench
              simreal bench render --backend-opts '{"antialias": "msaa"}' --n 32
              simreal bench render --config configs/retail_table.yaml --catalog assets/catalog
              simreal bench render --backend cycles --n 8 --workers 1 2
            """),
    )
    p.add_argument("--n", type=int, default=48, help="images per worker count")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--backend", default="pyrender")
    p.add_argument("--backend-opts", help="backend options as JSON")
    _add_cycles_flags(p)
    p.add_argument("--config", help="benchmark this render config instead of the built-in scene")
    p.add_argument("--catalog", help="catalog for the built-in scene's objects (default assets/catalog)")
    p.add_argument("--objects", type=int, default=20, help="targets in the built-in scene")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--keep", action="store_true", help="keep the rendered datasets (path in the JSON)")
    p.add_argument("--out", help="JSON file, or a folder for bench_render.json")
    p.set_defaults(func=_bench_render)
    return p


def _bench_render(args) -> int:
    from synth.bench import format_report, run_bench

    out = None
    if args.out:
        out = Path(args.out)
        if out.suffix != ".json":
            out = out / "bench_render.json"
    report = run_bench(
        n=args.n,
        workers=tuple(args.workers),
        backend=args.backend,
        backend_opts=_merged_opts(args),
        config=args.config,
        catalog=args.catalog,
        width=args.width,
        height=args.height,
        objects=args.objects,
        out=out,
        keep=args.keep,
        progress=sys.stderr.isatty(),
    )
    print(format_report(report))
    if out:
        print(f"wrote {out}")
    return 0
