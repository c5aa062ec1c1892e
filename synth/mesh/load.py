"""Load a user's mesh file, validate it, and normalise it into the catalog convention (metres, +Z up,
bounding box centred at the origin; see ``synth.catalog``).

Formats: glTF/GLB (every node's transform is applied and all meshes are concatenated), OBJ+MTL (+ textures),
PLY (vertex colours kept) and STL (geometry only; the material comes from hints). Each decision -- units
(``synth.mesh.units``), up axis and squaring up (``synth.mesh.orient``), several materials baked into one
atlas (``synth.mesh.atlas``) -- is returned as a note so the user sees what was assumed. Every problem is
a one-line ``AssetError`` naming the file; the files a mesh references are checked first
(``synth.mesh.references``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh

from synth.catalog import UNIT_SCALE, MaterialHints, Units
from synth.errors import AssetError
from synth.mesh.checks import (
    check_declared_faces,
    check_face_count,
    check_file,
    first_line,
    looks_binary_garbage,
    not_a_valid_file,
)
from synth.mesh.gltf_refs import (
    GltfReferences,
    check_gltf_textures_loaded,
    check_textures_decode,
    inspect_gltf,
    tag_unmodified_images,
)
from synth.mesh.material import base_color_texture, has_vertex_colors, material_from_visual
from synth.mesh.obj_refs import ObjReferences, check_obj_textures_loaded, inspect_obj
from synth.mesh.orient import FORMAT_UP, UP_REASON, Y_UP_TO_Z_UP, UpArg, square_up
from synth.mesh.parts import bake_scene, check_parts, clean, merge_parts, split_sharp_edges
from synth.mesh.references import CheckedResolver, ReferencePolicy, drop_placeholder_textures, ply_texture
from synth.mesh.units import (
    FORMAT_NAME,
    UnitsArg,
    check_size,
    check_units_arg,
    implausible_size_note,
    resolve_units,
)


@dataclass
class ImportedMesh:
    """A normalised mesh plus what was decided on the way, for the record and for the user."""

    mesh: trimesh.Trimesh  # metres, +Z up, bbox centred at the origin
    source: Path
    original_units: Units
    up: Literal["y", "z"]
    material: MaterialHints  # the factors read from the file (textured=True when a texture is kept)
    tilt_deg: float = 0.0  # levelling rotation applied (see synth.mesh.orient)
    yaw_deg: float = 0.0  # footprint rotation applied about +Z
    notes: list[str] = field(default_factory=list)

    @property
    def size_m(self) -> tuple[float, float, float]:
        return tuple(float(x) for x in self.mesh.extents)

    @property
    def textured(self) -> bool:
        return base_color_texture(self.mesh) is not None


def load_mesh(
    path: str | Path,
    units: UnitsArg = "auto",
    up: UpArg = "auto",
    align: bool = True,
    *,
    allow_outside: bool = False,
) -> ImportedMesh:
    """Read, validate and normalise a mesh file. Every problem is a one-line ``AssetError`` naming the file.
    ``allow_outside`` lets the file reference MTLs, textures and buffers outside its own folder."""
    path = Path(path)
    check_units_arg(path, units)
    if up not in ("auto", "y", "z"):
        raise AssetError(path, f"up must be one of auto, y, z (got '{up}')")
    suffix = check_file(path)
    check_declared_faces(path, suffix)
    notes: list[str] = []
    mesh = _read_single_mesh(path, suffix, notes, ReferencePolicy(path, allow_outside))
    material = material_from_visual(mesh)
    mesh = clean(mesh, path)

    largest = float(mesh.extents.max())
    original_units, how = resolve_units(largest, suffix, units)
    scale = UNIT_SCALE[original_units]
    if units == "auto":
        notes.append(
            f"units: {original_units} ({how}; largest extent {largest:g} in the file "
            f"-> {largest * scale * 1000:.4g} mm)"
        )
    up_axis: Literal["y", "z"] = FORMAT_UP[suffix] if up == "auto" else up
    if up == "auto":
        notes.append(
            f"up axis: +{up_axis.upper()} ({UP_REASON[suffix]}; pass up='y'/'z' if the thumbnail lies down)"
        )
    transform = np.diag([scale, scale, scale, 1.0])
    if up_axis == "y":
        transform = Y_UP_TO_Z_UP @ transform
    mesh.apply_transform(transform)
    tilt, yaw = square_up(mesh, notes) if align else (0.0, 0.0)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    check_size(mesh, path, original_units)
    if note := implausible_size_note(float(mesh.extents.max())):
        notes.append(note)
    if base_color_texture(mesh) is None and not has_vertex_colors(mesh):
        mesh = split_sharp_edges(mesh)
    return ImportedMesh(
        mesh=mesh,
        source=path,
        original_units=original_units,
        up=up_axis,
        material=material,
        tilt_deg=tilt,
        yaw_deg=yaw,
        notes=notes,
    )


def _read_single_mesh(path: Path, suffix: str, notes: list[str], policy: ReferencePolicy) -> trimesh.Trimesh:
    """Check what the file references, parse it and bake it into one mesh: node transforms applied,
    parts concatenated, materials packed into one atlas when they differ."""
    obj_refs = gltf_refs = None
    if suffix == ".obj":
        obj_refs = inspect_obj(policy)
        if obj_refs.note:
            notes.append(obj_refs.note)
        resolver = obj_refs.resolver(policy)
    elif suffix in (".gltf", ".glb"):
        gltf_refs = inspect_gltf(policy, suffix)
        check_face_count(path, gltf_refs.faces)
        resolver = gltf_refs.resolver(policy)
    else:
        resolver = CheckedResolver(policy, [path.parent], ply_texture(policy) if suffix == ".ply" else {})
    meshes = _parse(path, suffix, resolver)
    check_face_count(path, sum(len(m.faces) for m in meshes))
    _check_textures_loaded(path, meshes, obj_refs, gltf_refs)
    check_parts(path, meshes)
    mesh = merge_parts(path, meshes, notes)
    mesh.metadata["source"] = str(path)
    return mesh


def _parse(path: Path, suffix: str, resolver: CheckedResolver) -> list[trimesh.Trimesh]:
    """The file's triangle meshes, node transforms applied; a clear error when there are none."""
    try:
        with path.open("rb") as f:
            loaded = trimesh.load(f, file_type=suffix[1:], force="scene", process=False, resolver=resolver)
    except AssetError:
        raise
    except Exception as e:  # noqa: BLE001 - parsers raise anything on garbage input
        raise AssetError(path, f"cannot be read as {FORMAT_NAME[suffix]} ({first_line(e)})") from None
    parts = bake_scene(loaded) if isinstance(loaded, trimesh.Scene) else [loaded]
    meshes = [g for g in parts if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not meshes:
        kinds = sorted({type(g).__name__ for g in parts if len(getattr(g, "vertices", [])) > 0})
        if not kinds and suffix in (".obj", ".stl", ".ply") and looks_binary_garbage(path, suffix):
            raise not_a_valid_file(path, suffix)
        extra = f" (only {', '.join(kinds)})" if kinds else ""
        raise AssetError(path, f"contains no triangle faces{extra}")
    return meshes


def _check_textures_loaded(
    path: Path,
    meshes: list[trimesh.Trimesh],
    obj_refs: ObjReferences | None,
    gltf_refs: GltfReferences | None,
) -> None:
    """Every named texture arrived; trimesh's stand-ins for missing ones are not textures."""
    check_textures_decode(path, meshes)
    if obj_refs is not None:
        check_obj_textures_loaded(obj_refs, meshes)
    if gltf_refs is not None:
        check_gltf_textures_loaded(path, gltf_refs, meshes)
        if gltf_refs.images:
            tag_unmodified_images(meshes, gltf_refs.images)
    drop_placeholder_textures(meshes)
