"""``simreal pretrain``: a detector trained on the project's renders, cached by what it depends on, that other
trainings start from (real render, real training, real Prefect, at toy size)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from randomize_helpers import RETAIL, make_catalog

from synth.errors import ConfigError


def _toy(tmp_path: Path, **kw):
    from flows.params import PretrainParams

    catalog = tmp_path / "catalog"
    if not catalog.exists():
        make_catalog(catalog, RETAIL)
    settings = dict(
        catalog=str(catalog),
        images=4,
        render_size=96,
        image_size=96,
        steps=2,
        batch_size=2,
        warmup_steps=0,
        workers=1,
        threads=1,
        device="cpu",
        cache=str(tmp_path / "cache"),
    )
    return PretrainParams(**{**settings, **kw})


def test_the_key_covers_recipe_catalog_and_settings_but_not_how_the_work_runs(tmp_path):
    from flows.pretrain import catalog_fingerprint, pretrain_key

    params = _toy(tmp_path)
    catalog = Path(params.catalog)
    digest = catalog_fingerprint(catalog)
    key = pretrain_key(params, digest)
    assert len(key) == 16 and key == pretrain_key(_toy(tmp_path), digest)
    how = {"workers": 2, "threads": 2, "device": "auto", "cache": str(tmp_path / "elsewhere")}
    assert pretrain_key(params.model_copy(update=how), digest) == key
    # A model's short name and its full name are one model, one cache entry; an unknown one is refused.
    assert pretrain_key(_toy(tmp_path, model="ssdlite"), digest) == key
    with pytest.raises(ValueError, match="unknown model"):
        _toy(tmp_path, model="yolo")
    for what in ({"steps": 3}, {"images": 5}, {"seed": 1}, {"image_size": 128}, {"lr": 2e-3}):
        assert pretrain_key(params.model_copy(update=what), digest) != key, what

    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(params.config_path().read_bytes() + b"\n# another recipe\n")
    assert pretrain_key(params.model_copy(update={"config": str(recipe)}), digest) != key

    # Caches derived from a mesh and previews do not change what is rendered; the mesh itself does.
    entry = next(p for p in sorted(catalog.iterdir()) if p.is_dir())
    mesh = next(entry.glob("*.glb"))
    (entry / f"{mesh.name}.prep.npz").write_bytes(b"derived")
    (entry / "thumbnail.png").write_bytes(b"preview")
    assert catalog_fingerprint(catalog) == digest
    mesh.write_bytes(mesh.read_bytes() + b"\0")
    assert catalog_fingerprint(catalog) != digest

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty"):
        catalog_fingerprint(tmp_path / "empty")
    with pytest.raises(ConfigError, match="recipe not found"):
        _toy(tmp_path, config=str(tmp_path / "nope.yaml")).config_path()


@pytest.mark.timeout(600)
def test_pretraining_runs_once_is_reused_and_starts_another_detector(tmp_path, monkeypatch):
    """Renders and trains for real, then the same settings (run differently) only read the record; the
    checkpoint initialises a one-class detector: every tensor but the class layer comes from it."""
    import torch

    from flows.env import prepare_local_prefect
    from flows.pretrain import RECORD, pretrain_detector
    from train.config import ModelConfig
    from train.models import build_model

    monkeypatch.setenv("SIMREAL_SHARED", str(tmp_path / "no-shared"))
    prepare_local_prefect()
    params = _toy(tmp_path)
    first = pretrain_detector(params)
    assert not first["reused"] and first["images"] == 4
    assert first["cost_s"] == pytest.approx(first["render_s"] + first["train_s"], abs=0.2)
    folder = Path(params.cache) / "pretrain" / first["key"]
    assert Path(first["checkpoint"]) == folder / "train" / "checkpoints" / "last.pt"
    assert (folder / RECORD).is_file() and (folder / "data" / "annotations.json").is_file()
    state = torch.load(first["checkpoint"], map_location="cpu", weights_only=True)
    assert state["step"] == 2

    t = time.perf_counter()
    again = pretrain_detector(params.model_copy(update={"workers": 2, "threads": 2}))
    assert again["reused"] and again["key"] == first["key"] and again["checkpoint"] == first["checkpoint"]
    assert time.perf_counter() - t < 60  # read, not rendered and trained again
    assert again["cost_s"] == first["cost_s"]  # what it cost when it was made

    cfg = ModelConfig(name="ssdlite320_mobilenet_v3_large", image_size=96, weights=first["checkpoint"])
    built = build_model(cfg, num_classes=1)
    loaded, total = (int(x) for x in built.weights_source.split(": ")[-1].split(" tensors")[0].split("/"))
    assert 0 < loaded < total
    own = built.model.state_dict()
    for name, value in state["model"].items():
        if "classification_head" in name:
            continue
        assert torch.equal(own[name], value), name

    # A record whose checkpoint has gone is not a cache hit.
    Path(first["checkpoint"]).unlink()
    from flows.pretrain import cached_record

    assert cached_record(folder) is None
