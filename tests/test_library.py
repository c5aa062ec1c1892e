"""`simreal sku generate`: a default catalog from the procedural library, idempotent and reproducible."""

from __future__ import annotations

from synth.catalog import Catalog
from synth.library import generate_library


def test_generate_is_idempotent_and_reproducible(tmp_path):
    a, b = Catalog(tmp_path / "a"), Catalog(tmp_path / "b")
    assert generate_library(a, 3, 2, seed=7, thumbnails=False) == (5, 0)
    assert generate_library(a, 3, 2, seed=7, thumbnails=False) == (0, 5)
    generate_library(b, 3, 2, seed=7, thumbnails=False)
    assert a.ids() == b.ids() and len(a) == 5
    supers = sorted(r.supercategory for r in a)
    assert supers == ["industrial", "industrial", "retail", "retail", "retail"]
    for rec in a:
        assert a.mesh_path(rec).read_bytes() == b.mesh_path(b.get(rec.id)).read_bytes()
        assert rec.source.kind == "procedural" and rec.source.seed is not None
        assert all(1e-3 < s < 0.5 for s in rec.size_m)


def test_growing_the_library_keeps_existing_entries(tmp_path):
    cat = Catalog(tmp_path / "c")
    generate_library(cat, 2, 1, seed=0, thumbnails=False)
    before = set(cat.ids())
    added, kept = generate_library(cat, 4, 2, seed=0, thumbnails=False)
    assert kept == 3 and added == 3 and before < set(cat.ids())
