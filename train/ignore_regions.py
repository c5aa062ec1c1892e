"""Don't-care regions for SSD: a target box labelled 0 marks pixels that are neither object nor background.

Self-training labels a target photo with its teacher's confident detections (train.self_training). To
plain SSD an object the teacher saw but was unsure of is background like any other pixel, and since its
anchors have the highest background loss, hard-negative mining picks them first: the student is pushed
hardest exactly where the teacher hesitated. Marked as a don't-care box instead (label 0, which is SSD's
background and so no class's label), the anchors overlapping it at IoU >= ``IGNORE_IOU`` (RetinaNet's
ignore band) are neither matched nor mined. Targets without such boxes train exactly as in torchvision.
"""

from __future__ import annotations

import torch
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

IGNORE_LABEL = 0
IGNORE_IOU = 0.4


class IgnoreRegionSSD(SSD):
    """torchvision's SSD whose training targets may carry don't-care boxes (label ``IGNORE_LABEL``)."""

    def compute_loss(
        self,
        targets: list[dict[str, torch.Tensor]],
        head_outputs: dict[str, torch.Tensor],
        anchors: list[torch.Tensor],
        matched_idxs: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        if not any(bool((t["labels"] == IGNORE_LABEL).any()) for t in targets):
            return super().compute_loss(targets, head_outputs, anchors, matched_idxs)
        labelled, matched, ignored = [], [], []
        for t, anchors_per_image in zip(targets, anchors, strict=True):
            real = t["labels"] != IGNORE_LABEL
            boxes = t["boxes"][real]
            labelled.append({"boxes": boxes, "labels": t["labels"][real]})
            if boxes.numel() == 0:
                m = torch.full((anchors_per_image.size(0),), -1, dtype=torch.int64, device=boxes.device)
            else:
                m = self.proposal_matcher(box_iou(boxes, anchors_per_image))
            matched.append(m)
            unsure = t["boxes"][~real]
            if unsure.numel() == 0:
                ignored.append(torch.zeros_like(m, dtype=torch.bool))
            else:
                ignored.append((box_iou(unsure, anchors_per_image).amax(0) >= IGNORE_IOU) & (m < 0))
        cls_logits = head_outputs["cls_logits"]
        # A constant, certain background score: zero loss and zero gradient, so mining never takes these
        # anchors while any other background anchor is left.
        certain = torch.full_like(cls_logits, -1e4).detach()
        certain[..., 0] = 1e4
        cls_logits = torch.where(torch.stack(ignored)[..., None], certain, cls_logits)
        return super().compute_loss(labelled, dict(head_outputs, cls_logits=cls_logits), anchors, matched)
