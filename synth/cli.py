"""The ``simreal`` console script: one subcommand per stage, each with an example in its --help.

Heavy libraries (torch, bpy, pyrender) are imported inside the handlers, so ``--help`` stays instant and
a rendering process never imports torchvision by accident (see the EGL/triton trap in STACK.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from synth.errors import SimrealError

EPILOG = textwrap.dedent(
    """\
    stages:
      simreal sku generate --retail 30 --industrial 12 --seed 0     fill the default catalog
      simreal sku add mesh.glb --name "Cracker box" --category crackers
      simreal render --config configs/retail_shelf.yaml --n 200 --out runs/shelf --seed 0 --workers 2
      simreal viz runs/shelf && simreal stats runs/shelf
      simreal train --data runs/shelf --model maskrcnn --out runs/train-shelf
      simreal evaluate --model runs/train-shelf/checkpoints/last.pt --data ../shared/real/retail/ycbv_sample
      simreal report runs/train-shelf
      simreal run                                                 render -> train -> evaluate -> report
      simreal bench render | simreal bench train | simreal bench sim2real --task retail
    """
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def default_catalog() -> str:
    return os.environ.get("SIMREAL_CATALOG", os.path.join("assets", "catalog"))


def _add_catalog_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--catalog",
        default=default_catalog(),
        help="catalog folder (default: $SIMREAL_CATALOG or assets/catalog)",
    )


# ---- sku -------------------------------------------------------------------------------------------
def _sku_add(args) -> int:
    from synth.catalog import Catalog, MaterialHints, record_to_yaml
    from synth.sku import add_mesh

    material = None
    if args.color is not None or args.metallic is not None or args.roughness is not None:
        material = MaterialHints(
            base_color=(*(args.color or (0.8, 0.8, 0.8)), 1.0),
            metallic=args.metallic if args.metallic is not None else 0.0,
            roughness=args.roughness if args.roughness is not None else 0.5,
            finish=args.finish,
        )
    record = add_mesh(
        Catalog(args.catalog),
        args.mesh,
        name=args.name,
        category=args.category,
        supercategory=args.supercategory,
        units=args.units,
        up=args.up,
        sku_id=args.id,
        replace=args.replace,
        license=args.license,
        material=material,
        symmetry=args.symmetry,
        symmetry_order=args.symmetry_order,
        align=not args.no_align,
    )
    print(record_to_yaml(record), end="")
    return 0


def _sku_list(args) -> int:
    from synth.catalog import Catalog
    from synth.sku import list_records

    cat = Catalog(args.catalog)
    if args.json:
        import json

        print(json.dumps([r.model_dump(mode="json") for r in cat], indent=1))
    else:
        print(list_records(cat))
    return 0


def _sku_show(args) -> int:
    from synth.catalog import Catalog, record_to_yaml
    from synth.sku import contact_sheet

    cat = Catalog(args.catalog)
    record = cat.get(args.id)
    print(record_to_yaml(record), end="")
    out = contact_sheet(cat, args.id, args.out or (cat.entry_dir(args.id) / "contact_sheet.png"))
    print(f"contact sheet: {out}")
    return 0


def _sku_generate(args) -> int:
    from synth.catalog import Catalog
    from synth.library import generate_library

    added, kept = generate_library(
        Catalog(args.catalog),
        args.retail,
        args.industrial,
        args.seed,
        replace=args.replace,
        thumbnails=not args.no_thumbnails,
    )
    print(f"catalog {args.catalog}: {added} generated, {kept} already present")
    return 0


def _sku_remove(args) -> int:
    from synth.catalog import Catalog

    Catalog(args.catalog).remove(args.id)
    print(f"removed {args.id}")
    return 0


def add_sku_parser(sub) -> None:
    sku = sub.add_parser(
        "sku",
        help="manage the SKU / part catalog",
        formatter_class=_Formatter,
        description="Manage the catalog of 3D models (retail SKUs and industrial parts).",
        epilog=textwrap.dedent("""\
            examples:
              simreal sku add ../shared/meshes/ycb/003_cracker_box_textured.gltf --name "Cracker box" --category crackers
              simreal sku add nut.stl --name "M6 nut" --category nut --supercategory industrial --units mm \\
                  --color 0.6 0.62 0.65 --metallic 1 --roughness 0.35 --finish zinc --symmetry discrete --symmetry-order 6
              simreal sku list
              simreal sku show cracker-box
              simreal sku generate --retail 30 --industrial 12 --seed 0
            """),
    )
    s = sku.add_subparsers(dest="sku_cmd", required=True, metavar="{add,list,show,generate,remove}")

    p = s.add_parser(
        "add",
        help="import a mesh (glTF/GLB, OBJ+MTL, PLY, STL) as a catalog entry",
        formatter_class=_Formatter,
        epilog=textwrap.dedent("""\
        example:
          simreal sku add ../shared/meshes/hope/ketchup/textured.obj --name Ketchup --category ketchup --units cm
        The mesh is normalised to metres, its bounding box centred at the origin, +Z up, and stored as GLB
        with its UVs and textures; a thumbnail is rendered. --units auto infers units from the size.
        """),
    )
    p.add_argument("mesh", help="mesh file")
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--category", required=True, help="class label written into COCO")
    p.add_argument("--supercategory", choices=["retail", "industrial"], default="retail")
    p.add_argument("--units", choices=["auto", "m", "cm", "mm", "in"], default="auto")
    p.add_argument(
        "--up",
        choices=["auto", "z", "y"],
        default="auto",
        help="up axis of the file (auto: y for glTF/GLB as the spec says, z otherwise)",
    )
    p.add_argument("--id", default=None, help="catalog id (default: from the name)")
    p.add_argument("--license", default=None, help="licence of the mesh, kept in the record")
    p.add_argument("--replace", action="store_true", help="overwrite an entry with the same id")
    p.add_argument(
        "--color",
        type=float,
        nargs=3,
        metavar=("R", "G", "B"),
        default=None,
        help="base colour (linear 0..1) for meshes without a material of their own",
    )
    p.add_argument("--metallic", type=float, default=None, help="0..1 (e.g. 1 for bare steel)")
    p.add_argument("--roughness", type=float, default=None, help="0..1")
    p.add_argument("--finish", default=None, help="a word kept in the record, e.g. zinc, brass")
    p.add_argument("--symmetry", choices=["none", "mirror", "cylindrical", "discrete"], default="none")
    p.add_argument(
        "--symmetry-order", type=int, default=None, help="for --symmetry discrete, e.g. 6 for a hex nut"
    )
    p.add_argument(
        "--no-align",
        action="store_true",
        help="keep the file's orientation exactly (no small tilt/yaw squaring-up)",
    )
    _add_catalog_arg(p)
    p.set_defaults(func=_sku_add)

    p = s.add_parser(
        "list",
        help="list catalog entries",
        epilog="example:\n  simreal sku list --json",
        formatter_class=_Formatter,
    )
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    _add_catalog_arg(p)
    p.set_defaults(func=_sku_list)

    p = s.add_parser(
        "show",
        help="print a record and write a contact sheet of 8 views",
        epilog="example:\n  simreal sku show can-0003 --out /tmp/can.png",
        formatter_class=_Formatter,
    )
    p.add_argument("id")
    p.add_argument("--out", default=None, help="PNG path (default: <entry>/contact_sheet.png)")
    _add_catalog_arg(p)
    p.set_defaults(func=_sku_show)

    p = s.add_parser(
        "generate",
        help="fill the catalog from the procedural library",
        epilog="example:\n  simreal sku generate --retail 30 --industrial 12 --seed 0",
        formatter_class=_Formatter,
    )
    p.add_argument("--retail", type=int, default=30, help="number of retail packages")
    p.add_argument("--industrial", type=int, default=12, help="number of industrial parts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace", action="store_true", help="regenerate entries that already exist")
    p.add_argument("--no-thumbnails", action="store_true", help="skip rendering thumbnails")
    _add_catalog_arg(p)
    p.set_defaults(func=_sku_generate)

    p = s.add_parser(
        "remove",
        help="delete a catalog entry",
        epilog="example:\n  simreal sku remove can-0003",
        formatter_class=_Formatter,
    )
    p.add_argument("id")
    _add_catalog_arg(p)
    p.set_defaults(func=_sku_remove)


# ---- assembly --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from flows import bench_cli as flows_bench_cli
    from flows import cli as flows_cli
    from synth import render_cli
    from train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="simreal",
        formatter_class=_Formatter,
        epilog=EPILOG,
        description="Synthetic data and sim-to-real training for detection and instance segmentation.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    add_sku_parser(sub)
    render_cli.add_render_parser(sub)
    render_cli.add_viz_parser(sub)
    render_cli.add_stats_parser(sub)
    train_cli.add_train_parser(sub)
    train_cli.add_evaluate_parser(sub)
    train_cli.add_report_parser(sub)
    flows_cli.add_run_parser(sub)

    bench = sub.add_parser(
        "bench",
        help="benchmarks that print figures and write JSON",
        formatter_class=_Formatter,
        epilog="examples:\n  simreal bench render --out runs/bench\n"
        "  simreal bench train --out runs/bench\n"
        "  simreal bench sim2real --task retail --scale smoke",
    )
    bsub = bench.add_subparsers(dest="bench_cmd", required=True, metavar="{render,train,sim2real}")
    render_cli.add_bench_render_parser(bsub)
    train_cli.add_bench_train_parser(bsub)
    flows_bench_cli.add_bench_sim2real_parser(bsub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SimrealError as e:
        print(f"simreal: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simreal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
