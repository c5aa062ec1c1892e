"""Enlarging a trained detector's class heads for new classes without changing what it says about the old.

The layers whose outputs are per class (label 0 is background):

* SSD / SSDlite: the last convolution of each level of ``head.classification_head``; its channels are
  ``anchors x labels`` (channel ``a * K + k``); box regression is class-agnostic and stays as it is.
* Faster / Mask R-CNN: ``roi_heads.box_predictor.cls_score`` (K logits), ``.bbox_pred`` (4 deltas per
  label) and ``roi_heads.mask_predictor.mask_fcn_logits`` (one mask per label).

Old rows are copied, so old-class logits, boxes and masks are unchanged on any input. Every new row starts
as the mean of the old foreground classes' rows: "an object like the known ones", a class-agnostic box
regressor and mask. A new class's logit bias is further lowered by ``-log(NEW_CLASS_PRIOR)``: its logit is
then the mean old-class logit plus ``log(NEW_CLASS_PRIOR)``, so its softmax score is at most
``NEW_CLASS_PRIOR`` on any input (below the detectors' 0.05 score threshold: no detection of it before
training) and every old score shrinks by at most a factor ``1 + NEW_CLASS_PRIOR`` per new class. The prior
follows RetinaNet's rare-foreground start (Lin et al. 2017); starting from the object rows rather than
the background row makes a new class most likely where the model already sees an object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from synth.errors import ConfigError

NEW_CLASS_PRIOR = 0.01


@dataclass(frozen=True)
class ClassLayer:
    """One layer with per-label outputs: output rows viewed as ``[outer, labels, inner]``."""

    prefix: str  # state-dict name of the layer (``prefix.weight``, ``prefix.bias``)
    outer: int  # groups in front of the label axis (anchors per location in an SSD head; else 1)
    inner: int  # outputs per label (4 box deltas; else 1)
    logits: bool  # class scores (a new row's bias is lowered by log NEW_CLASS_PRIOR); else boxes or masks


def class_layers(model: nn.Module, labels: int) -> list[ClassLayer]:
    """The layers of ``model`` (built for ``labels`` outputs, background included) whose outputs are per
    label; empty when it has no class head torchvision-style."""
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
    from torchvision.models.detection.ssd import SSD

    names = {id(m): n for n, m in model.named_modules()}
    if isinstance(model, GeneralizedRCNN):
        rh = model.roi_heads
        box = getattr(rh, "box_predictor", None)
        if not (isinstance(getattr(box, "cls_score", None), nn.Linear) and hasattr(box, "bbox_pred")):
            return []
        layers = [
            ClassLayer(names[id(box.cls_score)], 1, 1, True),
            ClassLayer(names[id(box.bbox_pred)], 1, 4, False),
        ]
        mask = getattr(getattr(rh, "mask_predictor", None), "mask_fcn_logits", None)
        if mask is not None:
            layers.append(ClassLayer(names[id(mask)], 1, 1, False))
        return layers
    if isinstance(model, SSD):
        head = getattr(model.head, "classification_head", None)
        layers = []
        for block in getattr(head, "module_list", []):
            conv = block if isinstance(block, nn.Conv2d) else block[-1]
            if not isinstance(conv, nn.Conv2d) or conv.out_channels % labels:
                return []
            layers.append(ClassLayer(names[id(conv)], conv.out_channels // labels, 1, True))
        return layers
    return []


def grow_rows(
    tensor: torch.Tensor, layer: ClassLayer, old: int, new: int, *, is_bias: bool, where: str = "checkpoint"
) -> torch.Tensor:
    """``tensor`` (a weight or bias of ``layer`` for ``old`` labels) for ``new`` labels: old rows copied,
    new rows initialised as the module docstring says."""
    rest = tuple(tensor.shape[1:])
    if tensor.shape[0] != layer.outer * old * layer.inner:
        raise ConfigError(
            where,
            f"{layer.prefix} has {tensor.shape[0]} outputs, expected {layer.outer * old * layer.inner} "
            f"for {old - 1} classes",
        )
    rows = tensor.reshape(layer.outer, old, layer.inner, *rest)
    fill = rows[:, 1:].mean(dim=1, keepdim=True)
    if layer.logits and is_bias:
        fill = fill + math.log(NEW_CLASS_PRIOR)
    grown = torch.cat([rows, fill.expand(layer.outer, new - old, layer.inner, *rest)], dim=1)
    return grown.reshape(layer.outer * new * layer.inner, *rest).contiguous()


def enlarge_state(
    state: dict[str, torch.Tensor], model: nn.Module, old_classes: int, new_classes: int, where="checkpoint"
) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` (built for ``new_classes`` foreground classes) from ``state`` (the same
    architecture with ``old_classes``): every class-head tensor grown, every other tensor as it was."""
    if new_classes <= old_classes:
        raise ConfigError(where, f"nothing to add: {new_classes} classes is not more than {old_classes}")
    layers = class_layers(model, new_classes + 1)
    if not layers:
        raise ConfigError(where, f"its {type(model).__name__} model has no class head to enlarge")
    out = dict(state)
    for layer in layers:
        for suffix in ("weight", "bias"):
            key = f"{layer.prefix}.{suffix}"
            if key not in state:
                raise ConfigError(where, f"its model has no class head to enlarge (no tensor {key})")
            out[key] = grow_rows(
                state[key], layer, old_classes + 1, new_classes + 1, is_bias=suffix == "bias", where=where
            )
    return out
