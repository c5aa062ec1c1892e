"""Texture atlases: the one shelf packer (used by mesh import and the procedural label atlas) and the bake
of a multi-material mesh into one textured, single-material mesh.

**Several materials** (a glTF with parts of different materials, an OBJ with several ``usemtl``) are baked
into one atlas (``bake_atlas``) rather than keeping only the dominant texture, so every part keeps its look
-- a printed label next to a plain cap next to a metal pin -- in a single-material GLB. Each part's texture
times its colour factor (or a swatch of its plain colour) becomes a cell with an edge-replicated gutter;
per-part metal and roughness go into a metallic-roughness atlas with the same layout when they differ.
Parts whose UVs tile (outside 0..1) are wrapped into their cell per vertex, which can smear a triangle
spanning a tile border; normal/occlusion/emissive maps are dropped. Both are reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from PIL import Image

from synth.catalog import MaterialHints
from synth.mesh.material import base_color_texture, linear_to_srgb, rgba01, srgb_to_linear

ATLAS_PADDING = 4  # texels of edge-replicated gutter around each cell (mipmaps must not bleed)
ATLAS_MAX_SIDE = 4096
SWATCH = 4  # side of the cell of a plain-coloured part


# ---- packing (shared) -----------------------------------------------------------------------------------
def square_row_width(sizes: Sequence[tuple[int, int]], pad: int = ATLAS_PADDING, slack: float = 1.0) -> int:
    """A row width that makes a roughly square atlas: the square root of the area of the boxes and their
    gutters (times ``slack``, room for ragged rows), and never less than the widest box."""
    dims = [(w + 2 * pad, h + 2 * pad) for w, h in sizes]
    return max(max(w for w, _ in dims), int(math.ceil(math.sqrt(sum(w * h for w, h in dims) * slack))))


def shelf_pack(
    sizes: Sequence[tuple[int, int]], row_width: int, pad: int = ATLAS_PADDING, tallest_first: bool = False
) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Place boxes of (w, h) texels, each inside a ``pad``-texel gutter, left to right in rows at most
    ``row_width`` wide: in the order given, or tallest first (fewer wasted texels). Returns each box's
    top-left texel (in the order given) and the (width, height) used, rounded up to multiples of 4.

    Shelf packing rather than an optimal packer: a handful of cells, and a layout that depends on nothing
    but the sizes keeps the same seed's texture byte-identical."""
    order = range(len(sizes))
    if tallest_first:
        order = sorted(order, key=lambda i: (-sizes[i][1], -sizes[i][0]))
    corners: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    x = y = row = width = 0
    for i in order:
        w, h = sizes[i][0] + 2 * pad, sizes[i][1] + 2 * pad
        if x + w > row_width and x > 0:
            x, y, row = 0, y + row, 0
        corners[i] = (x + pad, y + pad)
        x += w
        row = max(row, h)
        width = max(width, x)
    return corners, (_ceil4(width), _ceil4(y + row))


def paste_with_gutter(
    canvas: np.ndarray, pixels: np.ndarray, corner: tuple[int, int], pad: int = ATLAS_PADDING
):
    """Copy ``pixels`` (h, w, c) into ``canvas`` with its top-left at ``corner`` (x, y), its edge texels
    repeated ``pad`` texels outward so mip-mapping never mixes neighbouring cells."""
    x, y = corner
    h, w = pixels.shape[:2]
    canvas[y - pad : y + h + pad, x - pad : x + w + pad] = np.pad(
        pixels, ((pad, pad), (pad, pad), (0, 0)), mode="edge"
    )


def _ceil4(n: int) -> int:
    return int(math.ceil(n / 4) * 4)


# ---- baking a multi-material mesh -------------------------------------------------------------------------
@dataclass
class _Cell:
    color: np.ndarray  # (h, w, 3) uint8 sRGB
    metal_rough: np.ndarray  # (h, w, 3) uint8, glTF layout: G roughness, B metallic
    uv: np.ndarray  # (n, 2) in 0..1 within the cell (bottom-left origin, as trimesh)
    x: int = 0  # top-left texel of the cell in the atlas (inside its gutter)
    y: int = 0


