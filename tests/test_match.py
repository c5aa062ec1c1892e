"""Fitting a render config to photos: on a tiny rendered "photo" set taken from close by in dim light, a
config that starts far away and bright ends closer to it (real pyrender probe sets, scipy Wasserstein)."""

from __future__ import annotations

import numpy as np
import pytest
from randomize_helpers import RETAIL, make_catalog

from synth.dataset import render_dataset
from synth.match import fit_config, write_fit
from synth.match.stats import distances, set_stats
from synth.randomize.settings import parse_render_config
from synth.sku_dataset import config_data

BASE = {
    "image.width": 96,
    "image.height": 96,
    "output.shard_size": 4,
    "output.write_depth": False,
    "objects.count": [2, 4],
    "distractors.count": [0, 1],
}


def _data(catalog, **extra) -> dict:
    return config_data("configs/retail_table.yaml", {**BASE, "catalog.root": str(catalog), **extra})


@pytest.mark.slow
def test_fit_brings_box_sizes_and_brightness_closer_to_the_photos(tmp_path):
    catalog = make_catalog(tmp_path / "cat", RETAIL).root
    real = _data(catalog, **{"camera.distance": [0.35, 0.45], "lighting.irradiance": [0.3, 0.5]})
    photos = tmp_path / "photos"
    render_dataset(parse_render_config(real, "real"), 12, photos, seed=7, workers=2, progress=False)

    start = _data(catalog, **{"camera.distance": [1.0, 1.3], "lighting.irradiance": [3.0, 4.0]})
    result = fit_config(start, photos, tmp_path / "work", probe_n=8, iterations=2, seed=0, workers=2)
    before, after = result.distance_before, result.distance_after
    assert after["rel_side"] < 0.6 * before["rel_side"], (before, after)
    assert after["brightness"] < before["brightness"], (before, after)
    assert max(result.data["camera"]["distance"]) < 1.0
    # the distances in the result are what the probe sets say
    assert distances(result.after, set_stats(photos))["rel_side"] == pytest.approx(after["rel_side"])

    files = write_fit(result, tmp_path / "fitted.yaml", config="start", photos=str(photos))
    fitted = parse_render_config(config_data(files["config"]), files["config"])
    assert fitted.camera.distance == tuple(result.data["camera"]["distance"])
    assert files["plot"].stat().st_size > 10_000
    header = [line for line in files["config"].read_text().splitlines() if line.startswith("#")]
    assert any("rel_side" in line for line in header)


def test_unlabelled_folder_gives_pixel_statistics_only(tmp_path):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.jpg"), (rng.uniform(0, 80, (48, 64, 3))).astype(np.uint8))
    stats = set_stats(folder)
    assert set(stats) == {"brightness", "contrast", "warmth"}
    assert np.all(stats["brightness"] < 80 / 255)
