"""train.engine: schedule, run directory, checkpoints + resume, SSD training, DDP on 2 CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from train_fixtures import make_shapes_coco, read_log, tiny_train_config

from synth.errors import ConfigError
from train.config import TrainConfig
from train.engine import lr_factor, train
from train.evaluate import evaluate, load_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_coco(tmp_path_factory.mktemp("shapes"), n_images=8, size=64, seed=0)


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, warmup=10, total=100, min_ratio=0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.001) and f[10] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:10], f[1:11], strict=True))  # warmup rises
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))  # cosine falls
    assert lr_factor(100, 10, 100, 0.01) == pytest.approx(0.01)
    assert lr_factor(5, warmup=50, total=5, min_ratio=0.0) <= 1.0  # warmup longer than the run is clipped


def test_run_directory_checkpoint_and_resume(tmp_path, shapes):
    out = tmp_path / "run"
    cfg = tiny_train_config(shapes, out, steps=2, checkpoint_every=1)
    run = train(TrainConfig(**cfg))
    for name in ("config.yaml", "provenance.json", "dataset_summary.json", "log.csv", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["name"] == "maskrcnn_mobilenet_v3_large_fpn" and saved["steps"] == 2
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ck["step"] == 2 and ck["class_names"] == ["box", "disc"] and "random init" in ck["weights_source"]

    with pytest.raises(ConfigError, match="already holds a training run"):
        train(TrainConfig(**cfg))
    # a crash after logging step 3 but before its checkpoint: resume must not duplicate that row
    with (run / "log.csv").open("a") as f:
        f.write("3,0.75,0.01,9.9" + "," * 18 + "\n")
    run = train(TrainConfig(**{**cfg, "steps": 4, "resume": True}))
    rows = read_log(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[2]["loss"]) != 9.9
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
    with pytest.raises(ConfigError, match="raise --steps"):
        train(TrainConfig(**{**cfg, "steps": 4, "resume": True}))
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(TrainConfig(**{**cfg, "out": str(tmp_path / "fresh"), "resume": True}))


def test_log_rows_interleave_validation_and_the_start_is_logged(tmp_path, shapes, caplog):
    """Validation between log steps gets its own row; the final validation one more row at the last step."""
    cfg = tiny_train_config(shapes, tmp_path / "run", steps=3, log_every=2, eval_every=1, val_fraction=0.3)
    with caplog.at_level("INFO", logger="train.engine"):
        run = train(TrainConfig(**cfg))
    assert "simreal train: maskrcnn_mobilenet_v3_large_fpn on 6 images, 2 classes (box, disc)" in caplog.text
    rows = read_log(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 3]
    assert [bool(r["loss"]) for r in rows] == [False, True, True, False]  # losses every log_every steps
    assert [bool(r["val_bbox_AP"]) for r in rows] == [True, True, False, True]  # not twice at the last step
    assert float(rows[1]["epoch"]) == pytest.approx(round(2 * 2 / 6, 3))


def test_maskrcnn_on_box_only_data_is_a_config_error(tmp_path):
    boxes_only = make_shapes_coco(tmp_path / "b", n_images=3, size=64, masks=False)
    with pytest.raises(ConfigError, match="needs instance masks"):
        train(TrainConfig(**tiny_train_config(boxes_only, tmp_path / "run")))


def test_ssdlite_trains_on_box_only_data_and_evaluates(tmp_path):
    data = make_shapes_coco(tmp_path / "b", n_images=6, size=96, masks=False, seed=2)
    cfg = tiny_train_config(
        data,
        tmp_path / "run",
        steps=3,
        model={"name": "ssdlite320_mobilenet_v3_large", "image_size": 96, "use_hub_cache": False},
        augment={"enabled": True, "strength": 0.5, "ops": ["flip", "affine", "color"]},
    )
    run = train(TrainConfig(**cfg))
    rows = read_log(run)
    assert len(rows) == 3 and all(
        np.isfinite(float(r["loss"])) and float(r["classification"]) > 0 for r in rows
    )
    m = evaluate(run / "checkpoints" / "last.pt", data, device="cpu")
    assert m["segm"] is None and "boxes only" in m["segm_skipped"]
    assert m["bbox"]["AP"] is not None and (run / "eval" / "b" / "predictions.json").is_file()


@pytest.mark.slow
def test_ssd300_vgg16_trains_a_few_steps(tmp_path):
    data = make_shapes_coco(tmp_path / "b", n_images=4, size=120, masks=False, seed=2)
    cfg = tiny_train_config(
        data,
        tmp_path / "run",
        steps=2,
        batch_size=1,
        model={"name": "ssd300_vgg16", "image_size": 300, "use_hub_cache": False},
    )
    rows = read_log(train(TrainConfig(**cfg)))
    assert len(rows) == 2 and all(np.isfinite(float(r["loss"])) for r in rows)


def _losses(run: Path) -> np.ndarray:
    return np.array([float(r["loss"]) for r in read_log(run)])


@pytest.mark.slow
def test_ddp_two_cpu_processes_matches_one_process_loss_curve(tmp_path, shapes):
    """2 processes x batch 1 (gloo) see the same global batches as 1 process x batch 2 (StepBatchSampler)."""
    steps = 16
    # GroupNorm: BatchNorm would see 1 image per process instead of 2, a different computation by design.
    common = {"steps": steps, "lr": 0.02, "warmup_steps": 2, "threads": 1, "model": {"norm": "group"}}
    single = train(TrainConfig(**tiny_train_config(shapes, tmp_path / "one", batch_size=2, **common)))
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_train_config(shapes, tmp_path / "two", batch_size=1, **common)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "flows.cli",
            "train",
            "--config",
            str(cfg_path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    prov = yaml.safe_load((tmp_path / "two" / "provenance.json").read_text())
    assert prov["world_size"] == 2
    one, two = _losses(single), _losses(tmp_path / "two")
    assert len(one) == len(two) == steps
    # Same shape: both fall by a similar factor and move together step by step. Not identical: each
    # process samples its own RPN/RoI minibatches. (Measured: correlation 0.92, mean gap 9%.)
    assert one[-3:].mean() < 0.75 * one[:3].mean() and two[-3:].mean() < 0.75 * two[:3].mean()
    assert np.corrcoef(one, two)[0, 1] > 0.7
    assert np.abs(one - two).mean() / one.mean() < 0.2
    assert torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)["step"] == steps


@pytest.mark.slow
def test_loader_workers_end_cleanly_inside_a_prefect_flow(tmp_path, shapes):
    """Loader workers (and a DANN target loader) under the train-variant flow, whose progress thread used to
    be inherited by forked workers: they exited with code 1 and DataLoader printed 'exited unexpectedly'."""
    cfg = tiny_train_config(shapes, tmp_path / "run", steps=3, workers=1, threads=1)
    cfg.update(dann={"enabled": True}, target_images=str(shapes / "images"))
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    code = (
        "import sys, yaml; from flows.env import prefect_defaults; prefect_defaults(); "
        "from flows.sim2real import train_variant; from train.config import TrainConfig; "
        f"train_variant(TrainConfig(**yaml.safe_load(open({str(cfg_path)!r}))))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "exited unexpectedly" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
