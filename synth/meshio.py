"""Load a user's mesh file, validate it, and normalise it into the catalog convention.

Catalog convention (see ``synth.catalog``): metres, +Z up, axis-aligned bounding box centred at the origin,
stored as a single-primitive GLB with a metallic-roughness material and embedded textures.

Formats: glTF/GLB (every node's transform is applied and all meshes are concatenated), OBJ+MTL (+ textures),
PLY (vertex colours kept) and STL (geometry only; the material comes from hints).

Decisions, each printed as a note so the user sees what was assumed:

* **Units** (``units="auto"``): the file's format decides first when it has a convention and that convention
  gives a plausible product/part size (largest extent between 3 mm and 1.5 m): glTF/GLB are metres by spec,
  STL is millimetres by CAD / 3D-printing habit. Otherwise the size decides, from the largest extent ``L`` in
  file units: ``L > 20`` -> mm, ``2 < L <= 20`` -> cm, ``L <= 2`` -> m. Inches are never guessed (they
  overlap centimetres); pass ``units="in"``.
* **Up axis** (``up="auto"``): glTF is +Y up by spec, so ``y``; STL and PLY come from CAD / scanners that are
  +Z up, so ``z``. OBJ has no convention: exporters differ (HOPE's ``textured.obj`` scans are +Y up, their
  Blender re-exports +Z up), so ``auto`` keeps ``z`` and a wrong guess is visible in the thumbnail; pass
  ``up="y"`` then. ``y`` rotates +90 degrees about X: (x, y, z) -> (x, -z, y), glTF's front (+Z) faces -Y.
* **Squaring up** (``align=True``): scans are often captured a little off the axes, which makes the
  axis-aligned size (and hence shelf packing and collision boxes) too large: the YCB mustard bottle is 16 %
  too deep, the sugar box (tilted 2 degrees) 6 % too thick. Two corrections, each applied only when it
  shrinks the box by >= 1 %, so CAD parts and round objects are left exactly as they are:
  *levelling* -- when a large flat side of the convex hull (a box's bottom or top) is within 10 degrees of
  horizontal, the smallest rotation that makes it level; *footprint yaw* -- when the top view has a meaningful orientation
  (box-like: its convex hull fills >= 90 % of its minimum-area rectangle; or elongated: that rectangle's
  aspect >= 1.2), the smallest rotation about Z (|angle| <= 45 degrees) that makes the rectangle
  axis-aligned, so the face that looked forward still does. Round footprints (cans, nuts, gears) are never
  turned.
* **Several materials** (a glTF with parts of different materials, an OBJ with several ``usemtl``): baked
  into one texture atlas (``bake_atlas``) rather than keeping only the dominant texture, so every part keeps
  its look -- a printed label next to a plain cap next to a metal pin -- in a single-material GLB. Each
  part's texture times its colour factor (or a swatch of its plain colour) becomes a cell with an
  edge-replicated gutter; per-part metal and roughness go into a metallic-roughness atlas with the same
  layout when they differ. Parts whose UVs tile (outside 0..1) are wrapped into their cell per vertex, which
  can smear a triangle spanning a tile border; normal/occlusion/emissive maps are dropped. Both are reported.
* **OBJ ``Kd`` with a ``map_Kd``**: the texture is used unmultiplied (Blender writes ``Kd 0.8`` by default and
  most tools ignore it when a map is present).
* A texture that the file references but that is missing or unreadable is an error, not a silent grey mesh.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh
from PIL import Image

from synth.catalog import UNIT_SCALE, MaterialHints, Units
from synth.errors import AssetError
from synth.fsutil import atomic_write_bytes

SUPPORTED_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")
UnitsArg = Literal["auto", "m", "cm", "mm", "in"]
UpArg = Literal["auto", "y", "z"]

# Preferred units of a format, used by units="auto" when they give a plausible size.
FORMAT_UNITS: dict[str, Units] = {".glb": "m", ".gltf": "m", ".stl": "mm"}
FORMAT_UP: dict[str, Literal["y", "z"]] = {".glb": "y", ".gltf": "y", ".obj": "z", ".ply": "z", ".stl": "z"}

PLAUSIBLE_LARGEST_M = (0.003, 1.5)  # a product or part: a 3 mm washer .. a 1.5 m appliance
ACCEPTED_LARGEST_M = (0.001, 10.0)  # outside: certainly wrong units (or wrong file)
MIN_THICKNESS_M = 1e-4  # thinner than 0.1 mm is a flat, zero-volume surface (SkuRecord's lower bound)

ALIGN_MIN_FILL = 0.90
ALIGN_MIN_ASPECT = 1.2
ALIGN_MIN_GAIN = 0.01
LEVEL_MAX_TILT_DEG = 10.0
SHARP_EDGE_DEG = (
    30.0  # untextured meshes: faces meeting at a sharper angle get split normals (crisp CAD edges)
)


@dataclass
class ImportedMesh:
    """A normalised mesh plus what was decided on the way, for the record and for the user."""

    mesh: trimesh.Trimesh  # metres, +Z up, bbox centred at the origin
    source: Path
    original_units: Units
    up: Literal["y", "z"]
    material: MaterialHints  # the factors read from the file (textured=True when a texture is kept)
    tilt_deg: float = 0.0  # levelling rotation applied (see "Squaring up")
    yaw_deg: float = 0.0  # footprint rotation applied about +Z
    notes: list[str] = field(default_factory=list)

    @property
    def size_m(self) -> tuple[float, float, float]:
        return tuple(float(x) for x in self.mesh.extents)

    @property
    def textured(self) -> bool:
        return base_color_texture(self.mesh) is not None


# ---- public API ----------------------------------------------------------------------------------------
def load_mesh(
    path: str | Path, units: UnitsArg = "auto", up: UpArg = "auto", align: bool = True
) -> ImportedMesh:
    """Read, validate and normalise a mesh file. Every problem is a one-line ``AssetError`` naming the file."""
    path = Path(path)
    if units not in ("auto", *UNIT_SCALE):
        raise AssetError(path, f"units must be one of auto, {', '.join(UNIT_SCALE)} (got '{units}')")
    if up not in ("auto", "y", "z"):
        raise AssetError(path, f"up must be one of auto, y, z (got '{up}')")
    suffix = _check_file(path)
    notes: list[str] = []
    obj_refs = None
    if suffix == ".obj":
        obj_refs = _inspect_obj(path)
        if obj_refs.note:
            notes.append(obj_refs.note)
    image_files: list[Path | None] = []
    if suffix in (".gltf", ".glb"):
        image_files = _check_gltf_references(path, suffix)

    mesh = _read_single_mesh(path, suffix, notes, obj_refs, image_files)
    material = _material_from_visual(mesh)
    mesh = _clean(mesh, path)

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
            f"up axis: +{up_axis.upper()} ({_UP_REASON[suffix]}; pass up='y'/'z' if the thumbnail lies down)"
        )

    transform = np.diag([scale, scale, scale, 1.0])
    if up_axis == "y":
        transform = Y_UP_TO_Z_UP @ transform
    mesh.apply_transform(transform)

    tilt = yaw = 0.0
    if align:
        rotation, tilt, gain = levelling_rotation(mesh.vertices)
        if tilt:
            mesh.apply_transform(rotation)
            notes.append(
                f"levelled: tilted {tilt:.1f} deg to stand square on +Z (upright box volume -{gain:.0%})"
            )
        yaw, gain = footprint_yaw(mesh.vertices)
        if yaw:
            mesh.apply_transform(trimesh.transformations.rotation_matrix(math.radians(yaw), [0, 0, 1]))
            notes.append(f"aligned footprint: rotated {yaw:+.1f} deg about Z (footprint area -{gain:.0%})")
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    _check_size(mesh, path, original_units)
    if not _plausible(float(mesh.extents.max())):
        notes.append(
            f"warning: largest extent {mesh.extents.max() * 1000:.4g} mm is unusual for a product "
            f"or part ({PLAUSIBLE_LARGEST_M[0] * 1000:g} mm .. {PLAUSIBLE_LARGEST_M[1]:g} m); "
            f"check units"
        )
    if base_color_texture(mesh) is None and not _has_vertex_colors(mesh):
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


def resolve_units(largest_extent: float, suffix: str, units: UnitsArg = "auto") -> tuple[Units, str]:
    """The units of a file and why: given explicitly, the format's convention, or the size heuristic."""
    if units != "auto":
        if units not in UNIT_SCALE:
            raise AssetError(None, f"units must be one of auto, {', '.join(UNIT_SCALE)} (got '{units}')")
        return units, "given"
    preferred = FORMAT_UNITS.get(suffix)
    if preferred and _plausible(largest_extent * UNIT_SCALE[preferred]):
        return preferred, f"{_FORMAT_NAME[suffix]} convention"
    if largest_extent > 20:
        guess: Units = "mm"
    elif largest_extent > 2:
        guess = "cm"
    else:
        guess = "m"
    why = "inferred from the size"
    if preferred:
        why += f"; {_FORMAT_NAME[suffix]} would be {preferred} but that gives an implausible size"
    return guess, why


