"""Colour and material facts of a trimesh mesh, whichever loader or material class produced it.

One place answers "what colour, metal and roughness is this mesh stored and previewed with", so the GLB
writer, the thumbnail renderer and the catalog record cannot disagree.
"""

from __future__ import annotations

import numpy as np
import trimesh
from PIL import Image

from synth.catalog import MaterialHints


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def rgba01(c) -> tuple[float, float, float, float]:
    """A colour as RGBA floats in 0..1: integer arrays (trimesh stores factors as uint8) are /255."""
    a = np.asarray(c)
    a = a.astype(np.float64) / 255.0 if np.issubdtype(a.dtype, np.integer) else a.astype(np.float64)
    a = a.reshape(-1)
    if a.size == 3:
        a = np.append(a, 1.0)
    return tuple(float(x) for x in np.clip(a[:4], 0.0, 1.0))


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def own_material(mesh: trimesh.Trimesh):
    """The material a textured-visual mesh carries (trimesh's Simple or PBR class), else None."""
    visual = mesh.visual
    return getattr(visual, "material", None) if isinstance(visual, trimesh.visual.TextureVisuals) else None


def has_vertex_colors(mesh: trimesh.Trimesh) -> bool:
    return isinstance(mesh.visual, trimesh.visual.ColorVisuals) and mesh.visual.kind in ("vertex", "face")


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


def material_from_visual(mesh: trimesh.Trimesh) -> MaterialHints:
    """The catalog hints a file implies: its own factors (linear, glTF semantics) where it has a PBR
    material; white for textures and vertex colours (OBJ: ``Kd`` is ignored when ``map_Kd`` is present);
    ``Kd`` for a plain OBJ material; the catalog defaults otherwise."""
    textured = base_color_texture(mesh) is not None
    mat = own_material(mesh)
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        color, metallic, roughness = stored_factors(mesh, MaterialHints())
        return MaterialHints(base_color=color, metallic=metallic, roughness=roughness, textured=textured)
    if textured or has_vertex_colors(mesh):
        return MaterialHints(base_color=(1.0, 1.0, 1.0, 1.0), textured=textured)
    if getattr(mat, "diffuse", None) is not None:
        return MaterialHints(base_color=rgba01(mat.diffuse))
    return MaterialHints()


def stored_factors(mesh: trimesh.Trimesh, hints: MaterialHints) -> tuple[tuple[float, ...], float, float]:
    """(base colour, metallic, roughness) a mesh is stored and previewed with: its own glTF material's
    factors where it has one (absent factors are glTF's default 1.0 -- a baked atlas relies on that), the
    catalog hints otherwise (plain STL/PLY geometry, vertex colours, OBJ materials, which have no PBR
    factors). So a procedural label keeps its texture untinted while ``hints.base_color`` describes it."""
    mat = own_material(mesh)
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        color = rgba01(mat.baseColorFactor) if mat.baseColorFactor is not None else (1.0, 1.0, 1.0, 1.0)
        metallic = 1.0 if mat.metallicFactor is None else _clip01(float(mat.metallicFactor))
        roughness = 1.0 if mat.roughnessFactor is None else _clip01(float(mat.roughnessFactor))
        return color, metallic, roughness
    if base_color_texture(mesh) is not None:  # OBJ texture: unmultiplied, surface from the hints
        return (1.0, 1.0, 1.0, 1.0), hints.metallic, hints.roughness
    return tuple(hints.base_color), hints.metallic, hints.roughness


def with_factors(mesh: trimesh.Trimesh, hints: MaterialHints) -> trimesh.Trimesh:
    """A copy of ``mesh`` whose own PBR material (if any) carries ``hints``' factors: how a user's explicit
    material for an import reaches the stored GLB."""
    if not isinstance(own_material(mesh), trimesh.visual.material.PBRMaterial):
        return mesh
    out = mesh.copy()
    new = out.visual.material
    new.baseColorFactor = np.round(np.asarray(hints.base_color) * 255).astype(np.uint8)
    new.metallicFactor, new.roughnessFactor = hints.metallic, hints.roughness
    return out
