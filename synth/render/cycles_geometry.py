"""Blender mesh datablocks for scene geometry, built once per worker and shared by every instance.

* glTF / GLB files go through Blender's own glTF importer, which keeps everything the file's PBR
  materials say (label textures, normal and metallic-roughness maps, vertex colours). The importer turns
  glTF's +Y-up into Blender's +Z-up; ``synth.geometry`` (trimesh, used by pyrender and by the amodal
  rasteriser) keeps the file's raw coordinates, so the conversion is undone here. Otherwise a catalog
  mesh would stand on its side in Cycles only.
* Primitives and other mesh formats (OBJ, STL, PLY, ...) are built from ``synth.geometry``'s trimesh
  triangles, so pyrender, Cycles and the amodal silhouettes tessellate a cylinder identically.

Each geometry becomes a list of parts (mesh datablock + local matrix); an instance in a frame is one new
object per part that links the cached mesh (a "linked duplicate"), so a shard imports each file once.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from synth.errors import AssetError
from synth.geometry import geometry_key, load_geometry
from synth.render.cycles_materials import image_from_pixels
from synth.scene import Geometry

GLTF_SUFFIXES = {".glb", ".gltf"}
SMOOTH_ANGLE = math.radians(30)  # edges sharper than this stay sharp on meshes without normals

# Blender's glTF importer maps file coordinates (x, y, z) to (x, -z, y); this is the inverse.
BLENDER_TO_GLTF = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class Part:
    mesh: bpy.types.Mesh
    local: np.ndarray  # 4x4: part coordinates -> the geometry's local frame (metres)


@dataclass
class _Entry:
    parts: list[Part]
    datablocks: list  # every mesh, material and image created for this geometry, freed with it
    last_used: int = 0


class GeometryCache:
    """Geometry key -> parts, least recently used first out.

    Datablocks carry a fake user so they outlive the objects of one frame. Randomized primitives (a box
    of new dimensions every image) would otherwise pile up over a long shard, so beyond ``max_entries``
    the geometries not used by the current frame are freed, with everything their import created.
    """

    def __init__(self, max_entries: int = 256, quiet=contextlib.nullcontext):
        self._quiet = quiet  # context manager factory wrapped around importers (they are chatty)
        self._entries: dict[str, _Entry] = {}
        self._max_entries = max_entries
        self._frame = 0

    def __len__(self) -> int:
        return len(self._entries)

    def begin_frame(self) -> None:
        self._frame += 1

    def parts(self, geom: Geometry) -> list[Part]:
        key = geometry_key(geom)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._build(geom)
        entry.last_used = self._frame
        return entry.parts

    def _build(self, geom: Geometry) -> _Entry:
        before = _datablocks()
        try:
            if geom.kind() == "mesh" and Path(geom.mesh).suffix.lower() in GLTF_SUFFIXES:
                with self._quiet():
                    parts = _import_gltf(Path(geom.mesh))
            else:
                own_material = geom.kind() == "mesh"  # primitives have none: the scene's or the default
                parts = [
                    _part_from_trimesh(m, f"{geom.kind()}-{len(self._entries)}-{i}", own_material)
                    for i, m in enumerate(load_geometry(geom).meshes)
                ]
        except BaseException:
            bpy.data.batch_remove(list(_datablocks() - before))
            raise
        for p in parts:
            p.mesh.use_fake_user = True
            if not p.mesh.materials:  # give every part a slot so instances can override it
                p.mesh.materials.append(None)
        return _Entry(parts, list(_datablocks() - before))

    def end_frame(self) -> None:
        """Free the least recently used geometries that this frame did not use, down to the limit."""
        excess = len(self._entries) - self._max_entries
        if excess <= 0:
            return
        idle = sorted((e.last_used, k) for k, e in self._entries.items() if e.last_used != self._frame)
        doomed = [k for _, k in idle[:excess]]
        blocks = [b for k in doomed for b in self._entries.pop(k).datablocks]
        if blocks:
            bpy.data.batch_remove(blocks)


def _datablocks() -> set:
    return set(bpy.data.meshes) | set(bpy.data.materials) | set(bpy.data.images)


def _import_gltf(path: Path) -> list[Part]:
    if not path.is_file():
        raise AssetError(path, "mesh file not found")
    before = set(bpy.data.objects)
    try:
        result = bpy.ops.import_scene.gltf(filepath=str(path.resolve()))
    except RuntimeError as e:
        raise AssetError(path, f"Blender's glTF importer failed: {str(e).strip().splitlines()[-1]}") from None
    new = [o for o in bpy.data.objects if o not in before]
    if "FINISHED" not in result or not new:
        raise AssetError(path, "Blender's glTF importer read no objects")
    bpy.context.view_layer.update()  # matrix_world of parented nodes
    parts = []
    for o in new:
        if o.type == "MESH" and len(o.data.polygons):
            world = np.array(o.matrix_world, dtype=np.float64)
            parts.append(Part(o.data, BLENDER_TO_GLTF @ world))
    extra = [o.data for o in new if o.type not in ("MESH", "EMPTY") and o.data is not None]  # cameras...
    bpy.data.batch_remove(new + extra)  # meshes, materials and images stay (used by the parts)
    if not parts:
        raise AssetError(path, "mesh file holds no triangles")
    return parts


def _part_from_trimesh(mesh, name: str, own_material: bool) -> Part:
    """A Blender mesh with the trimesh's triangles, split normals, UVs and (textured) material."""
    verts = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.faces, dtype=np.int32)
    me = bpy.data.meshes.new(name)
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    me.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    uv = getattr(mesh.visual, "uv", None)
    if uv is not None and len(uv) == len(verts):
        layer = me.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", np.asarray(uv, dtype=np.float32)[faces.ravel()].ravel())
    me.update()
    me.validate(clean_customdata=False)
    normals = _file_normals(mesh)
    if normals is not None and len(normals) == len(verts):
        me.normals_split_custom_set_from_vertices(normals.tolist())
    else:  # no normals in the file (STL, most PLY): smooth, but keep edges sharper than 30 degrees
        me.set_sharp_from_angle(angle=SMOOTH_ANGLE)  # (pyrender does the same: nuts look faceted)
    mat = _trimesh_material(mesh, name) if own_material else None
    if mat is not None:
        me.materials.append(mat)
    return Part(me, np.eye(4))