def levelling_rotation(
    vertices: np.ndarray, max_tilt_deg: float = LEVEL_MAX_TILT_DEG
) -> tuple[np.ndarray, float, float]:
    """(4x4 rotation, tilt in degrees, fractional box-volume gain) that stands a slightly tilted object
    square on +Z; (identity, 0, 0) when nothing qualifies.

    Candidates are the convex hull's largest facets within ``max_tilt_deg`` of horizontal (a tilted box's
    bottom and top are such facets). Each is judged by the volume of the box left once it is level and the
    footprint is squared too (height x minimum-area footprint rectangle, so yaw does not matter); the best
    wins if it beats the untouched mesh by ``ALIGN_MIN_GAIN``. Cheaper and steadier than a full
    minimum-volume oriented box, and it can only ever tilt by a few degrees."""
    from scipy.spatial import ConvexHull, QhullError

    points = np.asarray(vertices, dtype=np.float64)
    none = (np.eye(4), 0.0, 0.0)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        return none  # flat or collinear: nothing to level
    corners = points[hull.vertices]
    normals = hull.equations[:, :3]
    tris = points[hull.simplices]
    areas = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    tilt = np.degrees(np.arccos(np.clip(np.abs(normals[:, 2]), 0.0, 1.0)))
    pick = np.flatnonzero((tilt > 0.05) & (tilt <= max_tilt_deg))
    if len(pick) == 0:
        return none
    # group nearly parallel facets (a scanned box bottom is many), keep the 16 largest groups
    keys, group = np.unique(
        np.round(normals[pick] * np.sign(normals[pick, 2:3]), 2), axis=0, return_inverse=True
    )
    group_area = np.bincount(group.reshape(-1), weights=areas[pick], minlength=len(keys))
    pick = np.array(
        [
            pick[group.reshape(-1) == g][np.argmax(areas[pick][group.reshape(-1) == g])]
            for g in np.argsort(-group_area)[:16]
        ]
    )

    def upright_volume(pts: np.ndarray) -> float:
        # height x minimum-area footprint: what is left once the footprint is also squared (yaw-invariant)
        try:
            _, rect = trimesh.bounds.oriented_bounds_2D(pts[:, :2])
        except Exception:  # noqa: BLE001 - degenerate footprint
            return float("inf")
        return float(np.ptp(pts[:, 2]) * rect[0] * rect[1])

    before = upright_volume(corners)
    best = none
    for i in pick:
        n = normals[i] * np.sign(normals[i, 2])
        rotation = _tilt_to_vertical(n)
        gain = 1.0 - upright_volume(trimesh.transform_points(corners, rotation)) / before
        if gain >= ALIGN_MIN_GAIN and gain > best[2]:
            best = (rotation, float(tilt[i]), gain)
    return best


