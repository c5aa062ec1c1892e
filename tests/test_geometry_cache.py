"""Render-ready geometry stored in the catalog: written at `sku generate` / `sku add`, read by workers
instead of derived again, identical to what deriving gives, and never trusted when it does not belong to
the mesh beside it."""

from __future__ import annotations

import numpy as np
import pyrender
import pytest
import trimesh
from mesh_fixtures import STORED_FILE_DAMAGES
from PIL import Image

from synth import geometry, geometry_cache
from synth.catalog import Catalog
from synth.library import generate_library
from synth.prep_cache import prep_path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Textured packages (UVs from the file) and CAD parts (UVs projected here), as generated."""
    cat = Catalog(tmp_path_factory.mktemp("geometry-cache") / "catalog")
    generate_library(cat, 2, 3, seed=3, thumbnails=False)
    return cat


def _meshes(catalog: Catalog) -> list[str]:
    return [str(catalog.mesh_path(catalog.get(i)).resolve()) for i in catalog.ids()]


def _store(mesh_path: str):
    return prep_path(mesh_path, suffix=geometry_cache.SUFFIX)


def _derived(mesh_path: str) -> geometry.LoadedGeometry:
    """Derived from the mesh file alone (the stored copy moved away and put back)."""
    path = _store(mesh_path)
    kept = path.read_bytes()
    path.unlink()
    try:
        return geometry.load_mesh_file(mesh_path, "k")
    finally:
        path.write_bytes(kept)


def _assert_same(a: geometry.LoadedGeometry, b: geometry.LoadedGeometry) -> None:
    for name in ("vertices", "faces", "triangles", "edges", "edge_faces", "loose_faces"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y), name
    assert a.closed == b.closed and len(a.meshes) == len(b.meshes)
    for m, n in zip(a.meshes, b.meshes, strict=True):
        assert np.array_equal(m.vertices, n.vertices) and np.array_equal(m.faces, n.faces)
        assert np.array_equal(m.vertex_normals, n.vertex_normals)
        assert m.visual.kind == n.visual.kind
        assert np.array_equal(np.asarray(m.visual.uv), np.asarray(n.visual.uv))
        assert np.array_equal(m.visual.material.baseColorFactor, n.visual.material.baseColorFactor)
        assert (m.visual.material.baseColorTexture is None) == (n.visual.material.baseColorTexture is None)
        # Cycles keeps the file's normals only where trimesh has them cached (not recomputed on demand)
        assert ("vertex_normals" in m._cache) == ("vertex_normals" in n._cache)


def test_generate_stores_it_and_loads_give_what_deriving_gives(catalog, monkeypatch):
    meshes = _meshes(catalog)
    assert len(meshes) == 5
    derived = {p: _derived(p) for p in meshes}
    projected = 0
    for p in meshes:
        stored = geometry_cache.load(p, geometry_cache.key_of(p))
        assert stored is not None, p
        projected += len(stored.projected)
    assert projected >= 3  # the CAD parts had no UVs
    # a worker reads: no edge topology or UV projection is computed again
    monkeypatch.setattr(geometry, "_oriented_edges", lambda *a: pytest.fail("edges derived again"))
    monkeypatch.setattr(geometry, "with_uv", lambda *a: pytest.fail("UVs projected again"))
    for p in meshes:
        _assert_same(derived[p], geometry.load_mesh_file(p, "k"))


def test_pyrender_meshes_match_from_trimesh(catalog):
    from synth.render.pyrender_backend import _mesh_from_parts

    for p in _meshes(catalog):
        parts = list(geometry.load_mesh_file(p, "k").meshes)
        materials = [pyrender.MetallicRoughnessMaterial() for _ in parts]
        ours, ref = _mesh_from_parts(parts, materials), pyrender.Mesh.from_trimesh(parts, smooth=True)
        for a, b in zip(ours.primitives, ref.primitives, strict=True):
            for attr in ("positions", "normals", "texcoord_0", "color_0", "indices"):
                x, y = getattr(a, attr), getattr(b, attr)
                assert (x is None and y is None) or np.array_equal(x, y), (p, attr)
            assert a.mode == b.mode


@pytest.mark.parametrize(
    "damage", [d for _, d in STORED_FILE_DAMAGES], ids=[i for i, _ in STORED_FILE_DAMAGES]
)
def test_a_damaged_or_foreign_file_is_derived_again_and_replaced(catalog, damage):
    part, other = [p for p in _meshes(catalog) if geometry_cache.load(p, geometry_cache.key_of(p)).projected][
        :2
    ]
    good = _derived(part)
    path = _store(part)
    kept = path.read_bytes()
    try:
        damage(path, _store(other))
        _assert_same(good, geometry.load_mesh_file(part, "k"))
        assert geometry_cache.load(part, geometry_cache.key_of(part)) is not None  # stored again
    finally:
        path.write_bytes(kept)


def test_arrays_that_do_not_fit_the_mesh_are_not_used(catalog):
    part = next(p for p in _meshes(catalog) if geometry_cache.load(p, geometry_cache.key_of(p)).projected)
    key = geometry_cache.key_of(part)
    good = geometry_cache.load(part, key)
    path = _store(part)
    kept = path.read_bytes()
    try:
        bad_edges = geometry_cache.StoredGeometry(
            good.n_parts, good.projected, good.closed, good.edges + 10**6, good.edge_faces, good.loose_faces
        )
        geometry_cache.store(part, key, bad_edges)
        assert geometry_cache.load(part, key) is not None  # well-formed arrays ...
        _assert_same(_derived(part), geometry.load_mesh_file(part, "k"))  # ... that index past the mesh
        wrong_parts = geometry_cache.StoredGeometry(
            good.n_parts + 1, good.projected, good.closed, good.edges, good.edge_faces, good.loose_faces
        )
        geometry_cache.store(part, key, wrong_parts)
        _assert_same(_derived(part), geometry.load_mesh_file(part, "k"))
    finally:
        path.write_bytes(kept)


def test_meshes_outside_a_catalog_get_no_file(tmp_path):
    mesh = tmp_path / "loose.stl"
    trimesh.creation.box((0.05, 0.05, 0.05)).export(mesh)
    geometry.load_mesh_file(str(mesh), "k")
    assert geometry_cache.key_of(str(mesh)) is None
    assert list(tmp_path.iterdir()) == [mesh]


def test_deriving_counts_as_preparation_and_reading_does_not(catalog):
    from synth.prep_cache import STATS

    part = _meshes(catalog)[0]
    before = (STATS.seconds, STATS.computed, STATS.loaded)
    geometry.load_mesh_file(part, "k")
    assert (STATS.seconds, STATS.computed, STATS.loaded) == (before[0], before[1], before[2] + 1)
    _derived(part)
    assert STATS.seconds > before[0] and STATS.computed == before[1] + 1
    with STATS.timing():  # a shape deriving its mesh's geometry is one block of preparation, not two
        t0 = STATS.seconds
        _derived(part)
        assert STATS.seconds == t0
    assert STATS.seconds > t0


def test_a_files_own_vertex_normals_are_kept_and_posed(tmp_path):
    """Normals a textured part's file provides are what renderers get (turned with the part's pose), not
    ones trimesh would average again: here every normal of a box points along +x, which averaging never
    gives."""
    box = trimesh.creation.box((0.02, 0.04, 0.06))
    box = trimesh.Trimesh(
        box.vertices, box.faces, vertex_normals=np.tile([1.0, 0.0, 0.0], (8, 1)), process=False
    )
    label = Image.fromarray(np.full((4, 4, 3), 200, dtype=np.uint8))
    box.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).random((8, 2)), image=label)
    scene = trimesh.Scene()
    scene.add_geometry(box, transform=trimesh.transformations.rotation_matrix(np.pi / 2, [0, 0, 1]))
    path = tmp_path / "box.glb"
    scene.export(path)
    (part,) = geometry.load_mesh_file(str(path), "k").meshes
    assert "vertex_normals" in part._cache  # Cycles reads them from there (cycles_geometry._file_normals)
    # every normal is the box's x axis (its 2 cm side) where the part's pose put it
    thinnest = np.eye(3)[np.argmin(part.extents)]
    assert np.allclose(np.abs(part.vertex_normals), thinnest, atol=1e-6)
    assert np.allclose(part.vertex_normals, part.vertex_normals[0])
