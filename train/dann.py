"""Adversarial domain adaptation (DANN, Ganin & Lempitsky 2015) for torchvision detectors.

A domain classifier learns to tell synthetic (source, label 0) from real (target, label 1) features;
between it and the detector sits a gradient reversal layer, so the backbone receives the classifier's
gradient with its sign flipped, scaled by lambda, and learns features the classifier cannot separate.
Lambda follows Ganin's schedule 2 / (1 + exp(-gamma p)) - 1 over training progress p in [0, 1], so the
detector first learns the task and adaptation ramps in. The classifier's accuracy is logged: at 1.0 the
domains are trivially separable, near 0.5 the features are aligned.

Image level: one small conv head per backbone/FPN level, a logit per feature location (as in
DA Faster R-CNN, Chen et al. 2018). Instance level (R-CNN only, optional): an MLP on the box head's RoI
features; target RoIs come from the RPN's top proposals on the target image, as no labels exist there.

``DomainAdaptiveDetector`` wraps a detector so one forward returns detection and domain losses: DDP
then wraps that single module and synchronises the heads' gradients too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by -lambda."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = float(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.lambd * grad_output, None


def grad_reverse(x: torch.Tensor, lambd: float) -> torch.Tensor:
    return GradientReversal.apply(x, lambd)


def ganin_lambda(progress: float, gamma: float = 10.0) -> float:
    """2 / (1 + exp(-gamma p)) - 1: 0 at the start, -> 1 at the end of training."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class ImageDomainHead(nn.Module):
    """A per-location domain logit for each chosen feature level (levels may differ in channels).

    ``levels`` picks indices into the backbone's outputs (0 the finest); the others get no classifier and
    so no reversed gradient.
    """

    def __init__(self, in_channels: list[int], hidden: int = 128, levels: list[int] | None = None):
        super().__init__()
        self.levels = list(range(len(in_channels))) if levels is None else list(levels)
        if not self.levels or max(self.levels) >= len(in_channels) or min(self.levels) < 0:
            raise ValueError(f"levels {self.levels} do not fit a backbone with {len(in_channels)} levels")
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels[i], hidden, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, 1, 1),
            )
            for i in self.levels
        )

    def forward(self, features: list[torch.Tensor], lambd: float) -> list[torch.Tensor]:
        chosen = [features[i] for i in self.levels]
        return [head(grad_reverse(f, lambd)).flatten(1) for head, f in zip(self.heads, chosen, strict=True)]


class InstanceDomainHead(nn.Module):
    def __init__(self, in_features: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor, lambd: float) -> torch.Tensor:
        return self.net(grad_reverse(x, lambd)).squeeze(-1)