def _tilt_to_vertical(n: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``n`` (upper hemisphere) to +Z: about the horizontal axis
    n x Z, so no yaw is introduced (Rodrigues' formula)."""
    n = np.asarray(n, dtype=np.float64) / np.linalg.norm(n)
    axis = np.cross(n, [0.0, 0.0, 1.0])
    s, c = float(np.linalg.norm(axis)), float(n[2])
    out = np.eye(4)
    if s < 1e-12:
        return out
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    out[:3, :3] = np.eye(3) + s * kx + (1 - c) * kx @ kx
    return out


def footprint_yaw(vertices: np.ndarray) -> tuple[float, float]:
    """Rotation about Z (degrees, |angle| <= 45) that makes an oriented footprint axis-aligned, and the
    fractional footprint-area gain; (0, 0) when the footprint has no meaningful orientation."""
    from scipy.spatial import ConvexHull, QhullError

    xy = np.asarray(vertices, dtype=np.float64)[:, :2]
    try:
        hull = ConvexHull(xy)
        to_rect, rect = trimesh.bounds.oriented_bounds_2D(xy[hull.vertices])
    except (QhullError, ValueError):
        return 0.0, 0.0  # a degenerate footprint (a line) has nothing to align
    rect_area = float(rect[0] * rect[1])
    aabb_area = float(np.prod(np.ptp(xy, axis=0)))
    if rect_area <= 0 or aabb_area <= 0:
        return 0.0, 0.0
    fill = hull.volume / rect_area  # ConvexHull.volume is the area in 2D
    aspect = float(max(rect) / min(rect))
    gain = 1.0 - rect_area / aabb_area
    if gain < ALIGN_MIN_GAIN or (fill < ALIGN_MIN_FILL and aspect < ALIGN_MIN_ASPECT):
        return 0.0, 0.0
    angle = math.degrees(math.atan2(to_rect[1, 0], to_rect[0, 0]))
    angle = (angle + 45.0) % 90.0 - 45.0  # rectangles are 90-degree symmetric: take the smallest turn
    return (angle, gain) if abs(angle) > 1e-3 else (0.0, 0.0)


def split_sharp_edges(mesh: trimesh.Trimesh, angle_deg: float = SHARP_EDGE_DEG) -> trimesh.Trimesh:
    """Disconnect faces meeting at a sharp angle so stored vertex normals give crisp CAD edges and smooth
    curved surfaces in every renderer (glTF has no 'auto smooth')."""
    if len(mesh.faces) == 0:
        return mesh
    split = trimesh.graph.smooth_shade(mesh, angle=math.radians(angle_deg), facet_minarea=None)
    split.metadata.update(mesh.metadata)
    _ = split.vertex_normals  # computed now, so it is cached and exported
    return split


def base_color_texture(mesh: trimesh.Trimesh) -> Image.Image | None:
    """The colour texture a mesh carries, whichever material class trimesh used for it."""
    visual = mesh.visual
    if not isinstance(visual, trimesh.visual.TextureVisuals) or visual.material is None or visual.uv is None:
        return None
    mat = visual.material
    img = getattr(mat, "baseColorTexture", None)
    if img is None:
        img = getattr(mat, "image", None)
    return img


def write_glb(mesh: trimesh.Trimesh, path: str | Path, material: MaterialHints) -> None:
    """Write one mesh as a single-primitive glTF 2.0 binary. Its material factors are the mesh's own
    glTF material's, else ``material``'s (see ``stored_factors``).

    glTF semantics: the base colour is linear RGBA and multiplies the texture or the vertex colours.
    Textures are embedded: an image still equal to its source file (``SOURCE_FILE_INFO``) is copied byte
    for byte (no PNG re-compression, no second JPEG generation), others are encoded as PNG. Vertex colours
    are taken as sRGB bytes, as mesh files and trimesh hold them, and stored linear as COLOR_0 requires
    (``read_glb`` converts back). Written by hand rather than by trimesh's exporter for exactly those two
    reasons. Atomic."""
    glb = _GlbBuilder()
    positions = np.asarray(mesh.vertices, dtype=np.float32)
    attributes = {
        "POSITION": glb.accessor(positions, with_bounds=True),
        "NORMAL": glb.accessor(_unit_normals(mesh)),
    }
    tex = base_color_texture(mesh)
    color, metallic, roughness = stored_factors(mesh, material)
    pbr: dict = {
        "baseColorFactor": [float(c) for c in color],
        "metallicFactor": float(metallic),
        "roughnessFactor": float(roughness),
    }
    gl_material: dict = {
        "name": material.finish or "simreal",
        "pbrMetallicRoughness": pbr,
        "alphaMode": "OPAQUE",
    }
    if tex is not None:
        uv = np.asarray(mesh.visual.uv, dtype=np.float64)
        attributes["TEXCOORD_0"] = glb.accessor(
            np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]).astype(np.float32)
        )
        pbr["baseColorTexture"] = {"index": glb.texture(_opaque(tex))}
        src = mesh.visual.material
        if isinstance(src, trimesh.visual.material.PBRMaterial):
            if src.metallicRoughnessTexture is not None:
                pbr["metallicRoughnessTexture"] = {"index": glb.texture(src.metallicRoughnessTexture)}
            if src.normalTexture is not None:
                gl_material["normalTexture"] = {"index": glb.texture(src.normalTexture)}
            if src.occlusionTexture is not None:
                gl_material["occlusionTexture"] = {"index": glb.texture(src.occlusionTexture)}
            if src.emissiveTexture is not None:
                gl_material["emissiveTexture"] = {"index": glb.texture(src.emissiveTexture)}
                gl_material["emissiveFactor"] = [
                    float(x)
                    for x in _rgba01(
                        src.emissiveFactor if src.emissiveFactor is not None else [1.0, 1.0, 1.0]
                    )[:3]
                ]
    elif _has_vertex_colors(mesh):
        rgba = np.asarray(mesh.visual.vertex_colors, dtype=np.float64) / 255.0
        rgba[:, :3] = srgb_to_linear(rgba[:, :3])
        # 16-bit: linear 8-bit would lose ~6 sRGB levels near black
        attributes["COLOR_0"] = glb.accessor(np.round(rgba * 65535).astype(np.uint16), normalized=True)
    faces = np.asarray(mesh.faces, dtype=np.uint32).reshape(-1)
    primitive = {
        "attributes": attributes,
        "indices": glb.accessor(faces, indices=True),
        "material": 0,
        "mode": 4,
    }
    name = str(mesh.metadata.get("name") or "mesh")
    glb.tree.update(
        {
            "scene": 0,
            "scenes": [{"nodes": [0]}],
            "nodes": [{"name": name, "mesh": 0}],
            "meshes": [{"name": name, "primitives": [primitive]}],
            "materials": [gl_material],
        }
    )
    atomic_write_bytes(path, glb.to_bytes())


SOURCE_FILE_INFO = "simreal_source_file"  # PIL image.info key: the file the unmodified pixels came from


class _GlbBuilder:
    """Accumulates one binary buffer (4-byte aligned views) and the JSON tree of a glTF 2.0 asset."""

    _COMPONENT = {
        np.dtype(np.float32): 5126,
        np.dtype(np.uint32): 5125,
        np.dtype(np.uint16): 5123,
        np.dtype(np.uint8): 5121,
    }
    _TYPE = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}

    def __init__(self):
        self.tree: dict = {
            "asset": {"version": "2.0", "generator": "simreal"},
            "bufferViews": [],
            "accessors": [],
        }
        self._chunks: list[bytes] = []
        self._length = 0

    def view(self, data: bytes, target: int | None = None) -> int:
        pad = (-self._length) % 4
        if pad:
            self._chunks.append(b"\0" * pad)
            self._length += pad
        view = {"buffer": 0, "byteOffset": self._length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self._chunks.append(data)
        self._length += len(data)
        self.tree["bufferViews"].append(view)
        return len(self.tree["bufferViews"]) - 1

    def accessor(
        self, array: np.ndarray, with_bounds: bool = False, normalized: bool = False, indices: bool = False
    ) -> int:
        array = np.ascontiguousarray(array)
        width = 1 if array.ndim == 1 else array.shape[1]
        acc = {
            "bufferView": self.view(array.tobytes(), 34963 if indices else 34962),
            "componentType": self._COMPONENT[array.dtype],
            "count": int(len(array) if width > 1 else array.size),
            "type": self._TYPE[width],
        }
        if normalized:
            acc["normalized"] = True
        if with_bounds:
            acc["min"] = [float(x) for x in array.min(axis=0)]
            acc["max"] = [float(x) for x in array.max(axis=0)]
        self.tree["accessors"].append(acc)
        return len(self.tree["accessors"]) - 1

    def texture(self, img: Image.Image) -> int:
        data, mime = _encoded_image(img)
        images = self.tree.setdefault("images", [])
        images.append({"bufferView": self.view(data), "mimeType": mime})
        samplers = self.tree.setdefault(
            "samplers", [{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}]
        )
        textures = self.tree.setdefault("textures", [])
        textures.append({"sampler": len(samplers) - 1, "source": len(images) - 1})
        return len(textures) - 1

    def to_bytes(self) -> bytes:
        binary = b"".join(self._chunks)
        binary += b"\0" * ((-len(binary)) % 4)
        self.tree["buffers"] = [{"byteLength": len(binary)}]
        text = json.dumps(self.tree, separators=(",", ":")).encode("utf-8")
        text += b" " * ((-len(text)) % 4)
        total = 12 + 8 + len(text) + 8 + len(binary)
        return b"".join(
            [
                struct.pack("<4sII", b"glTF", 2, total),
                struct.pack("<II", len(text), 0x4E4F534A),
                text,
                struct.pack("<II", len(binary), 0x004E4942),
                binary,
            ]
        )


def _encoded_image(img: Image.Image) -> tuple[bytes, str]:
    """The image as PNG or JPEG bytes: the source file itself when the pixels are still that file's."""
    source = img.info.get(SOURCE_FILE_INFO)
    if source:
        data = Path(source).read_bytes()
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return data, "image/png"
        if data[:3] == b"\xff\xd8\xff":
            return data, "image/jpeg"
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=4)
    return buf.getvalue(), "image/png"


