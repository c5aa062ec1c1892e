"""The four detectors, built from torchvision parts so size, anchors, heads and class count are ours to set.

* ``maskrcnn_resnet50_fpn_v2``: Mask R-CNN, ResNet-50 FPN, the improved "v2" heads (the accurate one).
* ``maskrcnn_mobilenet_v3_large_fpn``: Mask R-CNN on a MobileNetV3-Large FPN; usable on a CPU.
* ``ssd300_vgg16`` and ``ssdlite320_mobilenet_v3_large``: box-only single-shot detectors.

Initial weights (``model.weights``: auto, DEFAULT, COCO, IMAGENET, none, a torchvision enum name or a file)
are resolved by train.weights through torchvision's weights enums and the torch hub cache; what was used
is returned as ``weights_source``, a sentence the logs and reports print verbatim. Tensors whose shape
does not fit (class-specific heads, slimmed layers) stay randomly initialised and are counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from synth.errors import ConfigError
from train.config import ModelConfig
from train.weights import choose_initial_weights

log = logging.getLogger(__name__)

BACKGROUND = 1  # torchvision detectors reserve label 0 for background


@dataclass
class BuiltModel:
    model: nn.Module
    name: str
    weights_source: str
    init_kind: str  # "detector", "backbone" or "random": decides frozen BN, reduced tail, trainable layers
    norm: str  # the normalisation layers used: "group", "batch", "frozen_batch" or "none"
    has_masks: bool


def load_matching(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Load the tensors whose name and shape fit; returns (loaded, tensors in the module)."""
    own = module.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(fit, strict=False)
    return len(fit), len(own)


def default_anchor_sizes(image_size: int, levels: int) -> list[list[float]]:
    """One size per level, doubling from 4% of the image side (800 px -> torchvision's 32..512)."""
    smallest = max(8.0, 0.04 * image_size)
    return [[round(smallest * 2**i)] for i in range(levels)]


