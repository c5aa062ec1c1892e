"""Per-SKU preparation stored beside a catalog mesh: what placement needs of it (convex hull, resting
poses, which hull parts are real material) costs 0.2-0.6 s to compute, and every worker of every run
needed it again. It is computed once when the entry is written (``simreal sku add`` / ``sku generate``)
and read by every process.

The file ``<entry>/mesh.prep.npz`` is a plain numpy archive (no pickles) keyed by the SHA-256 of the
mesh file's bytes and a format version. A missing, stale (another mesh), corrupt or oversized file is
ignored and the preparation recomputed; workers then store the fresh one (atomically, best effort: a
read-only catalog only costs the recomputation). Only meshes inside catalog entries get a file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the welded surface of a non-convex mesh is kept
SUFFIX = ".prep.npz"
MAX_FILE_BYTES = 16 << 20  # hull, poses and a welded surface of at most MAX_ROWS faces fit well within
MAX_ROWS = 200_000  # per array; a larger welded surface is not stored (welded again on load)
RECORD_FILE = "sku.yaml"  # synth.catalog.RECORD_FILE (not imported: catalog imports nothing from here)


@dataclass(frozen=True, eq=False)
class ShapePrep:
    """The expensive part of a placement shape: a convex hull (outward faces), the centre of mass, the
    likely resting rotations with their probabilities, and for a non-convex object which hull vertices
    and hull planes lie on real material (None when the hull is the object)."""

    hull_vertices: np.ndarray  # (V, 3) float64
    hull_faces: np.ndarray  # (F, 3) int64
    center_mass: np.ndarray  # (3,) float64
    rotations: np.ndarray  # (K, 3, 3) float64
    probabilities: np.ndarray  # (K,) float64
    vertex_real: np.ndarray | None = None  # (V,) bool
    plane_solid: np.ndarray | None = None  # (P,) bool
    weld_vertices: np.ndarray | None = None  # (N, 3) float64: the welded surface of a non-convex mesh
    weld_faces: np.ndarray | None = None  # (M, 3) int64

    @property
    def convex(self) -> bool:
        return self.vertex_real is None


_FIELDS = ("hull_vertices", "hull_faces", "center_mass", "rotations", "probabilities")
_OPTIONAL = ("vertex_real", "plane_solid", "weld_vertices", "weld_faces")
_DTYPES = {
    "hull_vertices": np.float64,
    "hull_faces": np.int64,
    "center_mass": np.float64,
    "rotations": np.float64,
    "probabilities": np.float64,
    "vertex_real": np.bool_,
    "plane_solid": np.bool_,
    "weld_vertices": np.float64,
    "weld_faces": np.int64,
}
_SHAPES = {  # expected shape, -1 for any length up to MAX_ROWS
    "hull_vertices": (-1, 3),
    "hull_faces": (-1, 3),
    "center_mass": (3,),
    "rotations": (-1, 3, 3),
    "probabilities": (-1,),
    "vertex_real": (-1,),
    "plane_solid": (-1,),
    "weld_vertices": (-1, 3),
    "weld_faces": (-1, 3),
}


class _Stats:
    """What this process spent on preparation (read by the dataset worker for its timings)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.computed = 0
        self.loaded = 0
        self._depth = threading.local()  # nested blocks (a shape deriving its mesh's geometry) count once

    def count(self, computed: bool) -> None:
        with self.lock:
            self.computed += int(computed)
            self.loaded += int(not computed)

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Add the block's wall time to ``seconds``: wrapped around computing what was not found stored,
        never around reading it, so that a catalog whose preparations are all stored shows 0."""
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self.lock:
                    self.seconds += time.perf_counter() - t0


STATS = _Stats()


def prep_path(mesh_path: str | Path, in_entry: bool = False, suffix: str = SUFFIX) -> Path | None:
    """Where the preparation of ``mesh_path`` lives (``suffix``: which one); None for a mesh outside a
    catalog entry (``in_entry``: the caller knows it is one, e.g. an entry still being written)."""
    mesh_path = Path(mesh_path)
    if not in_entry and not (mesh_path.parent / RECORD_FILE).is_file():
        return None
    return mesh_path.with_name(mesh_path.name + suffix)


def read_arrays(path: Path, max_bytes: int = MAX_FILE_BYTES) -> dict[str, np.ndarray] | None:
    """Every array of a stored ``.npz`` (no pickles), or None when missing, oversized or unreadable
    (the last two logged: the caller recomputes)."""
    try:
        if path.stat().st_size > max_bytes:
            log.warning("%s: larger than %d bytes; recomputing", path, max_bytes)
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        log.warning("%s: unreadable (%s); recomputing", path, e.__class__.__name__)
        return None


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Store arrays as an ``.npz`` atomically; False when there is no permission (only logged)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        log.info("%s: cannot store the preparation (%s)", path, e.strerror or e)
        return False
    return True


def mesh_digest(mesh_path: str | Path) -> str:
    h = hashlib.sha256()
    with open(mesh_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(mesh_path: str | Path, digest: str) -> ShapePrep | None:
    """The stored preparation of this exact mesh (by ``digest``), or None (missing, stale or unreadable)."""
    path = prep_path(mesh_path)
    arrays = read_arrays(path) if path is not None else None
    if arrays is None:
        return None
    if str(arrays.get("digest", "")) != digest or int(arrays.get("format", -1)) != FORMAT_VERSION:
        return None  # another mesh or another format: silently recomputed
    prep = _validated(arrays)
    if prep is None:
        log.warning("%s: arrays of the wrong kind or size; recomputing", path)
    return prep


def store(mesh_path: str | Path, digest: str, prep: ShapePrep, in_entry: bool = False) -> bool:
    """Write the preparation beside the mesh (atomic). False when there is no place or no permission."""
    path = prep_path(mesh_path, in_entry)
    if path is None:
        return False
    arrays = {k: getattr(prep, k) for k in _FIELDS + _OPTIONAL if getattr(prep, k) is not None}
    return write_arrays(path, {"digest": np.array(digest), "format": np.array(FORMAT_VERSION), **arrays})


def cached(mesh_path: str, compute, in_entry: bool = False) -> ShapePrep:
    """The preparation of ``mesh_path``: read when stored for these bytes, else ``compute()`` and store."""
    digest = mesh_digest(mesh_path)
    prep = load(mesh_path, digest)
    computed = prep is None
    if computed:
        with STATS.timing():
            prep = compute()
            store(mesh_path, digest, prep, in_entry)
    STATS.count(computed)
    return prep


def _validated(arrays: dict) -> ShapePrep | None:
    out = {}
    for name, shape in _SHAPES.items():
        a = arrays.get(name)
        if a is None:
            if name in _FIELDS:
                return None
            out[name] = None
            continue
        if a.dtype != _DTYPES[name] or a.ndim != len(shape) or len(a) > MAX_ROWS:
            return None
        if any(want not in (-1, got) for want, got in zip(shape, a.shape, strict=True)):
            return None
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            return None
        a.setflags(write=False)
        out[name] = a
    p = ShapePrep(**out)
    n_v, k = len(p.hull_vertices), len(p.rotations)
    if (
        n_v < 4
        or len(p.hull_faces) < 4
        or not indexes_within(p.hull_faces, n_v)
        or k < 1
        or len(p.probabilities) != k
        or (p.vertex_real is None) != (p.plane_solid is None)
        or (p.vertex_real is not None and len(p.vertex_real) != n_v)
        or (p.weld_vertices is None) != (p.weld_faces is None)
        or (p.weld_faces is not None and not indexes_within(p.weld_faces, len(p.weld_vertices)))
    ):
        return None
    return p


def indexes_within(a: np.ndarray, n: int, lowest: int = 0) -> bool:
    """Every index of ``a`` in ``[lowest, n)`` (stored arrays are untrusted)."""
    return len(a) == 0 or (a.min() >= lowest and a.max() < n)
