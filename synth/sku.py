"""The operations behind ``simreal sku add | list | show``, and the one way anything enters the catalog.

``write_entry`` is the single writer: imports (``add_mesh``) and the procedural library (``add_asset`` or
``write_entry`` directly) both go through it, so every entry gets the same GLB layout, the same material
rule (the mesh's own glTF material wins; ``record.material`` fills in for meshes without one -- for imports
the two agree by construction) and the same thumbnail. Everything is validated before the catalog is
touched, and ``Catalog.add`` publishes an entry by one directory rename, so a failed add leaves the
catalog exactly as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh
from pydantic import ValidationError

from synth.catalog import Catalog, MaterialHints, SkuRecord, Source, slugify, symmetry_problem
from synth.errors import AssetError, ConfigError
from synth.mesh import (
    UnitsArg,
    UpArg,
    base_color_texture,
    load_mesh,
    read_glb,
    size_label,
    with_factors,
    write_glb,
)

log = logging.getLogger(__name__)

Echo = Callable[[str], None]

SIZE_TOLERANCE = 1e-3  # relative: record.size_m must describe the mesh it comes with


def add_mesh(
    catalog: Catalog,
    path: str | Path,
    name: str,
    category: str,
    supercategory: str = "retail",
    units: UnitsArg = "auto",
    up: UpArg = "auto",
    replace: bool = False,
    license: str | None = None,
    *,
    sku_id: str | None = None,
    material: MaterialHints | None = None,
    symmetry: str = "none",
    symmetry_order: int | None = None,
    align: bool = True,
    allow_outside: bool = False,
    thumbnail: bool = True,
    echo: Echo | None = print,
) -> SkuRecord:
    """Import a mesh file as a catalog entry (``simreal sku add``).

    ``material`` replaces the factors read from the file, in the record and in the stored GLB (``textured``
    always follows the mesh); without it the record states the file's own factors. The decisions taken on
    the way (units, up axis, squaring up, atlas) are passed to ``echo`` one per line. ``allow_outside`` lets
    the file reference materials, textures and buffers outside its own folder (refused by default).
    """
    path = Path(path)
    _check_symmetry(symmetry, symmetry_order)
    name, category, sku_id = _identity(catalog, path, name, category, sku_id, replace)
    imported = load_mesh(path, units=units, up=up, align=align, allow_outside=allow_outside)
    for note in imported.notes:
        _say(echo, f"{path.name}: {note}")
    textured = base_color_texture(imported.mesh) is not None
    hints = (material or imported.material).model_copy(update={"textured": textured})
    mesh = with_factors(imported.mesh, hints) if material is not None else imported.mesh
    record = _make_record(
        path,
        id=sku_id,
        name=name,
        category=category,
        supercategory=supercategory,
        size_m=_micrometres(imported.size_m),
        material=hints,
        symmetry=symmetry,
        symmetry_order=symmetry_order,
        source=Source(
            kind="import", path=str(path.resolve()), original_units=imported.original_units, license=license
        ),
    )
    return write_entry(catalog, record, mesh, thumbnail=thumbnail, replace=replace, echo=echo)


def add_asset(
    catalog: Catalog,
    mesh: trimesh.Trimesh,
    *,
    name: str,
    category: str,
    supercategory: str,
    source: Source,
    sku_id: str | None = None,
    material: MaterialHints | None = None,
    symmetry: str = "none",
    symmetry_order: int | None = None,
    replace: bool = False,
    thumbnail: bool = True,
    echo: Echo | None = None,
) -> SkuRecord:
    """Add an in-memory mesh (metres, +Z up; it is centred here) with a record built from the fields."""
    where = catalog.root / (sku_id or slugify(name))
    _check_symmetry(symmetry, symmetry_order)
    name, category, sku_id = _identity(catalog, where, name, category, sku_id, replace)
    mesh = _checked_mesh(mesh, where).copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    hints = (material or MaterialHints()).model_copy(
        update={"textured": base_color_texture(mesh) is not None}
    )
    record = _make_record(
        where,
        id=sku_id,
        name=name,
        category=category,
        supercategory=supercategory,
        size_m=_micrometres(mesh.extents),
        material=hints,
        symmetry=symmetry,
        symmetry_order=symmetry_order,
        source=source,
    )
    return write_entry(catalog, record, mesh, thumbnail=thumbnail, replace=replace, echo=echo)


def write_entry(
    catalog: Catalog,
    record: SkuRecord,
    mesh: trimesh.Trimesh,
    thumbnail: bool = True,
    replace: bool = False,
    echo: Echo | None = None,
) -> SkuRecord:
    """Store ``mesh`` as ``record.mesh`` (GLB) plus a thumbnail and the record, atomically.

    The GLB keeps the mesh's own glTF material (textures, factors); ``record.material`` supplies the factors
    of a mesh that has none (plain geometry, vertex colours), see ``synth.mesh.stored_factors``. The mesh must
    be in metres with +Z up and match ``record.size_m``; it is translated so its bounding-box centre is the
    origin (the catalog convention). Returns the stored record (``thumbnail`` None when none could be
    rendered, e.g. no EGL)."""
    where = catalog.entry_dir(record.id)
    _check_free(catalog, record.id, replace, where)
    mesh = _checked_mesh(mesh, where).copy()
    extents = np.asarray(mesh.extents, dtype=np.float64)
    if not np.allclose(extents, record.size_m, rtol=SIZE_TOLERANCE, atol=1e-7):
        raise AssetError(
            where,
            f"size_m {tuple(round(s, 6) for s in record.size_m)} does not match the "
            f"mesh extents {tuple(round(float(e), 6) for e in extents)} (metres)",
        )
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    if record.material.textured != (base_color_texture(mesh) is not None):
        record = record.model_copy(
            update={
                "material": record.material.model_copy(
                    update={"textured": base_color_texture(mesh) is not None}
                )
            }
        )

    def write_files(tmp: Path) -> None:
        write_glb(mesh, tmp / record.mesh, record.material)
        _store_preparation(tmp / record.mesh)
        if thumbnail and record.thumbnail:
            renderer = _renderer_or_none(echo)
            if renderer is not None:
                from synth.thumbnail import save_thumbnail

                # rendered from the file just written, so the preview shows exactly what is stored
                save_thumbnail(read_glb(tmp / record.mesh), tmp / record.thumbnail, record.material, renderer)

    stored = catalog.add(
        record if thumbnail else record.model_copy(update={"thumbnail": None}), write_files, replace=replace
    )
    _say(echo, f"added '{stored.id}' ({stored.category}, {size_label(stored.size_m)}) to {catalog.root}")
    return stored


def list_records(catalog: Catalog) -> str:
    """A plain-text table of the catalog (``simreal sku list``); unreadable entries are listed, not fatal."""
    ids = catalog.ids()
    if not ids:
        return (
            f"catalog {catalog.root}: no entries (add one with `simreal sku add` or `simreal sku generate`)"
        )
    header = ("ID", "NAME", "CATEGORY", "SUPER", "SIZE x*y*z (mm)", "MATERIAL", "SOURCE")
    rows: list[tuple[str, ...]] = []
    broken = 0
    categories = set()
    for sku_id in ids:
        try:
            r = catalog.get(sku_id)
        except AssetError as e:
            broken += 1
            rows.append((sku_id, "!! unreadable record", "", "", "", "", e.problem))
            continue
        categories.add(r.category)
        rows.append(
            (
                r.id,
                r.name,
                r.category,
                r.supercategory,
                size_label(r.size_m, unit=False),
                _material_label(r.material),
                _source_label(r.source),
            )
        )
    widths = [min(max(len(row[i]) for row in [header, *rows]), 40) for i in range(len(header))]
    lines = [
        "  ".join(_cell(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    ]
    summary = f"{len(ids)} entries, {len(categories)} categories in {catalog.root}"
    if broken:
        summary += f"; {broken} unreadable"
    return "\n".join([*lines, "", summary])


def contact_sheet(catalog: Catalog, sku_id: str, out_png: str | Path) -> Path:
    """Write an 8-view contact sheet of an entry with its name, category and size (``simreal sku show``)."""
    from synth.thumbnail import save_contact_sheet

    record = catalog.get(sku_id)
    mesh = read_glb(catalog.mesh_path(record))
    subtitle = f"{record.id}  ·  category: {record.category}  ·  {record.supercategory}  ·  {size_label(record.size_m)}"
    return save_contact_sheet(mesh, out_png, title=record.name, subtitle=subtitle, material=record.material)


# ---- helpers -------------------------------------------------------------------------------------------
def _clean_label(where, key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AssetError(where, f"{key} must not be empty")
    value = value.strip()
    if any(ord(ch) < 32 for ch in value):
        raise AssetError(where, f"{key} must be a single line of printable text")
    return value


def _identity(
    catalog: Catalog, where, name, category, sku_id: str | None, replace: bool
) -> tuple[str, str, str]:
    """Cleaned name and category and the entry's id (default: the name's slug), refused if taken; both
    entry points check these before any mesh work, so a bad label or a taken id fails fast."""
    catalog.check_folder()
    name, category = _clean_label(where, "name", name), _clean_label(where, "category", category)
    sku_id = sku_id if sku_id is not None else slugify(name)
    _check_free(catalog, sku_id, replace, where)
    return name, category, sku_id


def _check_symmetry(symmetry: str, order: int | None) -> None:
    problem = symmetry_problem(symmetry, order)
    if problem:
        raise ConfigError("--symmetry", problem)


_MATERIAL_FLAGS = {"base_color": "--color", "metallic": "--metallic", "roughness": "--roughness"}


def material_hints(color=None, metallic=None, roughness=None, finish=None) -> MaterialHints | None:
    """The material flags of ``sku add`` as MaterialHints (None when no colour, metallic or roughness
    is given: the file's own material stands), checked before any mesh work: one line naming the flag."""
    if color is None and metallic is None and roughness is None:
        return None
    try:
        return MaterialHints(
            base_color=(*(color or (0.8, 0.8, 0.8)), 1.0),
            metallic=0.0 if metallic is None else metallic,
            roughness=0.5 if roughness is None else roughness,
            finish=finish,
        )
    except ValidationError as e:
        first = e.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "material"
        raise ConfigError(_MATERIAL_FLAGS.get(key, key), first["msg"].removeprefix("Value error, ")) from None


def _store_preparation(mesh_path: Path) -> None:
    """Render-ready geometry, hull and resting poses computed now, once, instead of in every render
    worker (synth.geometry_cache, synth.prep_cache).
    A mesh that cannot be placed (flat) is still a valid entry: it just gets no preparation."""
    from synth.randomize.shapes import store_preparation

    try:
        store_preparation(mesh_path)
    except AssetError as e:
        log.info("%s: no placement preparation stored (%s)", mesh_path, e.problem)


def _check_free(catalog: Catalog, sku_id: str, replace: bool, where) -> None:
    if sku_id in catalog and not replace:
        raise AssetError(catalog.entry_dir(sku_id), "entry already exists (use --replace to overwrite)")


def _make_record(where, **fields) -> SkuRecord:
    try:
        return SkuRecord(**fields)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(x) for x in first["loc"]) or "record"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise AssetError(where, f"{key}: {first['msg']}{more}") from None


