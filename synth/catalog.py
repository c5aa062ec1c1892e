"""The SKU / part catalog: one folder per entry holding a validated record, a normalised GLB and a thumbnail.

Layout of a catalog root (default ``assets/catalog``)::

    <root>/<id>/sku.yaml        the record (human-readable, validated on load)
    <root>/<id>/mesh.glb        normalised mesh: metres, bounding-box centre at the origin, +Z up in the raw
                                vertex coordinates (our convention, not glTF's Y-up: a generic glTF viewer
                                shows entries lying on their back; every simreal backend reads them as +Z up)
    <root>/<id>/thumbnail.png   a rendered preview

An entry appears by an atomic directory rename, so the catalog never holds a half-written entry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synth.errors import AssetError
from synth.fsutil import atomic_directory, remove_stale_temporaries
from synth.paths import find_input

RECORD_FILE = "sku.yaml"
MESH_FILE = "mesh.glb"
THUMBNAIL_FILE = "thumbnail.png"

DEFAULT_CATALOG = Path("assets") / "catalog"

Supercategory = Literal["retail", "industrial"]
Units = Literal["m", "cm", "mm", "in"]
UNIT_SCALE = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class MaterialHints(BaseModel):
    """How the object should look when the renderer does not randomize it.

    For meshes without a material of their own (STL, bare PLY) these values are the material. For textured
    meshes the GLB's own material wins and ``base_color`` only describes the dominant colour (linear RGB),
    e.g. for distractor recolouring or reports."""

    model_config = ConfigDict(extra="forbid")
    base_color: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 1.0)
    metallic: float = Field(0.0, ge=0.0, le=1.0)
    roughness: float = Field(0.5, ge=0.0, le=1.0)
    textured: bool = False
    finish: str | None = None  # e.g. "zinc", "brass", "glossy-print"

    @field_validator("base_color")
    @classmethod
    def _in_unit_range(cls, v):
        if any(not (0.0 <= c <= 1.0) for c in v):
            raise ValueError("base_color components must be in [0, 1]")
        return v


class Source(BaseModel):
    """Where an entry came from, so a dataset can be traced back to its inputs."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["import", "procedural"]
    path: str | None = None  # original file for imports
    generator: str | None = None  # procedural kind, e.g. "can"
    seed: int | None = None
    original_units: Units | None = None
    license: str | None = None


class SkuRecord(BaseModel):
    """One SKU or part. ``category`` is the class label written into COCO."""

    model_config = ConfigDict(extra="forbid")
    id: str
    name: str = Field(min_length=1)
    category: str = Field(min_length=1)
    supercategory: Supercategory
    mesh: str = MESH_FILE  # relative to the entry folder
    thumbnail: str | None = THUMBNAIL_FILE
    size_m: tuple[float, float, float]  # axis-aligned extents (x, y, z) in metres after normalisation
    units: Units = "m"  # units of the stored mesh (always metres); the original is in source
    material: MaterialHints = MaterialHints()
    symmetry: Literal["none", "mirror", "cylindrical", "discrete"] = "none"
    symmetry_order: int | None = Field(None, ge=2)  # for "discrete": e.g. 6 for a hex nut
    source: Source

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("id must be lowercase letters, digits, '_' or '-', at most 64 characters")
        return v

    @field_validator("size_m")
    @classmethod
    def _positive_size(cls, v):
        if any(not (1e-4 <= s <= 10.0) for s in v):
            raise ValueError(f"size_m {v} is outside 0.1 mm .. 10 m")
        return v

    @model_validator(mode="after")
    def _order_goes_with_discrete(self):
        problem = symmetry_problem(self.symmetry, self.symmetry_order)
        if problem:
            raise ValueError(problem)
        return self


def symmetry_problem(symmetry: str, order: int | None) -> str | None:
    """Why a symmetry and its order do not go together, or None: a discrete symmetry is meaningless
    without its order (a pose metric would treat a hex nut as asymmetric)."""
    if symmetry == "discrete" and order is None:
        return "symmetry 'discrete' needs an order (--symmetry-order, e.g. 6 for a hex nut)"
    if symmetry != "discrete" and order is not None:
        return f"a symmetry order only goes with symmetry 'discrete', not '{symmetry}'"
    if order is not None and order < 2:
        return f"symmetry order {order} is not a symmetry; give 2 or more"
    return None