def _unit_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    n = np.asarray(mesh.vertex_normals, dtype=np.float64)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    bad = ~np.isfinite(length[:, 0]) | (length[:, 0] < 1e-12)
    n = np.where(bad[:, None], [0.0, 0.0, 1.0], n / np.where(length > 1e-12, length, 1.0))
    return n.astype(np.float32)


def read_glb(path: str | Path) -> trimesh.Trimesh:
    """Load a catalog GLB as one mesh, as stored (no vertex merging; normals and UVs kept; vertex colours
    back as sRGB ``ColorVisuals``)."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(path, "mesh file not found")
    try:
        scene = trimesh.load(str(path), force="scene", process=False)
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad file for the user
        raise AssetError(path, f"cannot be read as GLB ({_first_line(e)})") from None
    meshes = [g for g in _bake_scene(scene) if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        raise AssetError(path, "contains no triangles")
    for m in meshes:
        _vertex_colors_from_gltf(m)
    return meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)


def _vertex_colors_from_gltf(mesh: trimesh.Trimesh) -> None:
    """trimesh keeps COLOR_0 of a primitive that also has a material as a bare vertex attribute on a
    texture-less TextureVisuals; turn it back into sRGB vertex colours."""
    v = mesh.visual
    colors = (
        getattr(v, "vertex_attributes", {}).get("color")
        if isinstance(v, trimesh.visual.TextureVisuals)
        else None
    )
    if colors is None or v.uv is not None or len(colors) != len(mesh.vertices):
        return
    colors = np.asarray(colors)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(colors.dtype, 1.0)
    rgba = colors.astype(np.float64) / scale
    if rgba.shape[1] == 3:
        rgba = np.column_stack([rgba, np.ones(len(rgba))])
    rgba[:, :3] = linear_to_srgb(rgba[:, :3])
    mesh.visual = trimesh.visual.ColorVisuals(
        mesh, vertex_colors=np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8)
    )


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


# ---- texture atlas -------------------------------------------------------------------------------------
ATLAS_PADDING = 4  # texels of edge-replicated gutter around each cell (mipmaps must not bleed)
ATLAS_MAX_SIDE = 4096
SWATCH = 4  # side of the cell of a plain-coloured part


@dataclass
class _Cell:
    color: np.ndarray  # (h, w, 3) uint8 sRGB
    metal_rough: np.ndarray  # (h, w, 3) uint8, glTF layout: G roughness, B metallic
    uv: np.ndarray  # (n, 2) in 0..1 within the cell (bottom-left origin, as trimesh)
    x: int = 0
    y: int = 0


def bake_atlas(parts: list[trimesh.Trimesh]) -> tuple[trimesh.Trimesh, list[str]]:
    """Concatenate parts with different materials into one mesh with one base-colour texture (and a
    metallic-roughness texture when the parts differ in metal or roughness). Each part's texture times
    its factor, or its plain colour, becomes a cell of the atlas; its UVs are moved into that cell.
    Normal, occlusion and emissive maps are not carried over (reported)."""
    notes: list[str] = []
    cells = [_atlas_cell(p, notes) for p in parts]
    side_limit = ATLAS_MAX_SIDE - 2 * ATLAS_PADDING
    for cell in cells:  # no single cell larger than the atlas
        h, w = cell.color.shape[:2]
        if max(h, w) > side_limit:
            f = side_limit / max(h, w)
            cell.color = _resize(cell.color, f)
            cell.metal_rough = _resize(cell.metal_rough, f)
    width, height = _shelf_pack(cells)
    while max(width, height) > ATLAS_MAX_SIDE:
        for cell in cells:
            if cell.color.shape[0] > SWATCH:
                cell.color, cell.metal_rough = _resize(cell.color, 0.5), _resize(cell.metal_rough, 0.5)
        width, height = _shelf_pack(cells)
        if "textures downsampled to fit" not in notes:
            notes.append(f"textures downsampled to fit a {ATLAS_MAX_SIDE}-pixel atlas")
    color = np.zeros((height, width, 3), np.uint8)
    metal_rough = np.zeros((height, width, 3), np.uint8)
    uvs = []
    pad = ATLAS_PADDING
    for cell in cells:
        h, w = cell.color.shape[:2]
        color[cell.y : cell.y + h + 2 * pad, cell.x : cell.x + w + 2 * pad] = np.pad(
            cell.color, ((pad, pad), (pad, pad), (0, 0)), mode="edge"
        )
        metal_rough[cell.y : cell.y + h + 2 * pad, cell.x : cell.x + w + 2 * pad] = np.pad(
            cell.metal_rough, ((pad, pad), (pad, pad), (0, 0)), mode="edge"
        )
        u = (cell.x + pad + cell.uv[:, 0] * w) / width
        v = 1.0 - (cell.y + pad + (1.0 - cell.uv[:, 1]) * h) / height
        uvs.append(np.column_stack([u, v]))
    mr_values = {tuple(np.unique(c.metal_rough.reshape(-1, 3), axis=0).reshape(-1)) for c in cells}
    uniform = len(mr_values) == 1 and len(next(iter(mr_values))) == 3
    if uniform:  # every part has the same metal and roughness: factors say it, no second texture
        _, rough, metal = next(iter(mr_values))
        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.fromarray(color),
            metallicFactor=metal / 255.0,
            roughnessFactor=rough / 255.0,
        )
    else:
        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.fromarray(color),
            metallicRoughnessTexture=Image.fromarray(metal_rough),
            metallicFactor=1.0,
            roughnessFactor=1.0,
        )
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])[:-1]
    mesh = trimesh.Trimesh(
        vertices=np.vstack([p.vertices for p in parts]),
        faces=np.vstack([p.faces + o for p, o in zip(parts, offsets, strict=True)]),
        vertex_normals=np.vstack([p.vertex_normals for p in parts]),
        visual=trimesh.visual.TextureVisuals(uv=np.vstack(uvs), material=material),
        process=False,
    )
    return mesh, notes


def _atlas_cell(part: trimesh.Trimesh, notes: list[str]) -> _Cell:
    """A part's look as a cell: its texture times its factor, or a swatch of its plain colour."""
    visual = part.visual
    n = len(part.vertices)
    mat = getattr(visual, "material", None)
    if isinstance(mat, trimesh.visual.material.SimpleMaterial):
        mat = trimesh.visual.material.PBRMaterial(
            baseColorTexture=mat.image if base_color_texture(part) is not None else None,
            baseColorFactor=None if base_color_texture(part) is not None else mat.diffuse,
            metallicFactor=0.0,
            roughnessFactor=MaterialHints().roughness,
        )
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        factor = np.asarray(_rgba01(mat.baseColorFactor) if mat.baseColorFactor is not None else (1, 1, 1, 1))
        metal = 1.0 if mat.metallicFactor is None else float(mat.metallicFactor)
        rough = 1.0 if mat.roughnessFactor is None else float(mat.roughnessFactor)
        for slot in ("normalTexture", "occlusionTexture", "emissiveTexture"):
            if getattr(mat, slot, None) is not None and f"{slot} dropped" not in notes:
                notes.append(f"{slot} dropped")
        image = mat.baseColorTexture if visual.uv is not None else None
        if image is not None:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
            if not np.allclose(factor[:3], 1.0):
                rgb = linear_to_srgb(srgb_to_linear(rgb) * factor[:3])
            color = np.round(rgb * 255).astype(np.uint8)
            uv = np.asarray(visual.uv, dtype=np.float64)
            if (uv < -1e-3).any() or (uv > 1 + 1e-3).any():
                if "UVs outside 0..1 wrapped per vertex" not in notes:
                    notes.append(
                        "UVs outside 0..1 wrapped per vertex (a tiled texture can smear at tile seams)"
                    )
                uv = np.where((uv < 0) | (uv > 1), np.mod(uv, 1.0), uv)
            h, w = color.shape[:2]
            half = 0.5 / np.array([w, h])
            uv = np.clip(uv, half, 1.0 - half)
            mr = _metal_rough_cell(mat.metallicRoughnessTexture, (w, h), metal, rough)
            return _Cell(color, mr, uv)
        swatch = np.round(linear_to_srgb(factor[:3]) * 255).astype(np.uint8)
        return _Cell(
            np.tile(swatch, (SWATCH, SWATCH, 1)),
            _metal_rough_cell(None, (SWATCH, SWATCH), metal, rough),
            np.full((n, 2), 0.5),
        )
    if isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind in ("vertex", "face"):
        # per-vertex colours become texels (trimesh's colour-to-UV mapping: one texel per colour)
        cmat, uv = trimesh.visual.color.color_to_uv(vertex_colors=visual.vertex_colors)
        color = np.asarray(cmat.image.convert("RGB"))
        w, h = cmat.image.size
        return _Cell(
            color,
            _metal_rough_cell(None, (w, h), 0.0, MaterialHints().roughness),
            np.asarray(uv, dtype=np.float64),
        )
    d = MaterialHints()
    swatch = np.round(linear_to_srgb(np.asarray(d.base_color[:3])) * 255).astype(np.uint8)
    return _Cell(
        np.tile(swatch, (SWATCH, SWATCH, 1)),
        _metal_rough_cell(None, (SWATCH, SWATCH), d.metallic, d.roughness),
        np.full((n, 2), 0.5),
    )


