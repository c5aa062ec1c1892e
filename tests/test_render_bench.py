"""`simreal bench render`: the raw reference, the recipes and the per-SKU preparation figures are part of
one run's JSON and printout (figures are not checked: benchmarks print them, tests do not time)."""

from __future__ import annotations

import json

import pytest
from render_scenes import RenderService, make_tiny_catalog

from synth.bench import BenchSceneConfig, bench_scene, format_report, run_bench
from synth.catalog import Catalog
from synth.config import CatalogSelection, ImageConfig
from synth.render.raw_reference import RawReference


@pytest.fixture(scope="module")
def render_service():
    service = RenderService()
    yield service
    service.close()


def test_raw_reference_draws_every_image_and_times_each_step(tmp_path, render_service):
    """In a child process (one GL context per process): a few tiny scenes, every stage timed."""
    result = render_service.call(_reference_of_tiny_scenes, str(tmp_path))
    assert result["images"] == 3 and result["images_per_s"] > 0
    assert set(result["ms_per_image"]) == {"setup", "color", "ids", "encode", "rle"}
    assert all(v >= 0 for v in result["ms_per_image"].values())
    # the rasteriser is named: Mesa's llvmpipe here (a GPU's name on a GPU machine's EGL)
    assert "llvmpipe" in result["gl_renderer"]


def _reference_of_tiny_scenes(tmp: str) -> dict:
    sel = CatalogSelection(root=f"{tmp}/no-catalog", class_agnostic="object")
    cfg = BenchSceneConfig(image=ImageConfig(width=64, height=48), catalog=sel, objects=4)
    scenes = [bench_scene(cfg, Catalog(sel.root), 0, i) for i in range(3)]
    return RawReference().run(scenes)


@pytest.mark.slow
def test_bench_reports_reference_ratio_recipes_and_preparation(tmp_path, monkeypatch):
    import synth.bench as bench
    from synth.randomize.shapes import store_preparation

    catalog = make_tiny_catalog(tmp_path / "catalog")
    for sku_id in catalog.ids():  # as `sku add` leaves an entry: preparations stored beside the mesh
        store_preparation(catalog.mesh_path(catalog.get(sku_id)))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("image: {width: 48, height: 48}\nlayout: {kind: table}\n")
    monkeypatch.setattr(bench, "RECIPES", ((str(recipe), "tiny"),))
    out = tmp_path / "bench.json"
    report = run_bench(
        n=2, workers=(1,), width=64, height=48, objects=3, catalog=str(catalog.root), out=out,
        progress=False,
    )  # fmt: skip
    assert json.loads(out.read_text()) == report
    assert report["reference"]["images"] == 2
    assert set(report["end_to_end_to_reference"]) == {"1"}
    (r,) = report["recipes"]
    assert r["config"] == str(recipe) and r["images"] == 2
    # every entry has its preparations stored: the workers prepare nothing, and the figures say 0
    assert report["results"][0]["sku_prepare_s"] == 0 == r["sku_prepare_s"]
    text = format_report(report)
    assert "raw pyrender reference" in text and "recipe" in text and "per-SKU preparation" in text
    assert "llvmpipe threads" in text  # the reference names its rasteriser
    gpu = {**report, "reference": {**report["reference"], "gl_renderer": "NVIDIA H200/PCIe/SSE2"}}
    assert "NVIDIA H200/PCIe/SSE2)" in format_report(gpu) and "llvmpipe" not in format_report(gpu)
    # one worker only: no 2-worker goal and no scaling to claim, and the text says the goal was not met
    assert report["goal"]["met_throughput"] is None and report["goal"]["two_over_one_workers"] is None
    assert "whole run NOT met, steady state NOT met" in text