def slugify(text: str) -> str:
    """A catalog id from a display name: 'Cracker Box (YCB)' -> 'cracker-box-ycb'."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:64] or "sku"


def _one_line(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "record"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


class Catalog:
    """A folder of catalog entries. Reads are lazy; writes are atomic per entry."""

    def __init__(self, root: str | Path = DEFAULT_CATALOG):
        self.root = find_input(root)  # the repository's catalog when run from another folder

    # ---- reading -------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / RECORD_FILE).is_file()
        )

    def __len__(self) -> int:
        return len(self.ids())

    def __contains__(self, sku_id: str) -> bool:
        return (self.root / sku_id / RECORD_FILE).is_file()

    def __iter__(self) -> Iterator[SkuRecord]:
        for i in self.ids():
            yield self.get(i)

    def get(self, sku_id: str) -> SkuRecord:
        path = self.root / sku_id / RECORD_FILE
        if not path.is_file():
            raise AssetError(self.root, f"no catalog entry '{sku_id}' (see `simreal sku list`)")
        return load_record(path)

    def entry_dir(self, sku_id: str) -> Path:
        return self.root / sku_id

    def mesh_path(self, record: SkuRecord) -> Path:
        return self.root / record.id / record.mesh

    def thumbnail_path(self, record: SkuRecord) -> Path | None:
        return self.root / record.id / record.thumbnail if record.thumbnail else None

    def categories(self) -> list[str]:
        return sorted({r.category for r in self})

    # ---- writing -------------------------------------------------------------------------------
    def check_folder(self) -> None:
        """One line when the catalog path is a file, or lies under one, instead of a folder (checked
        before any mesh work, so nothing is imported in vain)."""
        for p in (self.root, *self.root.parents):
            if p.exists():
                if not p.is_dir():
                    raise AssetError(self.root, f"is not a catalog folder ({p} is a file)")
                return

    def unique_id(self, base: str) -> str:
        base = slugify(base)
        if base not in self:
            return base
        n = 2
        while f"{base}-{n}" in self:
            n += 1
        return f"{base}-{n}"

    def add(
        self,
        record: SkuRecord,
        write_files: Callable[[Path], None],
        replace: bool = False,
    ) -> SkuRecord:
        """Create an entry: ``write_files(tmpdir)`` writes the mesh (and thumbnail) into a temporary
        folder, the record is validated and saved beside them, then the folder is renamed into place."""
        if record.id in self and not replace:
            raise AssetError(self.root / record.id, "entry already exists (use --replace to overwrite)")
        self.check_folder()
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.root)
        with atomic_directory(self.root / record.id, replace=replace) as tmp:
            write_files(tmp)
            if not (tmp / record.mesh).is_file():
                raise AssetError(tmp / record.mesh, "mesh was not written")
            if record.thumbnail and not (tmp / record.thumbnail).is_file():
                record = record.model_copy(update={"thumbnail": None})
            save_record(record, tmp / RECORD_FILE)
        return record

    def remove(self, sku_id: str) -> None:
        import shutil

        d = self.root / sku_id
        if not (d / RECORD_FILE).is_file():
            raise AssetError(self.root, f"no catalog entry '{sku_id}'")
        remove_stale_temporaries(self.root)
        tomb = d.with_name(f".{sku_id}.removed.{os.getpid()}")
        os.replace(d, tomb)
        shutil.rmtree(tomb, ignore_errors=True)


# libyaml's safe loader when PyYAML was built with it: every render worker reads every record of its
# catalog, and the pure-Python parser took ~8 ms per record (a third of a second per worker)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_record(path: str | Path) -> SkuRecord:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_SAFE_LOADER)
    except yaml.YAMLError as e:
        raise AssetError(path, f"not valid YAML ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise AssetError(path, e.strerror or str(e)) from None
    if not isinstance(data, dict):
        raise AssetError(path, "a catalog record must be a mapping")
    try:
        return SkuRecord.model_validate(data)
    except ValidationError as e:
        raise AssetError(path, _one_line(e)) from None


def save_record(record: SkuRecord, path: str | Path) -> None:
    data = record.model_dump(mode="json")
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def record_to_yaml(record: SkuRecord) -> str:
    return yaml.safe_dump(record.model_dump(mode="json"), sort_keys=False)