def bake_atlas(parts: list[trimesh.Trimesh]) -> tuple[trimesh.Trimesh, list[str]]:
    """Concatenate parts with different materials into one mesh with one base-colour texture (and a
    metallic-roughness texture when the parts differ in metal or roughness). Each part's texture times
    its factor, or its plain colour, becomes a cell of the atlas; its UVs are moved into that cell.
    Normal, occlusion and emissive maps are not carried over (reported)."""
    notes: list[str] = []
    cells = [_atlas_cell(p, notes) for p in parts]
    width, height = _fit_cells(cells, notes)
    color = np.zeros((height, width, 3), np.uint8)
    metal_rough = np.zeros((height, width, 3), np.uint8)
    uvs = []
    for cell in cells:
        h, w = cell.color.shape[:2]
        paste_with_gutter(color, cell.color, (cell.x, cell.y))
        paste_with_gutter(metal_rough, cell.metal_rough, (cell.x, cell.y))
        u = (cell.x + cell.uv[:, 0] * w) / width
        v = 1.0 - (cell.y + (1.0 - cell.uv[:, 1]) * h) / height
        uvs.append(np.column_stack([u, v]))
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])[:-1]
    mesh = trimesh.Trimesh(
        vertices=np.vstack([p.vertices for p in parts]),
        faces=np.vstack([p.faces + o for p, o in zip(parts, offsets, strict=True)]),
        vertex_normals=np.vstack([p.vertex_normals for p in parts]),
        visual=trimesh.visual.TextureVisuals(
            uv=np.vstack(uvs), material=_atlas_material(cells, color, metal_rough)
        ),
        process=False,
    )
    return mesh, notes


def _fit_cells(cells: list[_Cell], notes: list[str]) -> tuple[int, int]:
    """Pack the cells (tallest first) into at most ATLAS_MAX_SIDE texels a side, halving textures until
    they fit; sets each cell's x, y and returns the atlas (width, height)."""
    side_limit = ATLAS_MAX_SIDE - 2 * ATLAS_PADDING
    for cell in cells:  # no single cell larger than the atlas
        h, w = cell.color.shape[:2]
        if max(h, w) > side_limit:
            f = side_limit / max(h, w)
            cell.color = _resize(cell.color, f)
            cell.metal_rough = _resize(cell.metal_rough, f)
    width, height = _pack_cells(cells)
    downsampled = f"textures downsampled to fit a {ATLAS_MAX_SIDE}-pixel atlas"
    while max(width, height) > ATLAS_MAX_SIDE:
        for cell in cells:
            if cell.color.shape[0] > SWATCH:
                cell.color, cell.metal_rough = _resize(cell.color, 0.5), _resize(cell.metal_rough, 0.5)
        width, height = _pack_cells(cells)
        if downsampled not in notes:
            notes.append(downsampled)
    return width, height


def _pack_cells(cells: list[_Cell]) -> tuple[int, int]:
    """Rows as wide as a square atlas, tallest cells first; the atlas is the full row width."""
    sizes = [(c.color.shape[1], c.color.shape[0]) for c in cells]
    width = _ceil4(square_row_width(sizes))
    corners, (_, height) = shelf_pack(sizes, width, tallest_first=True)
    for cell, (x, y) in zip(cells, corners, strict=True):
        cell.x, cell.y = x, y
    return width, height


def _atlas_material(
    cells: list[_Cell], color: np.ndarray, metal_rough: np.ndarray
) -> trimesh.visual.material.PBRMaterial:
    """Factors alone when every part has the same metal and roughness, else a metallic-roughness map."""
    mr_values = {tuple(np.unique(c.metal_rough.reshape(-1, 3), axis=0).reshape(-1)) for c in cells}
    if len(mr_values) == 1 and len(next(iter(mr_values))) == 3:
        _, rough, metal = next(iter(mr_values))
        return trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.fromarray(color),
            metallicFactor=metal / 255.0,
            roughnessFactor=rough / 255.0,
        )
    return trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(color),
        metallicRoughnessTexture=Image.fromarray(metal_rough),
        metallicFactor=1.0,
        roughnessFactor=1.0,
    )