def _metal_rough_cell(texture, size: tuple[int, int], metal: float, rough: float) -> np.ndarray:
    w, h = size
    if texture is not None:
        mr = np.asarray(texture.convert("RGB").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float64)
        mr[..., 1] *= rough
        mr[..., 2] *= metal
        return np.round(mr).astype(np.uint8)
    out = np.zeros((h, w, 3), np.uint8)
    out[..., 1], out[..., 2] = round(rough * 255), round(metal * 255)
    return out


def _resize(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def _shelf_pack(cells: list[_Cell]) -> tuple[int, int]:
    """Place cells (plus gutters) in rows, tallest first, in a width of about sqrt(total area); sets each
    cell's x, y and returns the atlas size (multiples of 4)."""
    pad2 = 2 * ATLAS_PADDING
    dims = [(c.color.shape[1] + pad2, c.color.shape[0] + pad2) for c in cells]
    width = max(max(w for w, _ in dims), int(math.ceil(math.sqrt(sum(w * h for w, h in dims)))))
    width = int(math.ceil(width / 4) * 4)
    x = y = row = 0
    for i in sorted(range(len(cells)), key=lambda i: (-dims[i][1], -dims[i][0])):
        w, h = dims[i]
        if x + w > width:
            x, y, row = 0, y + row, 0
        cells[i].x, cells[i].y = x, y
        x += w
        row = max(row, h)
    height = int(math.ceil((y + row) / 4) * 4)
    return width, height


# ---- constants for notes -------------------------------------------------------------------------------
Y_UP_TO_Z_UP = trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0])
_FORMAT_NAME = {".glb": "glTF", ".gltf": "glTF", ".obj": "OBJ", ".ply": "PLY", ".stl": "STL"}
_UP_REASON = {
    ".glb": "glTF is +Y up by spec",
    ".gltf": "glTF is +Y up by spec",
    ".stl": "CAD convention",
    ".ply": "scanner/CAD convention",
    ".obj": "OBJ has no convention; assumed CAD +Z",
}


# ---- file-level checks ---------------------------------------------------------------------------------
def _check_file(path: Path) -> str:
    if not path.exists():
        raise AssetError(path, "file not found")
    if not path.is_file():
        raise AssetError(path, "not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise AssetError(
            path,
            f"unsupported format '{path.suffix or '(none)'}' (supported: {' '.join(SUPPORTED_SUFFIXES)})",
        )
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as e:
        raise AssetError(path, f"cannot be read ({e.strerror or e})") from None
    if size == 0:
        raise AssetError(path, "file is empty")
    return suffix


def _obj_lines(path: Path, keyword: str) -> list[str]:
    """Arguments of every line of an OBJ/MTL starting with ``keyword`` (case-insensitive)."""
    out = []
    kw = keyword.lower()
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == kw:
                out.append(parts[1].strip())
    return out