def _anchor_generator(cfg: ModelConfig, levels: int, all_sizes_per_level: bool):
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    if cfg.anchor_sizes is not None:
        if len(cfg.anchor_sizes) != levels:
            raise ConfigError(
                "model.anchor_sizes",
                f"{cfg.name} with these settings has {levels} feature levels; "
                f"give {levels} lists of sizes, got {len(cfg.anchor_sizes)}",
            )
        sizes = [tuple(float(s) for s in lv) for lv in cfg.anchor_sizes]
    else:
        ladder = default_anchor_sizes(cfg.image_size, 5)
        if all_sizes_per_level:  # torchvision's MobileNet FPN: every level sees every size
            sizes = [tuple(float(s[0]) for s in ladder)] * levels
        else:
            sizes = [tuple(float(s) for s in lv) for lv in ladder[:levels]]
    ratios = tuple(float(r) for r in cfg.aspect_ratios)
    return AnchorGenerator(tuple(sizes), (ratios,) * levels)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (every MobileNetV3 / ResNet width is a multiple of 8)."""
    import math

    return nn.GroupNorm(math.gcd(channels, 8), channels)


def resolve_norm(cfg: ModelConfig, kind: str, hint: str | None = None) -> str:
    """Which normalisation layers to build (see ModelConfig.norm); `hint` is a checkpoint's own choice.

    From scratch, Mask R-CNN gets GroupNorm (He et al. 2019, "Rethinking ImageNet Pre-training"): with
    a few images per device BatchNorm statistics are noise; on the tiny shapes task here GroupNorm
    reached 0.071 box AP where BatchNorm reached 0.016 after the same 200 steps.
    """
    if cfg.name == "ssd300_vgg16":
        return "none"
    if cfg.norm != "auto":
        return cfg.norm
    if hint:
        return hint
    if cfg.name == "ssdlite320_mobilenet_v3_large":
        return "batch"
    if kind == "random":
        return "group"
    return "batch" if cfg.name == "maskrcnn_resnet50_fpn_v2" else "frozen_batch"


def _norm_factory(norm: str, batch=nn.BatchNorm2d):
    from torchvision.ops import misc as misc_nn_ops

    return {"group": group_norm, "frozen_batch": misc_nn_ops.FrozenBatchNorm2d, "batch": batch}[norm]


def _rcnn_kwargs(cfg: ModelConfig) -> dict:
    kw = {
        "min_size": cfg.image_size,
        "max_size": cfg.image_size,
        "box_score_thresh": cfg.score_threshold,
        "box_nms_thresh": cfg.nms_threshold,
        "box_detections_per_img": cfg.detections_per_image,
    }
    for key in (
        "rpn_batch_size_per_image",
        "rpn_pre_nms_top_n_train",
        "rpn_post_nms_top_n_train",
        "rpn_pre_nms_top_n_test",
        "rpn_post_nms_top_n_test",
        "box_batch_size_per_image",
    ):
        value = getattr(cfg, key)
        if value is not None:
            kw[key] = value
    return kw


def _build_maskrcnn(
    cfg: ModelConfig, num_classes: int, kind: str, state: dict | None, norm_name: str
) -> nn.Module:
    from torchvision.models import mobilenet_v3_large, resnet50
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.detection.rpn import RPNHead
    from torchvision.ops import MultiScaleRoIAlign

    pretrained = kind != "random"
    if cfg.name == "maskrcnn_resnet50_fpn_v2":
        trainable = (
            cfg.trainable_backbone_layers
            if cfg.trainable_backbone_layers is not None
            else (3 if pretrained else 5)
        )
        norm = _norm_factory(norm_name)
        net = resnet50(weights=None, norm_layer=norm)
        if kind == "backbone":
            load_matching(net, state)
        backbone = _resnet_fpn_extractor(net, min(trainable, 5), norm_layer=norm)
        _set_fpn_width(backbone, cfg.fpn_channels, norm)
        levels, featmaps = 5, ["0", "1", "2", "3"]
        anchors = _anchor_generator(cfg, levels, all_sizes_per_level=False)
        rpn_head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0], conv_depth=2)
        dim = cfg.box_head_dim or 1024
        box_head = FastRCNNConvFCHead(
            (backbone.out_channels, 7, 7), [256, 256, 256, 256], [dim], norm_layer=norm
        )
        mask_layers = cfg.mask_head_channels or [256, 256, 256, 256]
        mask_head = MaskRCNNHeads(backbone.out_channels, mask_layers, 1, norm_layer=norm)
    else:
        trainable = (
            cfg.trainable_backbone_layers
            if cfg.trainable_backbone_layers is not None
            else (3 if pretrained else 6)
        )
        net = mobilenet_v3_large(weights=None, norm_layer=_norm_factory(norm_name))
        if kind == "backbone":
            load_matching(net, state)
        returned = {8: [2, 3, 4, 5], 16: [3, 4, 5], 32: [4, 5]}[cfg.mobilenet_finest_stride]
        backbone = _mobilenet_extractor(net, True, min(trainable, 6), returned_layers=returned)
        _set_fpn_width(backbone, cfg.fpn_channels, None)
        levels, featmaps = len(returned) + 1, [str(i) for i in range(len(returned))]
        anchors = _anchor_generator(cfg, levels, all_sizes_per_level=True)
        rpn_head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0])
        dim = cfg.box_head_dim or 1024
        box_head = TwoMLPHead(backbone.out_channels * 7 * 7, dim)
        mask_layers = cfg.mask_head_channels or [256, 256, 256, 256]
        mask_head = MaskRCNNHeads(backbone.out_channels, mask_layers, 1)
    model = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        box_roi_pool=MultiScaleRoIAlign(featmaps, 7, 2),
        box_head=box_head,
        box_predictor=FastRCNNPredictor(dim, num_classes + BACKGROUND),
        mask_roi_pool=MultiScaleRoIAlign(featmaps, 14, 2),
        mask_head=mask_head,
        mask_predictor=MaskRCNNPredictor(mask_layers[-1], mask_layers[-1], num_classes + BACKGROUND),
        **_rcnn_kwargs(cfg),
    )
    return model


def _set_fpn_width(backbone: nn.Module, channels: int, norm_layer) -> None:
    """Replace torchvision's fixed 256-channel FPN by one `channels` wide (RoI cost scales with it)."""
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

    if channels == backbone.out_channels:
        return
    in_channels = [blk[0].in_channels for blk in backbone.fpn.inner_blocks]
    backbone.fpn = FeaturePyramidNetwork(
        in_channels, channels, extra_blocks=LastLevelMaxPool(), norm_layer=norm_layer
    )
    backbone.out_channels = channels


