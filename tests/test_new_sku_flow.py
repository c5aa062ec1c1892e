"""End to end: two meshes from ../shared/meshes added to a catalog that already has a trained tiny detector,
through the ``new-sku-dataset`` flow (real Prefect, pyrender, torchvision): each new SKU appears in the
asked share of images and the extended detector knows old and new classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from randomize_helpers import RETAIL, make_catalog
from train_fixtures import tiny_train_config

from flows.new_sku import extension_available, run_new_sku
from flows.new_sku_params import NewSkuParams
from synth.dataset import render_dataset
from synth.paths import shared_root
from synth.sku_dataset import config_data, measure_share

SMALL = {
    "image.width": 128,
    "image.height": 96,
    "output.shard_size": 4,
    "output.write_depth": False,
    "camera.distance": [0.35, 0.7],
    "objects.count": [3, 6],
    "distractors.count": [0, 1],
}
MESHES = ("meshes/hope/ketchup/textured.obj", "meshes/hope/butter/butter.obj")


def _base_detector(tmp_path, catalog) -> str:
    """A tiny Mask R-CNN trained for a few steps on the catalog as it was before the new SKUs."""
    from synth.randomize.settings import parse_render_config
    from train.config import TrainConfig
    from train.engine import train

    data = config_data("configs/retail_table.yaml", {**SMALL, "catalog.root": str(catalog)})
    render_dataset(parse_render_config(data, "base"), 6, tmp_path / "base-data", workers=2, progress=False)
    run = train(TrainConfig(**tiny_train_config(tmp_path / "base-data", tmp_path / "base-train", steps=2)))
    return str(run / "checkpoints" / "last.pt")


@pytest.mark.slow
def test_new_sku_flow_end_to_end(tmp_path):
    meshes = [shared_root() / m for m in MESHES]
    if not all(m.is_file() for m in meshes):
        pytest.skip(f"meshes not found under {shared_root() / 'meshes'}")
    torch.set_num_threads(1)
    catalog = make_catalog(tmp_path / "cat", RETAIL).root
    base = _base_detector(tmp_path, catalog) if extension_available() else None
    params = NewSkuParams(
        meshes=[str(m) for m in meshes],
        names=["Ketchup", "Butter"],
        catalog=str(catalog),
        images=8,
        share=0.75,
        layout="table",
        overrides=SMALL,
        out=str(tmp_path / "new"),
        base_checkpoint=base,
        steps=2,
        batch_size=2,
        device="cpu",
    )
    summary = run_new_sku(params)
    assert summary["share_met"], summary["share"]
    shares = measure_share(summary["annotations"], ["ketchup", "butter"])
    assert min(shares.values()) >= 0.75
    if base is None:
        pytest.skip("train.extend is not available: dataset part checked, extension skipped")
    ext = summary["extension"]
    assert set(ext["classes"]["new"]) == {"ketchup", "butter"}
    assert set(ext["classes"]["old"]) >= {"tea", "soda"}
    for key in ("old_class_ap_before", "old_class_ap_after", "new_class_ap"):
        assert ext[key] is not None and set(ext[key]) == {"AP", "AP50"}, (key, ext[key])

    again = run_new_sku(params.model_copy(update={"base_checkpoint": None}))  # resume: nothing re-rendered
    assert again["annotations"] == summary["annotations"]
    manifest = json.loads((Path(again["annotations"]).parent / "manifest.json").read_text())
    assert manifest["timings"]["last_run"]["shards_rendered"] == 0
