"""train.fourier: FDA's amplitude swap against hand-checkable spectra, and a training run that uses it."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import make_image_folder, make_shapes_coco, read_log, tiny_train_config

from train.config import FourierConfig, TrainConfig
from train.dann import DomainAdaptiveDetector
from train.engine import first_target_step, train, uses_target_images
from train.fourier import FourierStyle, low_frequency_mask, swap_amplitude


def _pair(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Two images whose swapped result stays inside [0, 1], so the clamp changes nothing."""
    g = torch.Generator().manual_seed(0)
    source = 0.5 + 0.1 * torch.rand(2, 3, size, size, generator=g)
    target = 0.3 + 0.05 * torch.rand(2, 3, size, size, generator=g)
    return source, target


def test_the_window_is_the_square_around_dc_of_an_unshifted_half_spectrum():
    mask = low_frequency_mask(8, 8, torch.tensor([0, 1, 2]))
    assert mask.shape == (3, 8, 5)
    assert mask[0].nonzero().tolist() == [[0, 0]]  # b = 0: the DC term alone
    # b = 1: rows 0, 1 and 7 (frequency -1), columns 0 and 1: (2b + 1) x (b + 1)
    assert mask[1].nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [7, 0], [7, 1]]
    assert int(mask[2].sum()) == 5 * 3


def test_a_zero_window_gives_each_channel_the_target_mean_and_keeps_the_rest():
    source, target = _pair()
    out = swap_amplitude(source, target, torch.tensor([0, 0]))
    # the DC amplitude of a positive image is its sum and its phase is 0: the mean is swapped, exactly
    assert torch.allclose(out.mean(dim=(2, 3)), target.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(
        out - out.mean(dim=(2, 3), keepdim=True), source - source.mean((2, 3), True), atol=1e-6
    )


def test_low_frequencies_take_the_target_amplitude_and_the_phase_stays_the_source_one():
    source, target = _pair()
    half = torch.tensor([1, 3])
    out = swap_amplitude(source, target, half)
    fo, fs, ft = (torch.fft.rfft2(x) for x in (out, source, target))
    for i in range(2):
        inside = low_frequency_mask(16, 16, half[i : i + 1])[0]
        assert torch.allclose(fo[i].abs()[:, inside], ft[i].abs()[:, inside], atol=1e-4)
        assert torch.allclose(fo[i][:, ~inside], fs[i][:, ~inside], atol=1e-4)
        assert torch.allclose(fo[i].angle()[:, inside], fs[i].angle()[:, inside], atol=1e-4)


def test_restyling_draws_images_by_probability_and_checks_sizes():
    source, target = _pair()
    never = FourierStyle(FourierConfig(enabled=True, probability=0.0))
    assert not never.active
    always = FourierStyle(FourierConfig(enabled=True, probability=1.0, beta=(0.0, 0.0)))
    out = always(source, target[:1])  # a smaller target batch is cycled
    assert torch.allclose(out.mean(dim=(2, 3)), target[:1].mean(dim=(2, 3)).expand(2, 3), atol=1e-6)
    torch.manual_seed(0)
    half = FourierStyle(FourierConfig(enabled=True, probability=0.5))(source.repeat(8, 1, 1, 1), target)
    changed = (half - source.repeat(8, 1, 1, 1)).flatten(1).abs().amax(dim=1) > 1e-3
    assert 0 < int(changed.sum()) < 16
    with pytest.raises(ValueError, match="letterboxed to the same size"):
        always(source, target[..., :8, :8])
    with pytest.raises(ValueError, match="beta must be"):
        FourierConfig(beta=(0.2, 0.1))


def test_training_with_fda_alone_restyles_every_step_and_never_shows_the_photos(tmp_path, monkeypatch):
    data = make_shapes_coco(tmp_path / "synthetic", n_images=8, size=64, seed=0)
    photos = make_image_folder(tmp_path / "real_photos", n_images=3, size=80, seed=4)
    with pytest.raises(ValueError, match="fda.enabled needs target_images"):
        TrainConfig(**tiny_train_config(data, tmp_path / "run", fda={"enabled": True}))
    cfg = TrainConfig(
        **tiny_train_config(
            data,
            tmp_path / "run",
            steps=3,
            target_images=str(photos),
            fda={"enabled": True, "probability": 1.0},
            augment={"enabled": True, "strength": 0.3, "ops": ["flip", "color"]},
        )
    )
    assert uses_target_images(cfg) and first_target_step(cfg) == 0
    restyled, seen = [], []
    real_call = FourierStyle.__call__
    monkeypatch.setattr(
        FourierStyle, "__call__", lambda self, a, b: restyled.append(b.shape) or real_call(self, a, b)
    )
    real_forward = DomainAdaptiveDetector.forward
    monkeypatch.setattr(
        DomainAdaptiveDetector,
        "forward",
        lambda self, images, targets, target_images=None, *a, **k: (
            seen.append(target_images) or real_forward(self, images, targets, target_images, *a, **k)
        ),
    )
    rows = read_log(train(cfg))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert restyled == [(2, 3, 64, 64)] * 3  # a target batch every step, letterboxed to the training size
    assert seen == [None] * 3  # the detector trains on the restyled renders only
    assert all(float(r["loss"]) > 0 and r["domain_acc"] == "" for r in rows)
