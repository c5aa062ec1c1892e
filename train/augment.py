"""Train-time domain randomization with kornia: batched, on the training device, labels kept consistent.

Two stages. The geometric stage (flip, affine, perspective) warps the images and, when the set has
masks, every instance mask with the same per-sample parameters; each box is then recomputed as the
tight box of its warped mask, so box and mask can never disagree (a rotated box's corners would
overshoot the object). Box-only sets go through kornia's ``bbox_xyxy`` key: the enclosing box of the
moved corners. The photometric stage (colour jitter, channel shuffle, blur, noise, JPEG
degradation, random erasing) changes pixels only: an erased patch occludes an object but the label
stays, as for a real occluder.

``strength`` in [0, 1] scales every range and probability linearly, so one number tunes how far the
synthetic images are pushed; the per-op table below is the value at strength 1.
"""

from __future__ import annotations

import math

import kornia.augmentation as K
import torch
from torch import nn

from train.config import AugmentConfig
from train.data import masks_to_boxes

GEOMETRIC_OPS = ("flip", "affine", "perspective")
PHOTOMETRIC_OPS = ("color", "channel_shuffle", "blur", "noise", "jpeg", "erasing")


def _geometric(ops: set[str], s: float) -> list[nn.Module]:
    out: list[nn.Module] = []
    if "flip" in ops:
        out.append(K.RandomHorizontalFlip(p=0.5))
    if "affine" in ops:
        out.append(
            K.RandomAffine(
                degrees=20.0 * s,
                translate=(0.15 * s, 0.15 * s),
                scale=(1 - 0.3 * s, 1 + 0.3 * s),
                shear=8.0 * s,
                p=0.8 * s,
            )
        )
    if "perspective" in ops:
        out.append(K.RandomPerspective(distortion_scale=0.4 * s, p=0.5 * s))
    return out


def _photometric(ops: set[str], s: float, image_size: int) -> list[nn.Module]:
    out: list[nn.Module] = []
    if "color" in ops:
        out.append(
            K.ColorJitter(brightness=0.5 * s, contrast=0.5 * s, saturation=0.6 * s, hue=0.08 * s, p=0.9 * s)
        )
    if "channel_shuffle" in ops:
        out.append(K.RandomChannelShuffle(p=0.2 * s))
    if "blur" in ops:
        sigma_max = 0.1 + 2.4 * s * min(1.0, image_size / 320)
        kernel = max(3, 2 * math.ceil(2 * sigma_max) + 1)
        out.append(K.RandomGaussianBlur(kernel_size=(kernel, kernel), sigma=(0.1, sigma_max), p=0.4 * s))
    if "noise" in ops:
        out.append(K.RandomGaussianNoise(mean=0.0, std=0.06 * s, p=0.4 * s))
    if "jpeg" in ops:
        out.append(K.RandomJPEG(jpeg_quality=(100.0 - 80.0 * s, 95.0), p=0.4 * s))
    if "erasing" in ops:
        out.append(K.RandomErasing(scale=(0.02, 0.02 + 0.13 * s), ratio=(0.3, 3.3), value=0.0, p=0.4 * s))
    return out