def _build_ssd(
    cfg: ModelConfig, num_classes: int, kind: str, state: dict | None, norm_name: str
) -> nn.Module:
    from torchvision.models import mobilenet_v3_large, vgg16
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import _vgg_extractor
    from torchvision.models.detection.ssdlite import SSDLiteHead, _normal_init
    from torchvision.models.detection.ssdlite import _mobilenet_extractor as _ssdlite_extractor

    from train.ignore_regions import IgnoreRegionSSD

    size = (cfg.image_size, cfg.image_size)
    common = {
        "score_thresh": cfg.score_threshold,
        "nms_thresh": cfg.nms_threshold,
        "detections_per_img": cfg.detections_per_image,
    }
    if cfg.name == "ssd300_vgg16":
        trainable = (
            cfg.trainable_backbone_layers
            if cfg.trainable_backbone_layers is not None
            else (4 if kind != "random" else 5)
        )
        net = vgg16(weights=None)
        if kind == "backbone":
            load_matching(net, state)
        backbone = _vgg_extractor(net, False, min(trainable, 5))
        ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
        scales = cfg.anchor_scales or [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]
        # The published steps assume a 300 px input; for other sizes derive them from the feature maps.
        steps = [8, 16, 32, 64, 100, 300] if cfg.image_size == 300 else None
        anchors = _default_boxes(DefaultBoxGenerator, ratios, scales, steps, "ssd300_vgg16")
        _probe_backbone(backbone, size, cfg)
        return IgnoreRegionSSD(
            backbone,
            anchors,
            size,
            num_classes + BACKGROUND,
            image_mean=[0.48235, 0.45882, 0.40784],
            image_std=[1.0 / 255.0] * 3,
            topk_candidates=400,
            **common,
        )
    norm = _norm_factory(norm_name, partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
    trainable = cfg.trainable_backbone_layers if cfg.trainable_backbone_layers is not None else 6
    # torchvision trains the reduced tail unless an ImageNet backbone is loaded (MobileNetV3 paper, Table 6).
    net = mobilenet_v3_large(weights=None, norm_layer=norm, reduced_tail=kind != "backbone")
    if kind == "backbone":
        load_matching(net, state)
    else:
        _normal_init(net)
    backbone = _ssdlite_extractor(net, min(trainable, 6), norm)
    ratios = [[2, 3] for _ in range(6)]
    if cfg.anchor_scales is not None:
        anchors = _default_boxes(
            DefaultBoxGenerator, ratios, cfg.anchor_scales, None, "ssdlite320_mobilenet_v3_large"
        )
    else:
        anchors = DefaultBoxGenerator(ratios, min_ratio=0.2, max_ratio=0.95)
    out_channels = _probe_backbone(backbone, size, cfg)
    head = SSDLiteHead(out_channels, anchors.num_anchors_per_location(), num_classes + BACKGROUND, norm)
    return IgnoreRegionSSD(
        backbone,
        anchors,
        size,
        num_classes + BACKGROUND,
        head=head,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        topk_candidates=300,
        **common,
    )


def _default_boxes(cls, ratios, scales, steps, name):
    if len(scales) != len(ratios) + 1:
        raise ConfigError("model.anchor_scales", f"{name} needs {len(ratios) + 1} scales, got {len(scales)}")
    return cls(ratios, scales=list(scales), steps=steps)


def _probe_backbone(backbone: nn.Module, size: tuple[int, int], cfg: ModelConfig) -> list[int]:
    """Feature channels at this input size; a size too small for the extra layers is a config error."""
    from torchvision.models.detection import _utils as det_utils

    try:
        return det_utils.retrieve_out_channels(backbone, size)
    except RuntimeError as e:
        raise ConfigError(
            "model.image_size",
            f"{cfg.image_size} px is too small for {cfg.name} ({str(e).splitlines()[0][:100]})",
        ) from None


def build_model(
    cfg: ModelConfig, num_classes: int, *, restore_kind: str | None = None, restore_norm: str | None = None
) -> BuiltModel:
    """Build the detector for `num_classes` foreground classes, with its initial weights.

    ``restore_kind`` / ``restore_norm`` (what a checkpoint records) read no weights: the caller restores
    the checkpoint, and the architecture choices (norm layers, reduced tail) are reproduced.
    """
    if num_classes < 1:
        raise ConfigError("model", "needs at least one class")
    load_weights = restore_kind is None
    if load_weights:
        init = choose_initial_weights(cfg.name, cfg.weights, cfg.use_hub_cache)
        kind, state, source, hint = init.kind, init.state, init.source, init.norm
    else:
        if restore_kind not in ("detector", "backbone", "random"):
            raise ConfigError("checkpoint", f"unknown init kind {restore_kind!r}")
        kind, state, source, hint = restore_kind, None, "restored from checkpoint", restore_norm
    norm = resolve_norm(cfg, kind, hint)
    if cfg.is_rcnn:
        model = _build_maskrcnn(cfg, num_classes, kind, state, norm)
    else:
        model = _build_ssd(cfg, num_classes, kind, state, norm)
    if load_weights and kind == "detector":
        loaded, total = load_matching(model, state)
        if loaded == 0:
            raise ConfigError(
                "model.weights",
                f"{source}: no tensor fits {cfg.name}; are they weights for another architecture?",
            )
        source += (
            f": {loaded}/{total} tensors loaded, the rest (class heads, resized layers) randomly initialised"
        )
    elif load_weights and kind == "backbone":
        source += " into the backbone; detection heads randomly initialised"
    return BuiltModel(
        model=model, name=cfg.name, weights_source=source, init_kind=kind, norm=norm, has_masks=cfg.is_rcnn
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)