def domain_loss(
    source_logits: list[torch.Tensor], target_logits: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE over every location of every level (mean per level, then over levels), and per-image accuracy.

    An image's predicted domain is the sign of its mean logit over all locations and levels.
    """
    losses = []
    for s, t in zip(source_logits, target_logits, strict=True):
        s, t = s.float(), t.float()
        losses.append(
            0.5
            * (
                F.binary_cross_entropy_with_logits(s, torch.zeros_like(s))
                + F.binary_cross_entropy_with_logits(t, torch.ones_like(t))
            )
        )
    s_mean = torch.stack([s.float().mean(dim=1) for s in source_logits]).mean(0)
    t_mean = torch.stack([t.float().mean(dim=1) for t in target_logits]).mean(0)
    correct = (s_mean < 0).sum() + (t_mean > 0).sum()
    acc = correct.float() / (s_mean.numel() + t_mean.numel())
    return torch.stack(losses).mean(), acc.detach()


def instance_domain_loss(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s, t = source.float(), target.float()
    loss = 0.5 * (
        F.binary_cross_entropy_with_logits(s, torch.zeros_like(s))
        + F.binary_cross_entropy_with_logits(t, torch.ones_like(t))
    )
    acc = ((s < 0).sum() + (t > 0).sum()).float() / max(1, s.numel() + t.numel())
    return loss, acc.detach()


def feature_channels(detector: nn.Module, image_size: int) -> list[int]:
    """Channels of each backbone output level, probed with one small forward."""
    was_training = detector.training
    detector.eval()
    device = next(detector.parameters()).device
    with torch.no_grad():
        feats = detector.backbone(torch.zeros(1, 3, image_size, image_size, device=device))
    detector.train(was_training)
    if isinstance(feats, torch.Tensor):
        return [feats.shape[1]]
    return [f.shape[1] for f in feats.values()]


class DomainAdaptiveDetector(nn.Module):
    """A torchvision detector plus DANN heads: ``forward`` returns one dict of losses and metrics.

    Every key but ``metric_*`` (detached values to log) is a loss the engine sums.
    Without target images (or with ``image_head`` None) it is the plain detector.
    """

    def __init__(
        self,
        detector: nn.Module,
        image_head: ImageDomainHead | None = None,
        instance_head: InstanceDomainHead | None = None,
        *,
        domain_weight: float = 0.1,
        instance_rois_per_image: int = 64,
    ):
        super().__init__()
        self.detector = detector
        self.image_head = image_head
        self.instance_head = instance_head
        self.domain_weight = domain_weight
        self.instance_rois_per_image = instance_rois_per_image
        self._captured: dict[str, object] = {}
        if image_head is not None:
            detector.backbone.register_forward_hook(self._capture("features"))
        if instance_head is not None:
            detector.roi_heads.box_head.register_forward_hook(self._capture("box_features"))

    def _capture(self, key: str):
        def hook(_module, _inputs, output):
            if self.training:
                self._captured[key] = output

        return hook

    def forward(
        self,
        images: list[torch.Tensor],
        targets: list[dict],
        target_images: list[torch.Tensor] | None = None,
        lambd: float = 0.0,
        pseudo_targets: list[dict] | None = None,
        pseudo_weight: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """Detection losses on the source batch; with ``pseudo_targets`` (train.self_training) also on the
        target batch, weighted by ``pseudo_weight`` and summed into ``loss_pseudo``; with DANN heads the
        domain losses between the two batches' features."""
        self._captured.clear()
        losses = dict(self.detector(images, targets))
        if not target_images or (self.image_head is None and pseudo_targets is None):
            return losses
        source_feats = _levels(self._captured.pop("features")) if self.image_head is not None else None
        source_box = self._captured.pop("box_features", None)

        det = self.detector
        t_images = None
        if pseudo_targets is not None:
            # The target batch's detection loss; its features (and RoI features) are captured on the way.
            pseudo_losses = det(target_images, pseudo_targets)
            losses["loss_pseudo"] = pseudo_weight * sum(pseudo_losses.values())
            if self.image_head is None:
                return losses
            t_feats_dict = self._captured.pop("features")
            t_box = self._captured.pop("box_features", None)
        else:
            t_images, _ = det.transform(target_images)
            t_feats_dict = det.backbone(t_images.tensors)
            t_box = None
        t_feats = _levels(t_feats_dict)
        s_logits = self.image_head(source_feats, lambd)
        t_logits = self.image_head(t_feats, lambd)
        loss_img, acc_img = domain_loss(s_logits, t_logits)
        losses["loss_domain_image"] = self.domain_weight * loss_img
        losses["metric_domain_acc"] = acc_img

        if self.instance_head is not None and source_box is not None:
            if t_box is None:
                t_box = self._target_box_features(t_images, t_feats_dict)
            k = min(source_box.shape[0], t_box.shape[0])
            pick = torch.randperm(source_box.shape[0], device=source_box.device)[:k]
            loss_ins, acc_ins = instance_domain_loss(
                self.instance_head(source_box[pick], lambd), self.instance_head(t_box, lambd)
            )
            losses["loss_domain_instance"] = self.domain_weight * loss_ins
            losses["metric_domain_acc_instance"] = acc_ins
        self._captured.clear()
        return losses

    def _target_box_features(self, t_images, t_feats: dict) -> torch.Tensor:
        """Box-head features of the RPN's top proposals on target images (no labels needed)."""
        rpn = self.detector.rpn
        with torch.no_grad():
            rpn.train(False)  # inference path: no targets, test-time proposal counts
            try:
                proposals, _ = rpn(t_images, t_feats)
            finally:
                rpn.train(True)
        proposals = [p[: self.instance_rois_per_image] for p in proposals]
        roi = self.detector.roi_heads
        pooled = roi.box_roi_pool(t_feats, proposals, t_images.image_sizes)
        return roi.box_head(pooled)


def _levels(features) -> list[torch.Tensor]:
    if isinstance(features, torch.Tensor):
        return [features]
    return list(features.values())
