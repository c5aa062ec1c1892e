"""``simreal sku add | list | show | generate | remove``: the catalog of 3D models."""

from __future__ import annotations

import argparse
import json
import os
import textwrap

from flows.cli import add_command
from flows.cli.sku_new import add_new_sku_parsers

SKU_EPILOG = textwrap.dedent("""\
    examples:
      simreal sku add ../shared/meshes/ycb/003_cracker_box_textured.gltf --name "Cracker box" --category crackers
      simreal sku add nut.stl --name "M6 nut" --category nut --supercategory industrial --units mm \\
          --color 0.6 0.62 0.65 --metallic 1 --roughness 0.35 --finish zinc --symmetry discrete --symmetry-order 6
      simreal sku list
      simreal sku show cracker-box
      simreal sku generate --retail 30 --industrial 12 --seed 0
      simreal sku dataset ketchup.obj butter.obj --share 0.8 --out runs/new-sku
    """)

ADD_EPILOG = textwrap.dedent("""\
    example:
      simreal sku add ../shared/meshes/hope/ketchup/textured.obj --name Ketchup --category ketchup --units cm
    The mesh is normalised to metres, its bounding box centred at the origin, +Z up, and stored as GLB
    with its UVs and textures; a thumbnail is rendered. --units auto infers units from the size.
    """)


def _catalog_command(p: argparse.ArgumentParser, func) -> None:
    """Every sku command works on one catalog folder, so --catalog comes last and means the same everywhere."""
    p.add_argument(
        "--catalog",
        default=os.environ.get("SIMREAL_CATALOG", os.path.join("assets", "catalog")),
        help="catalog folder (default: $SIMREAL_CATALOG or assets/catalog)",
    )
    p.set_defaults(func=func)


def _sku_add(args) -> int:
    from synth.catalog import Catalog, record_to_yaml
    from synth.sku import add_mesh, material_hints

    material = material_hints(args.color, args.metallic, args.roughness, args.finish)
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
        allow_outside=args.allow_outside_refs,
    )
    print(record_to_yaml(record), end="")
    return 0


def _sku_list(args) -> int:
    from synth.catalog import Catalog
    from synth.sku import list_records

    cat = Catalog(args.catalog)
    if args.json:
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

    catalog, thumbnails = Catalog(args.catalog), not args.no_thumbnails
    added, kept = generate_library(catalog, args.retail, args.industrial, args.seed, args.replace, thumbnails)
    print(f"catalog {args.catalog}: {added} generated, {kept} already present")
    return 0


def _sku_remove(args) -> int:
    from synth.catalog import Catalog

    Catalog(args.catalog).remove(args.id)
    print(f"removed {args.id}")
    return 0


def _add_add_parser(s) -> None:
    p = add_command(
        s, "add", help="import a mesh (glTF/GLB, OBJ+MTL, PLY, STL) as a catalog entry", epilog=ADD_EPILOG
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
    p.add_argument("--id", help="catalog id (default: from the name)")
    p.add_argument("--license", help="licence of the mesh, kept in the record")
    p.add_argument("--replace", action="store_true", help="overwrite an entry with the same id")
    p.add_argument(
        "--color",
        type=float,
        nargs=3,
        metavar=("R", "G", "B"),
        help="base colour (linear 0..1) for meshes without a material of their own",
    )
    p.add_argument("--metallic", type=float, help="0..1 (e.g. 1 for bare steel)")
    p.add_argument("--roughness", type=float, help="0..1")
    p.add_argument("--finish", help="a word kept in the record, e.g. zinc, brass")
    p.add_argument("--symmetry", choices=["none", "mirror", "cylindrical", "discrete"], default="none")
    p.add_argument("--symmetry-order", type=int, help="for --symmetry discrete, e.g. 6 for a hex nut")
    p.add_argument(
        "--no-align", action="store_true", help="keep the file's orientation exactly (no squaring-up)"
    )
    p.add_argument(
        "--allow-outside-refs", action="store_true", help="trust texture/MTL paths outside its folder"
    )
    _catalog_command(p, _sku_add)


def add_sku_parser(sub) -> None:
    sku = add_command(
        sub,
        "sku",
        help="manage the SKU / part catalog",
        description="Manage the catalog of 3D models (retail SKUs and industrial parts).",
        epilog=SKU_EPILOG,
    )
    s = sku.add_subparsers(
        dest="sku_cmd", required=True, metavar="{add,list,show,generate,remove,dataset,match}"
    )
    _add_add_parser(s)
    add_new_sku_parsers(s)

    p = add_command(s, "list", help="list catalog entries", epilog="example:\n  simreal sku list --json")
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    _catalog_command(p, _sku_list)

    p = add_command(
        s,
        "show",
        help="print a record and write a contact sheet of 8 views",
        epilog="example:\n  simreal sku show can-0003 --out /tmp/can.png",
    )
    p.add_argument("id")
    p.add_argument("--out", help="PNG path (default: <entry>/contact_sheet.png)")
    _catalog_command(p, _sku_show)

    p = add_command(
        s,
        "generate",
        help="fill the catalog from the procedural library",
        epilog="example:\n  simreal sku generate --retail 30 --industrial 12 --seed 0",
    )
    p.add_argument("--retail", type=int, default=30, help="number of retail packages")
    p.add_argument("--industrial", type=int, default=12, help="number of industrial parts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace", action="store_true", help="regenerate entries that already exist")
    p.add_argument("--no-thumbnails", action="store_true", help="skip rendering thumbnails")
    _catalog_command(p, _sku_generate)

    p = add_command(
        s, "remove", help="delete a catalog entry", epilog="example:\n  simreal sku remove can-0003"
    )
    p.add_argument("id")
    _catalog_command(p, _sku_remove)