def _resolve_reference(bases: list[Path], ref: str) -> Path | None:
    """Find a file named in an OBJ/MTL line: the whole argument (names may contain spaces), else its last
    token (after options such as ``-s 1 1 1``), else that file's basename, in each base folder in turn."""
    ref = ref.replace("\\", "/").strip().strip('"')
    names = list(dict.fromkeys([ref, ref.split()[-1], Path(ref).name, Path(ref.split()[-1]).name]))
    for base in bases:
        for name in names:
            p = Path(name) if Path(name).is_absolute() else base / name
            if p.is_file():
                return p
    return None


@dataclass
class _ObjReferences:
    """What an OBJ pulls in: its MTL (possibly a stand-in) and the texture of each material."""

    mtl: Path | None = None
    mtl_ref: str | None = None
    textures: dict[str, Path] = field(default_factory=dict)  # material name -> map_Kd image
    note: str | None = None

    def bases(self, obj: Path) -> list[Path]:
        return [obj.parent] + ([self.mtl.parent] if self.mtl and self.mtl.parent != obj.parent else [])


def _inspect_obj(path: Path) -> _ObjReferences:
    """Check every file the OBJ references exists and is readable. A missing ``mtllib`` is replaced by the
    one MTL beside the OBJ that defines every material it uses (scans are often renamed without editing
    the ``mtllib`` line, e.g. HOPE's popcorn.obj -> textured.mtl); otherwise it is an error."""
    refs = _ObjReferences()
    libs = _obj_lines(path, "mtllib")
    if not libs:
        return refs
    if len(libs) > 1:
        raise AssetError(
            path,
            f"{len(libs)} mtllib lines; only one material library is supported (merge them into one .mtl)",
        )
    refs.mtl_ref = libs[0]
    used = set(_obj_lines(path, "usemtl"))
    refs.mtl = _resolve_reference([path.parent], libs[0])
    if refs.mtl is None:
        candidates = [m for m in sorted(path.parent.glob("*.mtl")) if used <= set(_obj_lines(m, "newmtl"))]
        stem = [m for m in candidates if m.stem == path.stem]
        pick = stem or (candidates if len(candidates) == 1 else [])
        if not pick:
            raise AssetError(path, f"material library '{libs[0]}' (mtllib) not found next to the OBJ")
        refs.mtl = pick[0]
        refs.note = (
            f"mtllib '{libs[0]}' not found; using {refs.mtl.name} beside the OBJ, which defines "
            f"the materials it uses"
        )
    name = None
    with refs.mtl.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == "newmtl":
                name = parts[1].strip()
            elif len(parts) == 2 and parts[0].lower() == "map_kd" and name is not None:
                tex = _resolve_reference(refs.bases(path), parts[1])
                if tex is None:
                    raise AssetError(
                        refs.mtl, f"texture '{parts[1].split()[-1]}' (map_Kd of material '{name}') is missing"
                    )
                _check_image(tex, f"texture referenced by {refs.mtl.name}")
                refs.textures[name] = tex
    return refs


class _ObjResolver(trimesh.resolvers.FilePathResolver):
    """Serves the OBJ loader the files ``_inspect_obj`` found, so what was checked is what gets loaded
    (trimesh alone would not follow a stand-in MTL, ``map_Kd`` options or ``../`` paths)."""

    def __init__(self, obj: Path, refs: _ObjReferences):
        super().__init__(str(obj))
        self._obj, self._refs = obj, refs

    def get(self, name: str) -> bytes:
        if self._refs.mtl is not None and name.strip() == (self._refs.mtl_ref or "").strip():
            return self._refs.mtl.read_bytes()
        found = _resolve_reference(self._refs.bases(self._obj), name)
        if found is None:
            raise FileNotFoundError(name)
        return found.read_bytes()


def _check_obj_textures_loaded(path: Path, refs: _ObjReferences, parts: list[trimesh.Trimesh]) -> None:
    """Every part whose material has a ``map_Kd`` must have come out of the loader with that image."""
    for part in parts:
        mat = getattr(part.visual, "material", None)
        name = getattr(mat, "name", None)
        if name in refs.textures:
            img = getattr(mat, "image", None)
            if img is None or "file_path" not in img.info:
                raise AssetError(refs.textures[name], f"texture of material '{name}' could not be loaded")
            img.info[SOURCE_FILE_INFO] = str(refs.textures[name])


def _tag_unmodified_images(parts: list[trimesh.Trimesh], files: list[Path | None]) -> None:
    """Mark textures whose pixels equal one of the referenced image files, so ``write_glb`` can embed
    that file's bytes (glTF loaders do not say which file an image came from). ``files`` are the image
    files the glTF's textures use, ``None`` among them standing for an embedded image."""
    slots = (
        "baseColorTexture",
        "metallicRoughnessTexture",
        "normalTexture",
        "occlusionTexture",
        "emissiveTexture",
    )
    images = {
        id(img): img
        for part in parts
        for slot in slots
        if (img := getattr(getattr(part.visual, "material", None), slot, None)) is not None
    }
    if len(images) == 1 and len(files) == 1 and files[0] is not None:
        # one texture, one image file: it was decoded from that file (the common case; saves a decode)
        img = next(iter(images.values()))
        with Image.open(files[0]) as im:
            if im.size == img.size:
                img.info[SOURCE_FILE_INFO] = str(files[0])
        return
    decoded: dict[Path, np.ndarray] = {}
    for img in images.values():
        if SOURCE_FILE_INFO in img.info:
            continue
        pixels = np.asarray(img)
        for f in files:
            if f is None:
                continue
            if f not in decoded:
                with Image.open(f) as im:
                    decoded[f] = np.asarray(im)
            if decoded[f].shape == pixels.shape and np.array_equal(decoded[f], pixels):
                img.info[SOURCE_FILE_INFO] = str(f)
                break


def _check_image(path: Path, what: str) -> None:
    try:
        with Image.open(path) as im:
            im.verify()
    except Image.UnidentifiedImageError:
        raise AssetError(path, f"{what} is not a readable image (unknown format or corrupt data)") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad image
        raise AssetError(path, f"{what} is not a readable image ({_first_line(e)})") from None


def _gltf_json(path: Path, suffix: str) -> dict:
    data = path.read_bytes()
    if suffix == ".glb":
        if len(data) < 20 or data[:4] != b"glTF":
            raise AssetError(path, "not a binary glTF (missing 'glTF' header)")
        version, length = struct.unpack_from("<II", data, 4)
        chunk_len, chunk_type = struct.unpack_from("<II", data, 12)
        if version != 2:
            raise AssetError(path, f"glTF version {version} is not supported (need 2.0)")
        if chunk_type != 0x4E4F534A or 20 + chunk_len > len(data):
            raise AssetError(path, "truncated or malformed GLB (first chunk is not JSON)")
        raw = data[20 : 20 + chunk_len]
    else:
        raw = data
    try:
        tree = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AssetError(path, f"not valid glTF JSON ({_first_line(e)})") from None
    if not isinstance(tree, dict) or "asset" not in tree:
        raise AssetError(path, "not a glTF 2.0 file (no 'asset' object)")
    return tree


