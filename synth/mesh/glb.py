"""The catalog's mesh file: one single-primitive glTF 2.0 binary, written by hand and read back.

Catalog convention (see ``synth.catalog``): metres, +Z up, axis-aligned bounding box centred at the origin,
a metallic-roughness material and embedded textures.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from synth.catalog import MaterialHints
from synth.errors import AssetError
from synth.fsutil import atomic_write_bytes
from synth.mesh.checks import first_line
from synth.mesh.material import (
    base_color_texture,
    has_vertex_colors,
    linear_to_srgb,
    rgba01,
    srgb_to_linear,
    stored_factors,
)
from synth.mesh.parts import bake_scene
from synth.mesh.references import SOURCE_FILE_INFO


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
    gl_material = _material_entry(glb, mesh, material, attributes)
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


def _material_entry(
    glb: _GlbBuilder, mesh: trimesh.Trimesh, material: MaterialHints, attributes: dict
) -> dict:
    """The glTF material of ``mesh``; adds its UVs and textures, or its vertex colours, to ``attributes``."""
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
            _add_pbr_maps(glb, src, gl_material)
    elif has_vertex_colors(mesh):
        rgba = np.asarray(mesh.visual.vertex_colors, dtype=np.float64) / 255.0
        rgba[:, :3] = srgb_to_linear(rgba[:, :3])
        # 16-bit: linear 8-bit would lose ~6 sRGB levels near black
        attributes["COLOR_0"] = glb.accessor(np.round(rgba * 65535).astype(np.uint16), normalized=True)
    return gl_material


def _add_pbr_maps(glb: _GlbBuilder, src: trimesh.visual.material.PBRMaterial, gl_material: dict) -> None:
    """Carry a glTF material's other maps over as they are."""
    pbr = gl_material["pbrMetallicRoughness"]
    if src.metallicRoughnessTexture is not None:
        pbr["metallicRoughnessTexture"] = {"index": glb.texture(src.metallicRoughnessTexture)}
    if src.normalTexture is not None:
        gl_material["normalTexture"] = {"index": glb.texture(src.normalTexture)}
    if src.occlusionTexture is not None:
        gl_material["occlusionTexture"] = {"index": glb.texture(src.occlusionTexture)}
    if src.emissiveTexture is not None:
        gl_material["emissiveTexture"] = {"index": glb.texture(src.emissiveTexture)}
        emissive = src.emissiveFactor if src.emissiveFactor is not None else [1.0, 1.0, 1.0]
        gl_material["emissiveFactor"] = [float(x) for x in rgba01(emissive)[:3]]


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
        raise AssetError(path, f"cannot be read as GLB ({first_line(e)})") from None
    meshes = [g for g in bake_scene(scene) if isinstance(g, trimesh.Trimesh) and len(g.faces)]
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