def _checked_mesh(mesh, where) -> trimesh.Trimesh:
    if not isinstance(mesh, trimesh.Trimesh):
        raise AssetError(where, f"expected a trimesh.Trimesh, got {type(mesh).__name__}")
    if len(mesh.faces) == 0:
        raise AssetError(where, "mesh has no faces")
    if not np.isfinite(mesh.vertices).all():
        raise AssetError(where, "mesh has NaN or infinite vertex coordinates")
    return mesh


def _renderer_or_none(echo: Echo | None):
    """The shared thumbnail renderer, or None (with a warning) where no OpenGL/EGL context can be made."""
    try:
        from synth.thumbnail import shared_renderer

        return shared_renderer()
    except Exception as e:  # noqa: BLE001 - missing EGL/GL libraries surface as many exception types
        _say(
            echo,
            f"warning: no thumbnail (cannot create an offscreen OpenGL context: {str(e).splitlines()[0]})",
        )
        return None


def _micrometres(size) -> tuple[float, float, float]:
    """Extents rounded to 1 um: float32 noise ('0.07180000096559525') helps nobody reading sku.yaml."""
    return tuple(round(float(s), 6) for s in size)


def _say(echo: Echo | None, text: str) -> None:
    if echo is not None:
        echo(text)


def _material_label(m: MaterialHints) -> str:
    if m.textured:
        kind = "textured"
    elif m.metallic >= 0.5:
        kind = "metal"
    else:
        kind = "plain"
    return f"{kind} ({m.finish})" if m.finish else kind


def _source_label(s: Source) -> str:
    if s.kind == "import":
        name = Path(s.path).name if s.path else "?"
        return f"import {name}" + (f" [{s.original_units}]" if s.original_units else "")
    return f"procedural {s.generator or '?'}" + (f" seed {s.seed}" if s.seed is not None else "")


def _cell(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"
