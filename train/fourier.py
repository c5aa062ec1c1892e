"""Fourier domain adaptation (FDA, Yang & Soatto 2020): a rendered image takes the low-frequency amplitude
spectrum of an unlabelled target photo and keeps its own phase.

The low frequencies of the amplitude carry what a renderer gets wrong over the whole frame (overall colour
cast, brightness, contrast, illumination gradients, the camera's tone curve); the phase carries the edges and
shapes the labels belong to, so boxes and masks stay exact. Unlike colour jitter, which pushes renders in
random directions, this pulls them towards the photos the detector will see, at no training cost beyond two
FFTs per image. Random in two ways, like the rest of train-time randomization: each image is restyled with
``probability``, and its window half-width is drawn from ``beta`` (a share of the shorter image side).
"""

from __future__ import annotations

import torch

from train.config import FourierConfig


def low_frequency_mask(height: int, width: int, half_width: torch.Tensor) -> torch.Tensor:
    """[B, H, W // 2 + 1] booleans: the (2b + 1)-wide square around DC of an unshifted ``rfft2`` spectrum,
    b per image (an integer tensor [B]; 0 keeps the DC term only)."""
    fy = torch.fft.fftfreq(height, d=1.0 / height, device=half_width.device).abs()  # 0, 1, .., H/2, .., 1
    fx = torch.arange(width // 2 + 1, device=half_width.device, dtype=fy.dtype)
    b = half_width.to(fy.dtype).view(-1, 1, 1)
    return (fy.view(1, -1, 1) <= b) & (fx.view(1, 1, -1) <= b)


def swap_amplitude(source: torch.Tensor, target: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
    """``source`` [B, C, H, W] with the amplitude of ``target`` (same shape) inside each image's window."""
    h, w = source.shape[-2:]
    fs = torch.fft.rfft2(source.float())
    ft = torch.fft.rfft2(target.float())
    window = low_frequency_mask(h, w, half_width).unsqueeze(1)
    amplitude = torch.where(window, ft.abs(), fs.abs())
    out = torch.fft.irfft2(torch.polar(amplitude, fs.angle()), s=(h, w))
    return out.clamp_(0.0, 1.0).to(source.dtype)


class FourierStyle:
    """Restyles a source batch in [0, 1] with the photos of a target batch (cycled when it is smaller)."""

    def __init__(self, cfg: FourierConfig):
        self.cfg = cfg

    @property
    def active(self) -> bool:
        return self.cfg.enabled and self.cfg.probability > 0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, target_images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        if target_images.shape[-2:] != (h, w):
            raise ValueError(
                f"target photos are {tuple(target_images.shape[-2:])} px, the training images {(h, w)}: "
                "both must be letterboxed to the same size"
            )
        chosen = torch.rand(b) < self.cfg.probability
        if not chosen.any():
            return images
        lo, hi = self.cfg.beta
        beta = lo + (hi - lo) * torch.rand(int(chosen.sum()))
        half_width = torch.floor(beta * min(h, w)).long().to(images.device)
        idx = chosen.nonzero().flatten().to(images.device)
        out = images.clone()
        out[idx] = swap_amplitude(images[idx], target_images[idx % target_images.shape[0]], half_width)
        return out
