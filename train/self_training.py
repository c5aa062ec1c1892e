"""Self-training on the unlabelled target photos with a mean teacher (Tarvainen & Valpola 2017), the
pseudo-label half of Adaptive Teacher (Li et al. 2022), whose other half is DANN (train.dann).

After a burn-in on the labelled source data alone, a teacher is copied from the detector and from then on
follows it as an exponential moving average of its weights. Every step the teacher looks at the target
batch as it is (no randomization) and its confident detections become the labels the detector learns from
on the same photos, randomized like the source batch (boxes warped with them). The averaged teacher is
steadier than the detector it follows, so its labels improve as training goes on instead of feeding the
detector its own latest mistakes. With ``ignore_below`` the teacher's unsure detections (scores in
[ignore_below, threshold)) become don't-care boxes (train.ignore_regions) rather than background.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from train.ignore_regions import IGNORE_LABEL


class MeanTeacher:
    """An EMA copy of a detector that labels target images; ``state_dict`` round-trips through checkpoints."""

    def __init__(
        self,
        detector: nn.Module,
        *,
        ema: float,
        threshold: float,
        max_per_image: int,
        ignore_below: float | None = None,
    ):
        self.model = copy.deepcopy(detector).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.ema = ema
        self.threshold = threshold
        self.max_per_image = max_per_image
        self.ignore_below = ignore_below

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """teacher = ema * teacher + (1 - ema) * student, for the weights and the floating-point buffers
        (BatchNorm's running statistics) alike; integer buffers (batch counters) are copied. Statistics
        copied from the student would normalise the slow teacher's weights with the fast student's: at EMA
        0.9996 that silenced the teacher within 100 steps (no detection left above its threshold)."""
        t_params = dict(self.model.named_parameters())
        for name, p in student.named_parameters():
            t_params[name].lerp_(p.detach(), 1.0 - self.ema)
        t_buffers = dict(self.model.named_buffers())
        for name, b in student.named_buffers():
            if b.is_floating_point():
                t_buffers[name].lerp_(b, 1.0 - self.ema)
            else:
                t_buffers[name].copy_(b)

    @torch.no_grad()
    def pseudo_labels(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The teacher's detections scoring at least ``threshold`` on each image, as training targets
        (boxes, labels and, for Mask R-CNN, binary masks). An image without any gets empty targets, from which
        torchvision's losses learn background at most (SSD's hard-negative mining takes none). With
        ``ignore_below``, detections scoring in [ignore_below, threshold) follow as don't-care boxes (label
        ``IGNORE_LABEL``; SSD only, see train.ignore_regions)."""
        self.model.eval()
        outputs = self.model(list(images))
        lowest = self.threshold if self.ignore_below is None else self.ignore_below
        targets = []
        for out in outputs:
            keep = (out["scores"] >= lowest).nonzero().flatten()[: self.max_per_image]
            boxes = out["boxes"][keep].float()
            wide = (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
            keep, boxes = keep[wide], boxes[wide]
            labels = out["labels"][keep].to(torch.int64)
            labels[out["scores"][keep] < self.threshold] = IGNORE_LABEL
            t = {"boxes": boxes, "labels": labels}
            if "masks" in out:
                t["masks"] = (out["masks"][keep, 0] > 0.5).to(torch.uint8)
            targets.append(t)
        return targets

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.contiguous() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


def pseudo_box_count(targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Mean pseudo-labelled boxes per image, don't-care boxes not counted (logged: a collapse to 0 or a flood
    shows here first)."""
    n = sum(int((t["labels"] != IGNORE_LABEL).sum()) for t in targets)
    return torch.tensor(n / max(1, len(targets)), dtype=torch.float32)
