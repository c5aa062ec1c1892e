"""train.augment: kornia domain randomization keeps boxes and masks consistent with the pixels."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch

from train.augment import DomainRandomizer
from train.config import AugmentConfig
from train.data import masks_to_boxes


def _batch(b: int = 4, size: int = 64):
    """Bright rectangles on black: the image itself shows where each object went."""
    images = torch.zeros((b, 3, size, size))
    targets = []
    for i in range(b):
        masks = torch.zeros((2, size, size), dtype=torch.uint8)
        boxes = []
        for k, (x, y, w, h) in enumerate([(6 + i, 8, 20, 12), (34, 30 + i, 14, 22)]):
            masks[k, y : y + h, x : x + w] = 1
            images[i, k, y : y + h, x : x + w] = 1.0  # object k painted in channel k
            boxes.append([x, y, x + w, y + h])
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor([1, 2]),
                "masks": masks,
            }
        )
    return images, targets


def test_flip_moves_boxes_with_masks_exactly():
    torch.manual_seed(0)
    aug = DomainRandomizer(AugmentConfig(strength=1.0, ops=["flip"]), 64)
    aug.geometric = K.AugmentationSequential(K.RandomHorizontalFlip(p=1.0), data_keys=["input"])
    images, targets = _batch()
    out_images, out = aug(images, targets)
    for t_in, t_out, img in zip(targets, out, out_images, strict=True):
        x1, y1, x2, y2 = t_in["boxes"].unbind(-1)
        assert torch.equal(t_out["boxes"], torch.stack([64 - x2, y1, 64 - x1, y2], -1))
        assert torch.equal(masks_to_boxes(t_out["masks"]), t_out["boxes"])
        for k in range(2):  # the painted pixels moved exactly like the mask
            assert torch.equal((img[k] > 0.5).to(torch.uint8), t_out["masks"][k])
    # box-only path (no masks): the transform matrix moves boxes the same way
    torch.manual_seed(0)
    box_only = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    _, out2 = aug(images, box_only)
    for a, b in zip(out, out2, strict=True):
        assert torch.equal(a["boxes"], b["boxes"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_and_perspective_keep_box_equal_to_mask_box(seed):
    torch.manual_seed(seed)
    aug = DomainRandomizer(AugmentConfig(strength=1.0, ops=["flip", "affine", "perspective"]), 64)
    images, targets = _batch()
    out_images, out = aug(images, targets)
    moved = 0
    for t_in, t_out, img in zip(targets, out, out_images, strict=True):
        assert torch.equal(masks_to_boxes(t_out["masks"]), t_out["boxes"])  # box == mask's tight box
        assert len(t_out["labels"]) == len(t_out["masks"]) == len(t_out["boxes"])
        for k, lab in enumerate(t_out["labels"].tolist()):
            painted = img[lab - 1] > 0.5  # object k was painted in channel (label - 1)
            mask = t_out["masks"][k].bool()
            # warped pixels and warped mask agree except along the anti-aliased border
            iou = (painted & mask).sum() / (painted | mask).sum().clamp(min=1)
            assert iou > 0.8
        moved += int(not torch.equal(t_out["boxes"], t_in["boxes"][: len(t_out["boxes"])]))
    assert moved >= 2  # strength 1 really transforms


def test_box_only_transform_matches_mask_box_for_scale_and_shift():
    """Without rotation, kornia's bbox key (box-only sets) moves a box onto the warped mask's tight box
    (the mask path's box) within a pixel, given the same random parameters."""
    aug = DomainRandomizer(AugmentConfig(strength=1.0, ops=["affine", "flip"]), 64)
    aug.geometric = K.AugmentationSequential(
        K.RandomAffine(degrees=0.0, translate=(0.1, 0.1), scale=(0.8, 1.2), p=1.0),
        K.RandomHorizontalFlip(p=0.5),
        data_keys=["input"],
    )
    images, targets = _batch()
    torch.manual_seed(3)
    _, with_masks = aug(images, targets)
    torch.manual_seed(3)
    _, box_only = aug(images, [{k: v for k, v in t.items() if k != "masks"} for t in targets])
    for a, b in zip(with_masks, box_only, strict=True):
        assert a["boxes"].shape == b["boxes"].shape and len(a["boxes"]) == 2
        assert (a["boxes"] - b["boxes"]).abs().max() <= 1.0


def test_photometric_changes_pixels_not_labels_and_strength_zero_is_identity():
    torch.manual_seed(0)
    images, targets = _batch()
    photo = DomainRandomizer(
        AugmentConfig(strength=1.0, ops=["color", "blur", "noise", "jpeg", "erasing", "channel_shuffle"]), 64
    )
    out_images, out = photo(images.clone(), targets)
    assert not torch.equal(out_images, images)
    assert out_images.min() >= 0 and out_images.max() <= 1
    for a, b in zip(targets, out, strict=True):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["masks"], b["masks"])
    off = DomainRandomizer(AugmentConfig(strength=0.0), 64)
    assert not off.active
    same, out0 = off(images.clone(), targets)
    assert torch.equal(same, images) and torch.equal(out0[0]["boxes"], targets[0]["boxes"])


def test_objects_pushed_out_of_frame_are_dropped_and_run_is_seeded():
    aug = DomainRandomizer(AugmentConfig(strength=1.0, ops=["affine"]), 64)
    aug.geometric = K.AugmentationSequential(
        K.RandomAffine(degrees=0.0, translate=(0.9, 0.9), p=1.0), data_keys=["input"]
    )
    images, targets = _batch(8)
    torch.manual_seed(5)
    _, a = aug(images, targets)
    assert sum(len(t["labels"]) for t in a) < 16  # some objects left the image
    for t in a:
        assert ((t["boxes"][:, 2:] - t["boxes"][:, :2]) >= 1).all()
        assert (t["masks"].flatten(1).sum(1) >= 4).all()
    torch.manual_seed(5)
    _, b = aug(images, targets)
    assert all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_noise_is_drawn_where_the_images_are(device):
    """A full image of normals per image was drawn on the CPU and copied over: half a GPU step."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    torch.manual_seed(0)
    images, targets = _batch()
    images = images.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    aug = DomainRandomizer(AugmentConfig(strength=1.0, ops=["noise"]), 64)
    noise = aug.photometric[0]
    noise.p = 1.0  # every image gets noise
    out, _ = aug(images.clone(), targets)
    drawn = noise._params["gaussian_noise"]
    assert drawn.device.type == device and drawn.shape == images.shape
    assert out.device.type == device and 0 < (out - images).abs().mean() < 0.1
    torch.manual_seed(0)  # seeded like every other draw
    aug2 = DomainRandomizer(AugmentConfig(strength=1.0, ops=["noise"]), 64)
    aug2.photometric[0].p = 1.0
    assert torch.equal(aug2(images.clone(), targets)[0], out)