def _check_gltf_references(path: Path, suffix: str) -> list[Path | None]:
    """Check buffers and texture images exist; return the image files textures use (None: embedded)."""
    tree = _gltf_json(path, suffix)
    files = []
    for i, buf in enumerate(tree.get("buffers", [])):
        uri = buf.get("uri")
        if uri is None or uri.startswith("data:"):
            continue
        f = path.parent / _unquote(uri)
        if not f.is_file():
            raise AssetError(path, f"buffer {i} '{uri}' is missing")
        if f.stat().st_size < int(buf.get("byteLength", 0)):
            raise AssetError(f, f"buffer is truncated ({f.stat().st_size} < {buf.get('byteLength')} bytes)")
    images = tree.get("images", [])
    used = {t.get("source") for t in tree.get("textures", []) if isinstance(t.get("source"), int)}
    for i in sorted(used):
        if i >= len(images):
            raise AssetError(path, f"texture refers to image {i}, which does not exist")
        uri = images[i].get("uri")
        if uri is None or uri.startswith("data:"):
            files.append(None)
            continue
        f = path.parent / _unquote(uri)
        if not f.is_file():
            raise AssetError(path, f"texture image '{uri}' is missing")
        _check_image(f, f"texture referenced by {path.name}")
        files.append(f)
    return files


def _unquote(uri: str) -> str:
    from urllib.parse import unquote

    return unquote(uri)


