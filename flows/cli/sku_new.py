"""``simreal sku dataset`` and ``simreal sku match``: a dataset for new SKUs, and a render config fitted to
a few real photos."""

from __future__ import annotations

import json
import textwrap

from flows.cli import add_command, key_value

DATASET_EPILOG = textwrap.dedent("""\
    examples:
      simreal sku dataset ../shared/meshes/hope/ketchup/textured.obj ../shared/meshes/hope/butter/textured.obj \\
          --images 200 --share 0.8 --out runs/new-sku
      simreal sku dataset nut.stl washer.stl --supercategory industrial --others distractors --out runs/parts
      simreal sku dataset ketchup --config configs/sim2real_retail.yaml \\
          --match ../shared/real/retail/freiburg_dev --out runs/ketchup
      simreal sku dataset ketchup butter --base-checkpoint runs/train/checkpoints/last.pt --out runs/ext
    Items are mesh files (imported as `sku add` does; re-adding the same file reuses its entry) or catalog
    ids. Each new SKU appears in at least --share of the images. Re-run the same command to resume.
    Writes OUT/data (COCO, viz/, stats/, new_skus.json), OUT/fit (with --match), OUT/extend.
    """)

MATCH_EPILOG = textwrap.dedent("""\
    example:
      simreal sku match --config configs/retail_shelf.yaml --photos ../shared/real/retail/freiburg_dev \\
          --out runs/match/retail_shelf_fitted.yaml
    Renders small probe sets (kept in --work, reused on re-runs), compares them with the photos (1-D
    Wasserstein distances of box sizes, boxes per image, box centres, brightness, warmth), adjusts the
    camera distance / field of view, object count and lighting, and keeps the closest candidate.
    Writes OUT (YAML, distances in its header), OUT with .png (before/after plot) and .json.
    """)


def _dataset(args) -> int:
    from flows.env import prepare_local_prefect
    from flows.new_sku import new_items, run_new_sku
    from flows.new_sku_params import NewSkuParams
    from synth.catalog import Catalog
    from synth.config import validate
    from synth.sku_import import plan_imports

    prepare_local_prefect()
    fields = {k: getattr(args, k) for k in NewSkuParams.model_fields if getattr(args, k, None) is not None}
    fields.update(meshes=args.items, photos=args.match, overrides=dict(args.set or []))
    params = validate(NewSkuParams, fields, "sku dataset")
    plan_imports(Catalog(params.catalog), new_items(params))  # bad files: one line, before Prefect starts
    summary = run_new_sku(params)
    print(json.dumps(summary, indent=1, default=str))
    return 0 if summary["share_met"] else 1


def _match(args) -> int:
    from pathlib import Path

    from synth.match import fit_config, write_fit
    from synth.sku_dataset import config_data

    overrides = dict(args.set or [])
    if args.catalog:
        overrides["catalog.root"] = args.catalog
    out = Path(args.out)
    work = Path(args.work) if args.work else out.with_name(out.stem + "-probes")
    result = fit_config(
        config_data(args.config, overrides),
        args.photos,
        work,
        probe_n=args.probe_images,
        iterations=args.iterations,
        seed=args.seed,
        workers=args.workers,
        source=args.config,
    )
    files = write_fit(result, out, config=args.config, photos=args.photos)
    print(result.table())
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def add_new_sku_parsers(s) -> None:
    p = add_command(
        s,
        "dataset",
        help="new meshes -> a dataset where each appears in a chosen share of images",
        epilog=DATASET_EPILOG,
    )
    p.add_argument("items", nargs="+", help="mesh files or catalog ids")
    p.add_argument("--names", nargs="+", help="display names, one per item (default: from the file name)")
    p.add_argument("--categories", nargs="+", help="class labels, one per item (default: from the name)")
    p.add_argument("--supercategory", choices=["retail", "industrial"])
    p.add_argument("--units", choices=["auto", "m", "cm", "mm", "in"])
    p.add_argument("--up", choices=["auto", "z", "y"])
    p.add_argument("--images", type=int, help="images to render (default 200)")
    p.add_argument("--share", type=float, help="each new SKU in at least this share of images (default 0.8)")
    p.add_argument(
        "--others", choices=["labelled", "distractors"], help="the other catalog items (default labelled)"
    )
    p.add_argument("--layout", choices=["shelf", "table", "bin"], help="default: the supercategory's first")
    p.add_argument("--config", help="render config instead of the layout's shipped one")
    p.add_argument("--set", action="append", type=key_value, metavar="KEY=VALUE", help="config override")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="render processes (default 2)")
    p.add_argument("--out", help="output folder (default runs/new-sku)")
    p.add_argument(
        "--match", metavar="PHOTOS", help="fit the config to real photos (COCO set or folder) first"
    )
    p.add_argument("--probe-images", dest="probe_images", type=int, help="images per probe set (default 40)")
    p.add_argument(
        "--base-checkpoint", dest="base_checkpoint", help="detector to extend with the new classes"
    )
    p.add_argument("--replay", help="COCO json of the base detector's training set")
    p.add_argument("--steps", type=int, help="fine-tuning steps when extending (default 300)")
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--catalog", help="catalog folder (default assets/catalog)")
    p.set_defaults(func=_dataset)

    p = add_command(s, "match", help="fit a render config to a few real photos", epilog=MATCH_EPILOG)
    p.add_argument("--config", required=True, help="render config to fit")
    p.add_argument("--photos", required=True, help="COCO set (labelled) or folder of photos (unlabelled)")
    p.add_argument("--out", required=True, help="fitted config YAML")
    p.add_argument("--work", help="probe sets folder (default: next to --out)")
    p.add_argument("--set", action="append", type=key_value, metavar="KEY=VALUE", help="config override")
    p.add_argument("--catalog", help="catalog folder (default: the config's)")
    p.add_argument("--probe-images", dest="probe_images", type=int, default=40)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=_match)