class DomainRandomizer(nn.Module):
    """Randomizes a batch [B, 3, H, W] in [0, 1] and its targets (boxes, labels, optional masks)."""

    def __init__(self, cfg: AugmentConfig, image_size: int):
        super().__init__()
        self.cfg = cfg
        s = cfg.strength if cfg.enabled else 0.0
        ops = set(cfg.ops)
        geo = _geometric(ops, s) if s > 0 else []
        photo = _photometric(ops, s, image_size) if s > 0 else []
        self.geometric = K.AugmentationSequential(*geo, data_keys=["input"]) if geo else None
        self.photometric = K.AugmentationSequential(*photo, data_keys=["input"]) if photo else None
        # kornia draws random parameters on the CPU, then copies them to the images' device. That is
        # nothing for a few numbers per image, but the noise op draws a full image of normals per image:
        # batch 32 at 320 px took 170 ms of a 320 ms SSDlite step on an H200, as much as the rest of the
        # step. It draws where the images are (a CUDA generator, seeded like the rest by torch.manual_seed).
        self._noise = [m for m in photo if isinstance(m, K.RandomGaussianNoise)]
        self._rng_device: torch.device | None = None

    def _draw_noise_on(self, device: torch.device) -> None:
        if device != self._rng_device:
            for m in self._noise:
                m.set_rng_device_and_dtype(device, torch.float32)
            self._rng_device = device

    @property
    def active(self) -> bool:
        return self.geometric is not None or self.photometric is not None

    def describe(self) -> list[str]:
        mods = []
        for seq in (self.geometric, self.photometric):
            if seq is not None:
                mods += [type(m).__name__ for m in seq.children()]
        return mods

    @torch.no_grad()
    def images_only(self, images: torch.Tensor) -> torch.Tensor:
        """The same randomization for unlabelled (target-domain) images."""
        if self.geometric is not None:
            images = self.geometric(images)
        if self.photometric is not None:
            self._draw_noise_on(images.device)
            images = self.photometric(images)
        return images.clamp_(0.0, 1.0)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        targets = [dict(t) for t in targets]
        if self.geometric is not None:
            if all("masks" in t for t in targets):
                images, targets = self._warp_with_masks(images, targets)
            else:
                images, targets = self._warp_boxes(images, targets)
        if self.photometric is not None:
            self._draw_noise_on(images.device)
            images = self.photometric(images)
        return images.clamp_(0.0, 1.0), targets

    def _warp_with_masks(self, images: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        b, _, h, w = images.shape
        n_max = max(int(t["masks"].shape[0]) for t in targets)
        stacked = torch.zeros((b, n_max, h, w), dtype=images.dtype, device=images.device)
        for i, t in enumerate(targets):
            n = t["masks"].shape[0]
            if n:
                stacked[i, :n] = t["masks"].to(images.device, images.dtype)
        images, warped = self.geometric(images, stacked, data_keys=["input", "mask"])
        for i, t in enumerate(targets):
            n = t["masks"].shape[0]
            masks = (warped[i, :n] > 0.5).to(torch.uint8)
            keep = masks.flatten(1).sum(dim=1) >= self.cfg.min_visible_px
            t["masks"] = masks[keep]
            t["boxes"] = masks_to_boxes(t["masks"]).to(t["boxes"].dtype)
            t["labels"] = t["labels"][keep.to(t["labels"].device)]
        return images, targets

    def _warp_boxes(self, images: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        """Boxes through kornia's bbox key. kornia puts pixel i at coordinate i (a flip maps x to W - 1 - x),
        our boxes are pixel edges (pixel i spans [i, i + 1)): shifted by half a pixel there and back, the
        result equals the corners moved by the transform matrix to within 2e-6 px (measured), and a flipped
        [0, 10) becomes [W - 10, W), where unshifted it would be one pixel off."""
        h, w = images.shape[-2:]
        shifted = [t["boxes"].to(images.device, images.dtype) - 0.5 for t in targets]
        images, moved = self.geometric(images, shifted, data_keys=["input", "bbox_xyxy"])
        for t, boxes in zip(targets, moved, strict=True):
            boxes = (boxes + 0.5).to(t["boxes"].device, t["boxes"].dtype)
            clipped = boxes.clone()
            clipped[:, 0::2] = clipped[:, 0::2].clamp(0, w)
            clipped[:, 1::2] = clipped[:, 1::2].clamp(0, h)
            keep = ((clipped[:, 2:] - clipped[:, :2]) >= 1).all(dim=1)
            keep &= _area(clipped) >= torch.clamp(0.1 * _area(boxes), min=float(self.cfg.min_visible_px))
            t["boxes"] = clipped[keep]
            t["labels"] = t["labels"][keep.to(t["labels"].device)]
        return images, targets


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