def _atlas_cell(part: trimesh.Trimesh, notes: list[str]) -> _Cell:
    """A part's look as a cell: its texture times its factor, or a swatch of its plain colour."""
    visual = part.visual
    mat = getattr(visual, "material", None)
    if isinstance(mat, trimesh.visual.material.SimpleMaterial):
        textured = base_color_texture(part) is not None
        mat = trimesh.visual.material.PBRMaterial(
            baseColorTexture=mat.image if textured else None,
            baseColorFactor=None if textured else mat.diffuse,
            metallicFactor=0.0,
            roughnessFactor=MaterialHints().roughness,
        )
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        return _pbr_cell(part, mat, notes)
    if isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind in ("vertex", "face"):
        # per-vertex colours become texels (trimesh's colour-to-UV mapping: one texel per colour)
        cmat, uv = trimesh.visual.color.color_to_uv(vertex_colors=visual.vertex_colors)
        w, h = cmat.image.size
        return _Cell(
            np.asarray(cmat.image.convert("RGB")),
            _metal_rough_cell(None, (w, h), 0.0, MaterialHints().roughness),
            np.asarray(uv, dtype=np.float64),
        )
    d = MaterialHints()
    return _swatch_cell(np.asarray(d.base_color), d.metallic, d.roughness, len(part.vertices))


def _pbr_cell(part: trimesh.Trimesh, mat: trimesh.visual.material.PBRMaterial, notes: list[str]) -> _Cell:
    """A glTF material's cell: its texture times its colour factor (UVs folded into 0..1), or a swatch."""
    factor = np.asarray(rgba01(mat.baseColorFactor) if mat.baseColorFactor is not None else (1, 1, 1, 1))
    metal = 1.0 if mat.metallicFactor is None else float(mat.metallicFactor)
    rough = 1.0 if mat.roughnessFactor is None else float(mat.roughnessFactor)
    for slot in ("normalTexture", "occlusionTexture", "emissiveTexture"):
        if getattr(mat, slot, None) is not None and f"{slot} dropped" not in notes:
            notes.append(f"{slot} dropped")
    image = mat.baseColorTexture if part.visual.uv is not None else None
    if image is None:
        return _swatch_cell(factor, metal, rough, len(part.vertices))
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    if not np.allclose(factor[:3], 1.0):
        rgb = linear_to_srgb(srgb_to_linear(rgb) * factor[:3])
    color = np.round(rgb * 255).astype(np.uint8)
    uv = np.asarray(part.visual.uv, dtype=np.float64)
    if (uv < -1e-3).any() or (uv > 1 + 1e-3).any():
        if "UVs outside 0..1 wrapped per vertex" not in notes:
            notes.append("UVs outside 0..1 wrapped per vertex (a tiled texture can smear at tile seams)")
        uv = np.where((uv < 0) | (uv > 1), np.mod(uv, 1.0), uv)
    h, w = color.shape[:2]
    half = 0.5 / np.array([w, h])
    uv = np.clip(uv, half, 1.0 - half)
    return _Cell(color, _metal_rough_cell(mat.metallicRoughnessTexture, (w, h), metal, rough), uv)


def _swatch_cell(linear_rgb: np.ndarray, metal: float, rough: float, n_vertices: int) -> _Cell:
    """A plain-coloured part: a small square of its colour, every vertex at its centre."""
    swatch = np.round(linear_to_srgb(linear_rgb[:3]) * 255).astype(np.uint8)
    return _Cell(
        np.tile(swatch, (SWATCH, SWATCH, 1)),
        _metal_rough_cell(None, (SWATCH, SWATCH), metal, rough),
        np.full((n_vertices, 2), 0.5),
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
