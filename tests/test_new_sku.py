"""New-SKU datasets: batch import (checked first, identical imports reused), the guaranteed share of images
per new SKU on real pyrender renders, and the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trimesh
from mesh_fixtures import write_stl
from randomize_helpers import RETAIL, make_catalog

from synth.catalog import Catalog
from synth.errors import AssetError
from synth.randomize import build_scene, load_render_config
from synth.share import build_share_scene, is_required
from synth.sku_dataset import (
    config_data,
    layout_config,
    measure_share,
    quality_report,
    render_new_sku_dataset,
    share_config,
)
from synth.sku_import import NewSku, import_skus

SMALL = {
    "image.width": 128,
    "image.height": 96,
    "output.shard_size": 4,
    "camera.distance": [0.35, 0.7],
    "objects.count": [3, 6],
    "distractors.count": [0, 1],
}


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.8, 0.95, 1.0])
def test_required_images_reach_the_share_in_every_prefix(share):
    flags = [is_required(i, share) for i in range(200)]
    for n in range(1, 201):
        assert sum(flags[:n]) >= n * share - 1e-9
    assert sum(flags) <= 200 * share + 1


def test_batch_import_reuses_identical_meshes_and_writes_nothing_on_a_bad_file(tmp_path):
    catalog = make_catalog(tmp_path / "cat", RETAIL[:2])
    good = write_stl(tmp_path / "in" / "snack_box.stl", trimesh.creation.box(extents=(80, 40, 120)))
    bad = tmp_path / "in" / "broken.stl"
    bad.write_bytes(b"solid nothing\nendsolid nothing\n")
    with pytest.raises(AssetError, match="broken.stl"):
        import_skus(catalog, [NewSku(str(good), units="mm"), NewSku(str(bad))], thumbnail=False)
    assert len(Catalog(catalog.root)) == 2  # the good one was not written either

    first = import_skus(catalog, [NewSku(str(good), units="mm"), NewSku("cereal-a")], thumbnail=False)
    assert [r.id for r in first] == ["snack_box".replace("_", "-"), "cereal-a"]
    mtime = catalog.entry_dir(first[0].id).stat().st_mtime_ns
    again = import_skus(catalog, [NewSku(str(good), units="mm")], thumbnail=False)
    assert again[0] == first[0]
    assert catalog.entry_dir(first[0].id).stat().st_mtime_ns == mtime
    with pytest.raises(AssetError, match="not this import"):
        import_skus(catalog, [NewSku(str(good), units="mm", category="other")], thumbnail=False)


def test_plain_configs_build_the_same_scenes_as_before(tmp_path):
    """A share config without required ids, or an image not required, is the plain config's scene."""
    catalog = make_catalog(tmp_path / "cat", RETAIL)
    data = config_data("configs/retail_table.yaml", {**SMALL, "catalog.root": str(catalog.root)})
    records = [catalog.get("tea-c")]
    cfg = share_config(data, records, catalog_root=catalog.root, share=0.5)
    plain = load_render_config("configs/retail_table.yaml").model_copy(update={"catalog": cfg.catalog})
    plain = plain.model_copy(
        update={k: getattr(cfg, k) for k in ("image", "camera", "objects", "distractors")}
    )
    index = next(i for i in range(10) if not is_required(i, 0.5))
    a, b = build_share_scene(cfg, catalog, 3, index), build_scene(plain, catalog, 3, index)
    assert [o.pose for o in a.objects] == [o.pose for o in b.objects]


@pytest.mark.parametrize(("layout", "others"), [("table", "labelled"), ("shelf", "distractors")])
def test_each_new_sku_appears_in_the_asked_share_of_rendered_images(tmp_path, layout, others):
    catalog = make_catalog(tmp_path / "cat", RETAIL)
    records = import_skus(catalog, [NewSku("tea-c"), NewSku("soda-can")])
    data = config_data(layout_config(records, layout), SMALL)
    cfg = share_config(data, records, catalog_root=catalog.root, share=0.8, others=others)
    out = tmp_path / "data"
    render_new_sku_dataset(cfg, 8, out, seed=1, workers=2, progress=False)
    summary = quality_report(out, cfg)
    assert summary["share_met"], summary["share"]
    assert all(v >= 0.8 for v in measure_share(out / "annotations.json", ["tea-c", "soda-can"]).values())
    assert summary["contact_sheets"] and (out / "stats" / "stats.json").is_file()
    names = {c for c in summary_categories(out)}
    assert ({"tea", "soda"} < names) if others == "labelled" else (names == {"tea", "soda"})


def summary_categories(out) -> set[str]:
    import json

    return {c["name"] for c in json.loads((out / "annotations.json").read_text())["categories"]}


def test_cli_dataset_bad_mesh_is_one_line(tmp_path):
    catalog = make_catalog(tmp_path / "cat", RETAIL[:2])
    bad = tmp_path / "gone.obj"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "sku",
            "dataset",
            str(bad),
            "--catalog",
            str(catalog.root),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "neither a mesh file nor a catalog id" in r.stderr
    assert len(Catalog(catalog.root)) == 2
