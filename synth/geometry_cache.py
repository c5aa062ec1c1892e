"""Render-ready geometry stored beside a catalog mesh: what ``synth.geometry`` derives from a mesh file
on first use, besides reading it, cost every render worker 20-100 ms per mesh (sharp-edge normal
splitting and box-projected UVs for parts without UVs, and the oriented edge topology that silhouettes
are filled from). It is computed once when the entry is written (``simreal sku add`` / ``sku generate``)
or by the first worker that needs it, and read by every process after that.

The file ``<entry>/<mesh>.geom.npz`` is a plain numpy archive (no pickles) keyed by the SHA-256 of the
mesh file's bytes, a format version and the trimesh version (another trimesh may split a file into
other parts). Textures stay in the mesh file. A missing, stale, corrupt, oversized or inconsistent file
is ignored and the geometry derived again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import trimesh

from synth import prep_cache

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUFFIX = ".geom.npz"
MAX_FILE_BYTES = 64 << 20  # a few hundred thousand triangles of float64 corners and their topology
MAX_PARTS = 256


@dataclass(frozen=True, eq=False)
class ProjectedPart:
    """A part that had no UVs, as ``synth.geometry.with_uv`` made it: one vertex per triangle corner
    (faces are ``arange``), its normals, box-projected UVs and the part's colour as RGBA bytes."""

    vertices: np.ndarray  # (3T, 3) float64
    normals: np.ndarray  # (3T, 3) float64
    uv: np.ndarray  # (3T, 2) float64
    rgba: np.ndarray  # (4,) uint8


@dataclass(frozen=True, eq=False)
class StoredGeometry:
    """Everything derived from a mesh file except what trimesh reads from it directly."""

    n_parts: int
    projected: dict[int, ProjectedPart]  # part index -> its UV-projected replacement
    closed: bool
    edges: np.ndarray | None  # (E, 2) int64, as ``LoadedGeometry.edges``
    edge_faces: np.ndarray | None  # (E, 2) int64
    loose_faces: np.ndarray | None  # (L,) int64


def key_of(mesh_path: str, in_entry: bool = False) -> str | None:
    """The identity a stored file must carry for this mesh (None: not a catalog mesh, nothing stored)."""
    if prep_cache.prep_path(mesh_path, in_entry, SUFFIX) is None:
        return None
    return f"{prep_cache.mesh_digest(mesh_path)}:{FORMAT_VERSION}:trimesh-{trimesh.__version__}"


def load(mesh_path: str, key: str) -> StoredGeometry | None:
    """The stored geometry of this exact mesh (``key`` from ``key_of``), or None."""
    path = prep_cache.prep_path(mesh_path, True, SUFFIX)
    arrays = prep_cache.read_arrays(path, MAX_FILE_BYTES)
    if arrays is None or str(arrays.get("key", "")) != key:
        return None
    stored = _parsed(arrays)
    if stored is None:
        log.warning("%s: arrays of the wrong kind or size; deriving the geometry again", path)
    return stored


def store(mesh_path: str, key: str, geom: StoredGeometry, in_entry: bool = False) -> bool:
    """Write ``geom`` beside the mesh (atomic); False when there is no place or no permission."""
    path = prep_cache.prep_path(mesh_path, in_entry, SUFFIX)
    if path is None:
        return False
    arrays = {"key": np.array(key), "n_parts": np.array(geom.n_parts), "closed": np.array(geom.closed)}
    for name in ("edges", "edge_faces", "loose_faces"):
        if getattr(geom, name) is not None:
            arrays[name] = getattr(geom, name)
    for i, part in geom.projected.items():
        for field in ("vertices", "normals", "uv", "rgba"):
            arrays[f"p{i}_{field}"] = getattr(part, field)
    return prep_cache.write_arrays(path, arrays)


def _parsed(a: dict[str, np.ndarray]) -> StoredGeometry | None:
    """The arrays as a StoredGeometry when every one has the kind and shape it must (else None). Whether
    it fits the parts actually read from the mesh is ``synth.geometry``'s check."""
    try:
        n_parts, closed = int(a["n_parts"]), bool(a["closed"])
    except (KeyError, TypeError, ValueError):
        return None
    if not 0 < n_parts <= MAX_PARTS:
        return None
    topo = {}
    for name, ndim in (("edges", 2), ("edge_faces", 2), ("loose_faces", 1)):
        x = a.get(name)
        if x is not None and (x.dtype != np.int64 or x.ndim != ndim or (ndim == 2 and x.shape[1] != 2)):
            return None
        topo[name] = x
    if (topo["edges"] is None) != (topo["edge_faces"] is None) or (
        topo["edges"] is not None and len(topo["edges"]) != len(topo["edge_faces"])
    ):
        return None
    projected = {}
    for i in range(n_parts):
        fields = {f: a.get(f"p{i}_{f}") for f in ("vertices", "normals", "uv", "rgba")}
        if all(x is None for x in fields.values()):
            continue
        v, n, uv, rgba = fields["vertices"], fields["normals"], fields["uv"], fields["rgba"]
        if any(x is None for x in fields.values()):
            return None
        if not (
            v.dtype == n.dtype == uv.dtype == np.float64
            and v.ndim == n.ndim == uv.ndim == 2
            and v.shape[1] == n.shape[1] == 3
            and uv.shape[1] == 2
            and len(v) == len(n) == len(uv)
            and len(v) % 3 == 0
            and len(v) > 0
            and rgba.dtype == np.uint8
            and rgba.shape == (4,)
            and all(np.isfinite(x).all() for x in (v, n, uv))
        ):
            return None
        projected[i] = ProjectedPart(v, n, uv, rgba)
    return StoredGeometry(n_parts, projected, closed, topo["edges"], topo["edge_faces"], topo["loose_faces"])