# ---- reading -------------------------------------------------------------------------------------------
def _read_single_mesh(
    path: Path,
    suffix: str,
    notes: list[str],
    obj_refs: _ObjReferences | None = None,
    image_files: list[Path | None] | None = None,
) -> trimesh.Trimesh:
    """Parse the file and bake it into one mesh: node transforms applied, parts concatenated, materials
    packed into one atlas when they differ."""
    kwargs = {"resolver": _ObjResolver(path, obj_refs)} if obj_refs is not None else {}
    try:
        with path.open("rb") as f:
            loaded = trimesh.load(f, file_type=suffix[1:], force="scene", process=False, **kwargs)
    except Exception as e:  # noqa: BLE001 - parsers raise anything on garbage input
        raise AssetError(path, f"cannot be read as {_FORMAT_NAME[suffix]} ({_first_line(e)})") from None
    parts = _bake_scene(loaded) if isinstance(loaded, trimesh.Scene) else [loaded]
    meshes = [g for g in parts if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not meshes:
        kinds = sorted({type(g).__name__ for g in parts if len(getattr(g, "vertices", [])) > 0})
        if not kinds and suffix in (".obj", ".stl", ".ply") and _looks_binary_garbage(path, suffix):
            raise AssetError(path, f"not a valid {_FORMAT_NAME[suffix]} file ({_FORMAT_HINT[suffix]})")
        extra = f" (only {', '.join(kinds)})" if kinds else ""
        raise AssetError(path, f"contains no triangle faces{extra}")
    if obj_refs is not None:
        _check_obj_textures_loaded(path, obj_refs, meshes)
    if image_files:
        _tag_unmodified_images(meshes, image_files)
    for m in meshes:
        if not np.isfinite(m.vertices).all():
            bad = int((~np.isfinite(m.vertices)).any(axis=1).sum())
            raise AssetError(path, f"{bad} of {len(m.vertices)} vertices have NaN or infinite coordinates")
        if np.asarray(m.faces).max() >= len(m.vertices) or np.asarray(m.faces).min() < 0:
            raise AssetError(path, "faces refer to vertices that do not exist")
        if isinstance(m.visual, trimesh.visual.TextureVisuals) and m.visual.uv is not None:
            if not np.isfinite(m.visual.uv).all():
                raise AssetError(path, "texture coordinates contain NaN or infinite values")
    if len(meshes) == 1:
        mesh = meshes[0]
    else:
        materials = {_material_key(m) for m in meshes}
        textured = any(isinstance(m.visual, trimesh.visual.TextureVisuals) for m in meshes)
        try:
            if textured and len(materials) > 1:
                mesh, atlas_notes = bake_atlas(meshes)
                notes.append(
                    f"{len(meshes)} parts with {len(materials)} different materials baked into one "
                    f"texture atlas" + "".join(f"; {n}" for n in atlas_notes)
                )
            else:
                mesh = trimesh.util.concatenate(meshes)
                notes.append(f"{len(meshes)} parts concatenated into one mesh")
        except AssetError:
            raise
        except Exception as e:  # noqa: BLE001 - exotic materials can break merging
            raise AssetError(
                path, f"could not merge its {len(meshes)} parts into one mesh ({_first_line(e)})"
            ) from None
    mesh.metadata["source"] = str(path)
    return mesh


_FORMAT_HINT = {
    ".obj": "binary data where OBJ text with 'v' and 'f' lines was expected",
    ".stl": "neither binary STL (84-byte header, then 50 bytes per triangle) nor ASCII 'solid ... facet'",
    ".ply": "no 'ply' header",
}


def _looks_binary_garbage(path: Path, suffix: str) -> bool:
    """Whether a file that parsed to nothing is not even shaped like its format (for a clearer message)."""
    head = path.read_bytes()[:4096]
    if suffix == ".stl":
        size = path.stat().st_size
        binary_ok = size >= 84 and size == 84 + 50 * struct.unpack_from("<I", head, 80)[0]
        return not binary_ok and not head.lstrip().lower().startswith(b"solid")
    if suffix == ".ply":
        return not head.startswith(b"ply")
    text = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return text < 0.95 * len(head)


def _bake_scene(scene: trimesh.Scene) -> list:
    """Every geometry instance moved by its node's world transform (``Scene.dump`` without copying a
    geometry used once: a copy would decode and duplicate its texture image)."""
    instances = [scene.graph[node] for node in scene.graph.nodes_geometry]
    uses: dict[str, int] = {}
    for _, name in instances:
        uses[name] = uses.get(name, 0) + 1
    out = []
    for transform, name in instances:
        geom = scene.geometry[name]
        if uses[name] > 1:
            geom = geom.copy()
        if isinstance(geom, trimesh.Trimesh) and not np.allclose(transform, np.eye(4)):
            geom.apply_transform(transform)
        out.append(geom)
    return out


def _material_key(m: trimesh.Trimesh):
    v = m.visual
    if isinstance(v, trimesh.visual.TextureVisuals) and v.material is not None:
        return ("tex", hash(v.material))
    return ("color", v.kind)


def _clean(mesh: trimesh.Trimesh, path: Path) -> trimesh.Trimesh:
    """Drop zero-area faces and unused vertices; merge the duplicate corners of triangle soups (STL) but
    never across UV seams (textured meshes keep their topology)."""
    textured = isinstance(mesh.visual, trimesh.visual.TextureVisuals) and mesh.visual.uv is not None
    if not textured:
        mesh.merge_vertices()
    keep = mesh.nondegenerate_faces(height=1e-12)
    if not keep.any():
        raise AssetError(path, f"all {len(mesh.faces)} faces are degenerate (zero area)")
    if not keep.all():
        mesh.update_faces(keep)
    mesh.remove_unreferenced_vertices()
    return mesh


def _material_from_visual(mesh: trimesh.Trimesh) -> MaterialHints:
    """The catalog hints a file implies: its own factors (linear, glTF semantics) where it has a PBR
    material; white for textures and vertex colours (OBJ: ``Kd`` is ignored when ``map_Kd`` is present);
    ``Kd`` for a plain OBJ material; the catalog defaults otherwise."""
    textured = base_color_texture(mesh) is not None
    mat = (
        getattr(mesh.visual, "material", None)
        if isinstance(mesh.visual, trimesh.visual.TextureVisuals)
        else None
    )
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        color, metallic, roughness = stored_factors(mesh, MaterialHints())
        return MaterialHints(base_color=color, metallic=metallic, roughness=roughness, textured=textured)
    if textured or _has_vertex_colors(mesh):
        return MaterialHints(base_color=(1.0, 1.0, 1.0, 1.0), textured=textured)
    if getattr(mat, "diffuse", None) is not None:
        return MaterialHints(base_color=_rgba01(mat.diffuse))
    return MaterialHints()


def stored_factors(mesh: trimesh.Trimesh, hints: MaterialHints) -> tuple[tuple[float, ...], float, float]:
    """(base colour, metallic, roughness) a mesh is stored and previewed with: its own glTF material's
    factors where it has one (absent factors are glTF's default 1.0 -- a baked atlas relies on that), the
    catalog hints otherwise (plain STL/PLY geometry, vertex colours, OBJ materials, which have no PBR
    factors). So a procedural label keeps its texture untinted while ``hints.base_color`` describes it."""
    mat = (
        getattr(mesh.visual, "material", None)
        if isinstance(mesh.visual, trimesh.visual.TextureVisuals)
        else None
    )
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        color = _rgba01(mat.baseColorFactor) if mat.baseColorFactor is not None else (1.0, 1.0, 1.0, 1.0)
        metallic = 1.0 if mat.metallicFactor is None else _clip01(float(mat.metallicFactor))
        roughness = 1.0 if mat.roughnessFactor is None else _clip01(float(mat.roughnessFactor))
        return color, metallic, roughness
    if base_color_texture(mesh) is not None:  # OBJ texture: unmultiplied, surface from the hints
        return (1.0, 1.0, 1.0, 1.0), hints.metallic, hints.roughness
    return tuple(hints.base_color), hints.metallic, hints.roughness


def with_factors(mesh: trimesh.Trimesh, hints: MaterialHints) -> trimesh.Trimesh:
    """A copy of ``mesh`` whose own PBR material (if any) carries ``hints``' factors: how a user's explicit
    material for an import reaches the stored GLB."""
    mat = (
        getattr(mesh.visual, "material", None)
        if isinstance(mesh.visual, trimesh.visual.TextureVisuals)
        else None
    )
    if not isinstance(mat, trimesh.visual.material.PBRMaterial):
        return mesh
    out = mesh.copy()
    new = out.visual.material
    new.baseColorFactor = np.round(np.asarray(hints.base_color) * 255).astype(np.uint8)
    new.metallicFactor, new.roughnessFactor = hints.metallic, hints.roughness
    return out


def _has_vertex_colors(mesh: trimesh.Trimesh) -> bool:
    return isinstance(mesh.visual, trimesh.visual.ColorVisuals) and mesh.visual.kind in ("vertex", "face")


def _rgba01(c) -> tuple[float, float, float, float]:
    """A colour as RGBA floats in 0..1: integer arrays (trimesh stores factors as uint8) are /255."""
    a = np.asarray(c)
    a = a.astype(np.float64) / 255.0 if np.issubdtype(a.dtype, np.integer) else a.astype(np.float64)
    a = a.reshape(-1)
    if a.size == 3:
        a = np.append(a, 1.0)
    return tuple(float(x) for x in np.clip(a[:4], 0.0, 1.0))


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _opaque(img: Image.Image) -> Image.Image:
    """Drop an alpha channel that is fully opaque (smaller PNG; catalog materials are opaque)."""
    if SOURCE_FILE_INFO in img.info:
        return img  # stored as the source file's bytes anyway
    if img.mode in ("RGBA", "LA") and np.asarray(img.getchannel("A")).min() == 255:
        fmt = img.format
        img = img.convert("RGB")
        img.format = fmt
    elif img.mode not in ("RGB", "RGBA", "L"):
        fmt = img.format
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
        img.format = fmt
    return img


# ---- size checks ---------------------------------------------------------------------------------------
def _plausible(largest_m: float) -> bool:
    return PLAUSIBLE_LARGEST_M[0] <= largest_m <= PLAUSIBLE_LARGEST_M[1]


def _check_size(mesh: trimesh.Trimesh, path: Path, units: Units) -> None:
    ext = mesh.extents
    mm = " x ".join(_human_length(float(e)) for e in ext)
    largest = float(ext.max())
    lo, hi = ACCEPTED_LARGEST_M
    if largest > hi or largest < lo:
        raise AssetError(
            path,
            f"absurd size {_human_length(largest)} after units={units} "
            f"(extents {mm}; expected {PLAUSIBLE_LARGEST_M[0] * 1000:g} mm .. "
            f"{PLAUSIBLE_LARGEST_M[1]:g} m); pass the right units",
        )
    if float(ext.min()) < MIN_THICKNESS_M:
        raise AssetError(
            path,
            f"degenerate: flat or zero-volume (extents {mm}; the thinnest side is below "
            f"{MIN_THICKNESS_M * 1000:g} mm)",
        )


def size_label(size_m, unit: bool = True) -> str:
    """'71.8 x 164 x 213 mm': extents (x, y, z) to three significant digits, never in e-notation."""

    def mm(v: float) -> str:
        v *= 1000.0
        return f"{v:.0f}" if v >= 1000 else f"{v:.3g}"

    return " x ".join(mm(float(s)) for s in size_m) + (" mm" if unit else "")


def _human_length(m: float) -> str:
    if m >= 1000:
        return f"{m / 1000:.4g} km"
    if m >= 1:
        return f"{m:.4g} m"
    return f"{m * 1000:.4g} mm"


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    line = text.splitlines()[0]
    line = re.sub(r"\s+", " ", line)
    return line[:160]