def _file_normals(mesh) -> np.ndarray | None:
    """Vertex normals the file (or ``synth.geometry``'s primitive) provided, not ones trimesh would
    average on demand; trimesh keeps provided normals in its cache (the same check trimesh makes)."""
    if "vertex_normals" not in mesh._cache:
        return None
    return np.asarray(mesh.vertex_normals, dtype=np.float32)


def _trimesh_material(mesh, name: str) -> bpy.types.Material | None:
    """The file's own material (OBJ/MTL colour and diffuse texture) as a Principled BSDF."""
    material = getattr(mesh.visual, "material", None)
    if material is None:
        return None
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    factor = getattr(material, "baseColorFactor", None)
    if factor is None:
        factor = getattr(material, "diffuse", None)
    if image is None and factor is None:
        return None
    # trimesh usually stores colour factors as 8-bit RGBA; like pyrender, read them as linear colours
    color = [1.0, 1.0, 1.0, 1.0]
    if factor is not None:
        f = np.asarray(factor, dtype=np.float64).ravel()[:4]
        color = (f / 255.0 if f.max() > 1.0 else f).tolist()
    if len(color) == 3:
        color.append(1.0)
    mat = bpy.data.materials.new(f"{name}-own")
    mat.use_fake_user = True
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    lin = color[:3]
    bsdf.inputs["Base Color"].default_value = (*lin, 1.0)
    bsdf.inputs["Alpha"].default_value = color[3]
    rough = getattr(material, "roughnessFactor", None)
    metal = getattr(material, "metallicFactor", None)
    if rough is not None:
        bsdf.inputs["Roughness"].default_value = float(rough)
    if metal is not None:
        bsdf.inputs["Metallic"].default_value = float(metal)
    if image is not None:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        tex = nt.nodes.new("ShaderNodeTexImage")
        tex.image = image_from_pixels(f"{name}-tex", rgb)
        tex.image.use_fake_user = True
        nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        if any(abs(c - 1.0) > 1e-6 for c in lin):
            mul = nt.nodes.new("ShaderNodeVectorMath")
            mul.operation = "MULTIPLY"
            mul.inputs[1].default_value = lin
            nt.links.new(tex.outputs["Color"], mul.inputs[0])
            nt.links.new(mul.outputs["Vector"], bsdf.inputs["Base Color"])
    mr_image = getattr(material, "metallicRoughnessTexture", None)
    if mr_image is not None:
        _link_metallic_roughness(
            nt,
            bsdf,
            mr_image,
            f"{name}-mr",
            1.0 if rough is None else float(rough),
            1.0 if metal is None else float(metal),
        )
    return mat


def _link_metallic_roughness(nt, bsdf, image, name: str, rough_factor: float, metal_factor: float) -> None:
    """glTF metallic-roughness map: G = roughness, B = metallic, each multiplied by its factor (a paper
    label and a metal lid on one mesh)."""
    tex = nt.nodes.new("ShaderNodeTexImage")
    tex.image = image_from_pixels(
        name, np.asarray(image.convert("RGB"), dtype=np.uint8), colorspace="Non-Color"
    )
    tex.image.use_fake_user = True
    sep = nt.nodes.new("ShaderNodeSeparateColor")
    nt.links.new(tex.outputs["Color"], sep.inputs["Color"])
    for channel, socket, factor in (("Green", "Roughness", rough_factor), ("Blue", "Metallic", metal_factor)):
        out = sep.outputs[channel]
        if abs(factor - 1.0) > 1e-6:
            mul = nt.nodes.new("ShaderNodeMath")
            mul.operation = "MULTIPLY"
            mul.inputs[1].default_value = factor
            nt.links.new(out, mul.inputs[0])
            out = mul.outputs["Value"]
        nt.links.new(out, bsdf.inputs[socket])


def instance_objects(parts: list[Part], to_world: np.ndarray, name: str, collection) -> list:
    """New objects (one per part) linking the cached meshes, placed at ``to_world @ part.local``."""
    objs = []
    for i, p in enumerate(parts):
        o = bpy.data.objects.new(f"{name}.{i}", p.mesh)
        o.matrix_world = Matrix((to_world @ p.local).tolist())
        collection.objects.link(o)
        objs.append(o)
    return objs
