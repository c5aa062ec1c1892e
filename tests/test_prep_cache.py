"""Per-SKU preparation stored in the catalog: written at `sku add`, read instead of recomputed, and never
trusted when it does not belong to the mesh beside it."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from mesh_fixtures import STORED_FILE_DAMAGES

from synth import prep_cache
from synth.catalog import Catalog
from synth.randomize import shapes
from synth.sku import add_mesh


def _shape_arrays(s: shapes.Shape) -> list:
    return [s.vertices, s.planes, s.center_mass, s.stable_rotations, s.stable_probabilities, s.vertex_real]


def _same(a: shapes.Shape, b: shapes.Shape) -> bool:
    return all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in zip(_shape_arrays(a), _shape_arrays(b), strict=True)
    ) and ((a.surface is None) == (b.surface is None))


@pytest.fixture()
def entry(tmp_path):
    """A catalog entry of a non-convex part (an L-bracket: hull faces span empty space)."""
    a = trimesh.creation.box((0.06, 0.02, 0.004))
    b = trimesh.creation.box((0.004, 0.02, 0.04))
    b.apply_translation((-0.028, 0.0, 0.018))
    mesh = trimesh.util.concatenate([a, b])
    src = tmp_path / "bracket.stl"
    mesh.export(src)
    catalog = Catalog(tmp_path / "catalog")
    rec = add_mesh(
        catalog,
        src,
        name="Bracket",
        category="bracket",
        supercategory="industrial",
        units="m",
        thumbnail=False,
    )
    return catalog, str(catalog.mesh_path(rec).resolve())


def _fresh(mesh_path: str) -> shapes.Shape:
    shapes._mesh_shape_cached.cache_clear()
    return shapes.mesh_shape(mesh_path)


def test_sku_add_stores_the_preparation_and_workers_read_it(entry, monkeypatch):
    _, mesh_path = entry
    path = prep_cache.prep_path(mesh_path)
    assert path is not None and path.is_file()
    computed = _fresh(mesh_path)
    assert computed.surface is not None and computed.vertex_real is not None  # non-convex
    calls = []
    monkeypatch.setattr(shapes, "prepare_mesh", lambda *a: calls.append(a) or pytest.fail("recomputed"))
    before, seconds = prep_cache.STATS.loaded, prep_cache.STATS.seconds
    loaded = _fresh(mesh_path)
    assert not calls and prep_cache.STATS.loaded == before + 1
    assert prep_cache.STATS.seconds == seconds  # reading is not preparation: the timings show 0
    assert _same(computed, loaded)


def _recomputes(mesh_path: str) -> bool:
    before = prep_cache.STATS.computed
    _fresh(mesh_path)
    return prep_cache.STATS.computed == before + 1


@pytest.mark.parametrize(
    "damage", [d for _, d in STORED_FILE_DAMAGES], ids=[i for i, _ in STORED_FILE_DAMAGES]
)
def test_a_damaged_or_foreign_preparation_is_recomputed_and_replaced(entry, tmp_path, damage):
    catalog, mesh_path = entry
    path = prep_cache.prep_path(mesh_path)
    good = _fresh(mesh_path)
    other_mesh = tmp_path / "other" / "mesh.glb"
    other_mesh.parent.mkdir()
    trimesh.creation.box((0.05, 0.05, 0.05)).export(other_mesh)
    (other_mesh.parent / "sku.yaml").write_text("{}")
    prep_cache.store(
        other_mesh,
        prep_cache.mesh_digest(other_mesh),
        shapes.prepare_mesh(str(other_mesh), *shapes._welded(str(other_mesh))),
    )
    damage(path, prep_cache.prep_path(other_mesh))
    assert _recomputes(mesh_path)
    assert _same(good, shapes.mesh_shape(mesh_path))
    assert not _recomputes(mesh_path)  # the recomputed preparation was stored again


def test_wrong_arrays_are_rejected(entry):
    _, mesh_path = entry
    digest = prep_cache.mesh_digest(mesh_path)
    prep = prep_cache.load(mesh_path, digest)
    assert prep is not None
    bad = prep_cache.ShapePrep(
        prep.hull_vertices,
        prep.hull_faces + len(prep.hull_vertices),  # faces pointing past the vertices
        prep.center_mass,
        prep.rotations,
        prep.probabilities,
        prep.vertex_real,
        prep.plane_solid,
    )
    prep_cache.store(mesh_path, digest, bad)
    assert prep_cache.load(mesh_path, digest) is None


def test_meshes_outside_a_catalog_get_no_file(tmp_path):
    mesh = tmp_path / "loose.glb"
    trimesh.creation.box((0.05, 0.05, 0.05)).export(mesh)
    _fresh(str(mesh))
    assert prep_cache.prep_path(mesh) is None
    assert list(tmp_path.iterdir()) == [mesh]
