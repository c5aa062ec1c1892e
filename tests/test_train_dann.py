"""train.dann: gradient reversal, the lambda schedule, domain losses, and a DANN training run."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from train_fixtures import make_image_folder, make_shapes_coco, read_log, tiny_train_config

from synth.errors import ConfigError
from train.config import DannConfig, TrainConfig
from train.dann import ImageDomainHead, domain_loss, ganin_lambda, grad_reverse
from train.engine import TrainingError, train
from train.evaluate import load_checkpoint


@pytest.mark.parametrize("lambd", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_flips_sign_and_scales_by_lambda(lambd):
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = grad_reverse(x, lambd)
    assert torch.equal(y, x)  # identity forward
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -lambd * w)
    # the same graph without reversal gives +w: the sign really flips
    x2 = x.detach().clone().requires_grad_(True)
    (x2 * w).sum().backward()
    assert torch.allclose(x.grad, -lambd * x2.grad)


def test_reversal_only_affects_what_is_below_it():
    feat = torch.randn(5, requires_grad=True)
    head_w = torch.randn(5, requires_grad=True)
    out = (grad_reverse(feat, 0.5) * head_w).sum()
    out.backward()
    assert torch.allclose(head_w.grad, feat.detach())  # the classifier learns normally
    assert torch.allclose(feat.grad, -0.5 * head_w.detach())  # the features get the reversed gradient


def test_ganin_schedule():
    assert ganin_lambda(0.0) == 0.0
    assert ganin_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert ganin_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    values = [ganin_lambda(p / 10) for p in range(11)]
    assert values == sorted(values) and values[-1] < 1.0
    assert ganin_lambda(1.7) == ganin_lambda(1.0)  # clamped


def test_domain_loss_and_accuracy():
    src = [torch.full((2, 10), -3.0), torch.full((2, 4), -1.0)]  # confidently "source"
    tgt = [torch.full((2, 10), 3.0), torch.full((2, 4), 1.0)]
    loss, acc = domain_loss(src, tgt)
    assert acc.item() == 1.0 and loss.item() < 0.35
    loss_wrong, acc_wrong = domain_loss(tgt, src)
    assert acc_wrong.item() == 0.0 and loss_wrong.item() > loss.item()
    chance, _ = domain_loss([torch.zeros(2, 5)], [torch.zeros(2, 5)])
    assert chance.item() == pytest.approx(math.log(2), rel=1e-5)


@pytest.mark.parametrize("levels", [None, [0]])
def test_dann_training_runs_and_logs_domain_accuracy(tmp_path, levels):
    data = make_shapes_coco(tmp_path / "synthetic", n_images=8, size=64, seed=0)
    photos = make_image_folder(tmp_path / "real_photos", n_images=4, size=80, seed=9)
    cfg = TrainConfig(
        **tiny_train_config(
            data,
            tmp_path / "run",
            steps=4,
            target_images=str(photos),
            dann={"enabled": True, "instance_level": True, "weight": 0.5, "levels": levels},
            augment={"enabled": True, "strength": 0.3, "ops": ["flip", "color"]},
        )
    )
    run = train(cfg)
    rows = read_log(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert 0.0 <= float(r["domain_acc"]) <= 1.0
        assert 0.0 <= float(r["domain_acc_instance"]) <= 1.0
        assert float(r["loss_domain_image"]) > 0 and float(r["loss_domain_instance"]) > 0
    lambdas = [float(r["lambda"]) for r in rows]
    assert lambdas[0] == 0.0 and lambdas == sorted(lambdas) and lambdas[-1] > 0.9
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert set(ckpt["domain_heads"]) == {"image", "instance"}
    assert not any(
        k.startswith(("image_head", "instance_head")) for k in ckpt["model"]
    )  # detector stays plain
    other_levels = {**cfg.dann.model_dump(), "levels": [1] if levels else [0]}
    with pytest.raises(TrainingError, match="DANN settings differ"):
        train(cfg.model_copy(update={"steps": 5, "resume": True, "dann": DannConfig(**other_levels)}))


def test_image_head_on_chosen_levels_reverses_only_their_gradient():
    feats = [torch.randn(2, c, s, s, requires_grad=True) for c, s in [(8, 6), (4, 3), (6, 1)]]
    head = ImageDomainHead([8, 4, 6], hidden=8, levels=[0, 2])
    logits = head(feats, 1.0)
    assert [tuple(t.shape) for t in logits] == [(2, 36), (2, 1)]
    sum(t.sum() for t in logits).backward()
    assert feats[0].grad.abs().sum() > 0 and feats[2].grad.abs().sum() > 0
    assert feats[1].grad is None  # a level without a classifier is left alone
    with pytest.raises(ValueError, match="do not fit a backbone with 3 levels"):
        ImageDomainHead([8, 4, 6], levels=[3])


@pytest.mark.parametrize("levels", [[1, 1], [-1], []])
def test_dann_levels_must_be_distinct_indices(levels, tmp_path):
    with pytest.raises(ValidationError, match="levels"):
        TrainConfig(**tiny_train_config(tmp_path, tmp_path / "run", dann={"levels": levels}))


def test_dann_levels_beyond_the_backbone_stop_with_one_line(tmp_path):
    data = make_shapes_coco(tmp_path / "synthetic", n_images=4, size=64, seed=0)
    photos = make_image_folder(tmp_path / "real_photos", n_images=2, size=80, seed=9)
    cfg = TrainConfig(
        **tiny_train_config(
            data, tmp_path / "run", target_images=str(photos), dann={"enabled": True, "levels": [0, 9]}
        )
    )
    with pytest.raises(ConfigError, match=r"dann.levels.*\[0, 9\] does not fit .* feature levels"):
        train(cfg)
