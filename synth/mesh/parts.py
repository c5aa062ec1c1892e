"""From what a loader returns (a scene of parts) to one clean mesh: node transforms applied, parts checked,
concatenated or baked into one texture atlas, degenerate faces dropped, sharp CAD edges kept crisp."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import trimesh

from synth.errors import AssetError
from synth.mesh.atlas import bake_atlas
from synth.mesh.checks import first_line

SHARP_EDGE_DEG = (
    30.0  # untextured meshes: faces meeting at a sharper angle get split normals (crisp CAD edges)
)


def bake_scene(scene: trimesh.Scene) -> list:
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


def check_parts(path: Path, meshes: list[trimesh.Trimesh]) -> None:
    """Coordinates, face indices and UVs a renderer can use: finite and in range."""
    for m in meshes:
        if np.shape(m.vertices)[1:] != (3,) or np.shape(m.faces)[1:] != (3,):
            raise AssetError(
                path, "vertices or faces are not 3D triangles (a malformed vertex or face line?)"
            )
        if not np.isfinite(m.vertices).all():
            bad = int((~np.isfinite(m.vertices)).any(axis=1).sum())
            raise AssetError(path, f"{bad} of {len(m.vertices)} vertices have NaN or infinite coordinates")
        if np.asarray(m.faces).max() >= len(m.vertices) or np.asarray(m.faces).min() < 0:
            raise AssetError(path, "faces refer to vertices that do not exist")
        if isinstance(m.visual, trimesh.visual.TextureVisuals) and m.visual.uv is not None:
            if np.shape(m.visual.uv) != (len(m.vertices), 2):
                raise AssetError(path, "texture coordinates are not one (u, v) pair per vertex")
            if not np.isfinite(m.visual.uv).all():
                raise AssetError(path, "texture coordinates contain NaN or infinite values")


def merge_parts(path: Path, meshes: list[trimesh.Trimesh], notes: list[str]) -> trimesh.Trimesh:
    """One mesh: parts of one look concatenated, parts of different textured looks baked into an atlas."""
    if len(meshes) == 1:
        return meshes[0]
    materials = {_material_key(m) for m in meshes}
    textured = any(isinstance(m.visual, trimesh.visual.TextureVisuals) for m in meshes)
    try:
        if textured and len(materials) > 1:
            mesh, atlas_notes = bake_atlas(meshes)
            notes.append(
                f"{len(meshes)} parts with {len(materials)} different materials baked into one "
                f"texture atlas" + "".join(f"; {n}" for n in atlas_notes)
            )
            return mesh
        mesh = trimesh.util.concatenate(meshes)
        notes.append(f"{len(meshes)} parts concatenated into one mesh")
        return mesh
    except AssetError:
        raise
    except Exception as e:  # noqa: BLE001 - exotic materials can break merging
        raise AssetError(
            path, f"could not merge its {len(meshes)} parts into one mesh ({first_line(e)})"
        ) from None


def _material_key(m: trimesh.Trimesh):
    v = m.visual
    if isinstance(v, trimesh.visual.TextureVisuals) and v.material is not None:
        return ("tex", hash(v.material))
    return ("color", v.kind)


def clean(mesh: trimesh.Trimesh, path: Path) -> trimesh.Trimesh:
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


def split_sharp_edges(mesh: trimesh.Trimesh, angle_deg: float = SHARP_EDGE_DEG) -> trimesh.Trimesh:
    """Disconnect faces meeting at a sharp angle so stored vertex normals give crisp CAD edges and smooth
    curved surfaces in every renderer (glTF has no 'auto smooth')."""
    if len(mesh.faces) == 0:
        return mesh
    split = trimesh.graph.smooth_shade(mesh, angle=math.radians(angle_deg), facet_minarea=None)
    split.metadata.update(mesh.metadata)
    _ = split.vertex_normals  # computed now, so it is cached and exported
    return split
