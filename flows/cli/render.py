"""``simreal render`` and ``simreal bench render``: rendering a dataset, and how fast it goes.

Both take the same backend flags (--backend, --backend-opts, and the cycles shorthands), parsed here once.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from flows.cli import add_command
from synth.errors import ConfigError

RENDER_EPILOG = textwrap.dedent("""\
    examples:
      simreal render --config configs/retail_shelf.yaml --n 200 --out runs/shelf --seed 0 --workers 2
      simreal render --config configs/industrial_bin.yaml --n 50 --out runs/bin --backend cycles
      simreal render --config configs/retail_shelf.yaml --n 20 --out runs/c --backend cycles --device cpu --samples 32
      simreal render --config configs/retail_table.yaml --n 100 --out runs/t \\
          --backend-opts '{"antialias": "edge"}'
    """)

BENCH_RENDER_EPILOG = textwrap.dedent("""\
    examples:
      simreal bench render --out runs/bench
      simreal bench render --n 80 --workers 1 2    # + raw pyrender reference + sim-to-real recipes
      simreal bench render --n 16 --no-recipes --no-reference
      simreal bench render --backend-opts '{"antialias": "msaa"}' --n 32
      simreal bench render --config configs/retail_table.yaml --catalog assets/catalog
      simreal bench render --backend cycles --n 8 --workers 1 2
    """)


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
    p = add_command(
        subparsers,
        "render",
        help="render a labelled synthetic dataset (COCO) from a config",
        description="Render N images of a config in worker processes into shards, then merge them into "
        "OUT/annotations.json and OUT/manifest.json. Re-running the same command after an "
        "interruption resumes: finished shards are kept and the result is identical.",
        epilog=RENDER_EPILOG,
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
    from synth.coco import validate_coco
    from synth.dataset import render_dataset

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


# ---- bench render -------------------------------------------------------------------------------------
def add_bench_render_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "render",
        help="end-to-end render throughput for 1 and 2 workers, per stage",
        description="Render N images (default: a built-in 640x480 table with 20 objects) once per worker "
        "count, end to end (scene, render, masks + RLE, encode, write, merge), and report images/s "
        "and the per-stage split as JSON. Goal here: >= 10 images/s with 2 workers and "
        "annotation <= 25 % of the per-image time.",
        epilog=BENCH_RENDER_EPILOG,
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
    p.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time plain pyrender on the same scenes and print end-to-end / reference (pyrender)",
    )
    p.add_argument(
        "--recipes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the sim-to-real recipes at their own sizes with the largest worker count "
        "(built-in scene only)",
    )
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
        reference=args.reference,
        recipes=args.recipes,
    )
    print(format_report(report))
    if out:
        print(f"wrote {out}")
    return 0
