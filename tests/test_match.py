"""Fitting a render config to photos: on a tiny rendered "photo" set taken from close by in dim light, a
config that starts far away and bright ends closer to it (real pyrender probe sets, scipy Wasserstein)."""

from __future__ import annotations

import numpy as np
import pytest
from mesh_fixtures import SHARED
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


def _letterboxed(rng, size: int, aspect: float | None, portrait: bool) -> np.ndarray:
    """A smooth random 'photo' of the given aspect padded to size x size with mid-grey bars (None: none)."""
    import cv2

    image = np.full((size, size, 3), 128, dtype=np.uint8)
    w = h = size
    if aspect is not None:
        w, h = (round(size * aspect), size) if portrait else (size, round(size * aspect))
    x0, y0 = (size - w) // 2, (size - h) // 2
    smooth = cv2.resize(
        rng.uniform(0, 255, (8, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    image[y0 : y0 + h, x0 : x0 + w] = np.clip(smooth, 0, 255).astype(np.uint8)
    return image


def test_letterbox_bars_are_measured_through_jpeg(tmp_path):
    import cv2

    from synth.match.letterbox import bars_of, measure_letterbox

    rng = np.random.default_rng(0)
    kinds = [(0.75, True)] * 6 + [(0.75, False)] * 6 + [(0.5625, False)] * 4 + [(None, False)] * 4
    paths = []
    for i, (aspect, portrait) in enumerate(kinds):
        paths.append(tmp_path / f"{i}.jpg")
        cv2.imwrite(str(paths[-1]), _letterboxed(rng, 224, aspect, portrait), [cv2.IMWRITE_JPEG_QUALITY, 85])
    bars = measure_letterbox(paths)
    assert bars["probability"] == 0.8 and bars["weights"] == [4, 12]
    assert bars["aspects"] == pytest.approx([0.5625, 0.75], abs=0.01)
    assert bars["portrait_probability"] == pytest.approx(6 / 16, abs=1e-3) and bars["fill"] == pytest.approx(
        0.5, abs=0.01
    )
    # a plain wall along one edge is not a bar, and a set without bars gives no section
    wall = _letterboxed(rng, 224, None, False)
    wall[:40] = 200
    assert bars_of(wall) is None
    assert measure_letterbox(paths[-4:]) is None
    parse_render_config({"layout": {"kind": "shelf"}, "letterbox": bars}, "fitted")  # a valid section


@pytest.mark.skipif(
    not (SHARED / "real/retail/freiburg_dev").is_dir(), reason="../shared/real/retail/freiburg_dev absent"
)
def test_freiburg_photos_are_letterboxed_as_the_retail_recipe_says():
    """The retail recipe's letterbox section is what the real photos measure."""
    from synth.match.letterbox import measure_letterbox
    from synth.match.stats import photo_set
    from synth.randomize.settings import load_render_config

    _, images = photo_set(SHARED / "real/retail/freiburg_dev")
    bars = measure_letterbox(images)
    recipe = load_render_config("configs/sim2real_retail.yaml").letterbox
    assert bars["probability"] == pytest.approx(recipe.probability, abs=0.02)
    assert bars["aspects"] == pytest.approx(recipe.aspects, abs=0.02)
    share = bars["weights"][0] / sum(bars["weights"])
    assert share == pytest.approx(recipe.weights[0] / sum(recipe.weights), abs=0.05)
    assert bars["fill"] == pytest.approx(recipe.fill, abs=0.01)
