"""train.models: the four architectures, configurable sizes, and where initial weights come from."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torchvision.models import mobilenet_v3_large
from torchvision.ops.misc import FrozenBatchNorm2d
from train_fixtures import tiny_rcnn_model

from synth.errors import ConfigError
from train.config import ModelConfig
from train.models import build_model, default_anchor_sizes


@pytest.fixture(autouse=True)
def _empty_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # never the machine's real cache


@pytest.mark.parametrize(
    "name,size",
    [
        ("maskrcnn_resnet50_fpn_v2", 64),
        ("maskrcnn_mobilenet_v3_large_fpn", 64),
        pytest.param("ssd300_vgg16", 300, marks=pytest.mark.slow),
        ("ssdlite320_mobilenet_v3_large", 96),
    ],
)
def test_each_architecture_builds_and_predicts(name, size):
    torch.manual_seed(0)
    built = build_model(ModelConfig(name=name, image_size=size, detections_per_image=7), num_classes=3)
    assert built.weights_source.startswith("random init") and built.init_kind == "random"
    model = built.model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, size, size // 2 + 8)])[0]  # any input size is resized internally
    assert set(out) >= {"boxes", "labels", "scores"} and len(out["boxes"]) <= 7
    assert built.has_masks == ("masks" in out)
    if name.startswith("maskrcnn"):
        assert model.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background
        assert model.transform.min_size == (size,) and model.transform.max_size == size
        assert any(isinstance(m, torch.nn.GroupNorm) for m in model.backbone.modules())  # scratch -> GN
    else:
        assert model.transform.fixed_size == (size, size)


def test_head_sizes_anchors_and_norm_are_configurable():
    cfg = ModelConfig(**tiny_rcnn_model(96, norm="batch"))
    m = build_model(cfg, 2).model
    assert m.backbone.out_channels == 64 and m.roi_heads.box_head.fc7.out_features == 256
    assert m.roi_heads.mask_predictor.conv5_mask.in_channels == 64
    assert m.rpn.anchor_generator.sizes[0] == tuple(float(s[0]) for s in default_anchor_sizes(96, 5))
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.backbone.modules())
    assert default_anchor_sizes(800, 5) == [[32], [64], [128], [256], [512]]  # torchvision's at 800 px
    custom = build_model(
        ModelConfig(**tiny_rcnn_model(64, anchor_sizes=[[4], [8], [16], [32], [64]])), 1
    ).model
    assert custom.rpn.anchor_generator.sizes == ((4.0,), (8.0,), (16.0,), (32.0,), (64.0,))
    with pytest.raises(ConfigError, match="5 lists of sizes"):  # finest stride 8: 4 FPN levels + pool
        build_model(ModelConfig(**tiny_rcnn_model(64, anchor_sizes=[[8], [16]])), 1)
    with pytest.raises(ConfigError, match="too small for ssd300_vgg16"):
        build_model(ModelConfig(name="ssd300_vgg16", image_size=200), 1)


def test_local_weights_file_loads_what_fits(tmp_path):
    torch.manual_seed(1)
    donor = build_model(ModelConfig(**tiny_rcnn_model(64)), num_classes=5).model
    path = tmp_path / "detector.pth"
    torch.save(donor.state_dict(), path)
    built = build_model(ModelConfig(**tiny_rcnn_model(64, weights=str(path))), num_classes=2)
    assert built.weights_source.startswith(f"file {path.name}") and built.init_kind == "detector"
    assert str(tmp_path) not in built.weights_source  # reports carry it: no machine paths
    assert "tensors loaded" in built.weights_source
    got, ref = built.model.state_dict(), donor.state_dict()
    assert torch.equal(
        got["backbone.fpn.layer_blocks.0.0.weight"], ref["backbone.fpn.layer_blocks.0.0.weight"]
    )
    assert (
        got["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3
    )  # class head re-initialised for 2 classes
    # a checkpoint-like dict with a "model" entry is accepted too
    torch.save({"model": donor.state_dict(), "step": 3}, tmp_path / "ckpt.pt")
    assert (
        "tensors loaded"
        in build_model(
            ModelConfig(**tiny_rcnn_model(64, weights=str(tmp_path / "ckpt.pt"))), 2
        ).weights_source
    )


def test_unsafe_or_foreign_weight_files_are_rejected(tmp_path):
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": object()}, protocol=2))
    with pytest.raises(ConfigError, match="not a loadable weights file"):
        build_model(ModelConfig(**tiny_rcnn_model(64, weights=str(evil))), 2)
    with pytest.raises(ConfigError, match="weights file not found"):
        build_model(ModelConfig(**tiny_rcnn_model(64, weights=str(tmp_path / "missing.pt"))), 2)
    other = tmp_path / "other.pt"
    torch.save({"backbone.something.weight": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match="no tensor fits"):
        build_model(ModelConfig(**tiny_rcnn_model(64, weights=str(other))), 2)


def test_torch_hub_cache_backbone_is_used_and_reported(tmp_path):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(2)
    imagenet = mobilenet_v3_large()
    torch.save(imagenet.state_dict(), hub / "mobilenet_v3_large-8738ca79.pth")
    cfg = ModelConfig(**{**tiny_rcnn_model(64), "use_hub_cache": True})
    built = build_model(cfg, 2)
    assert "torch hub cache" in built.weights_source and "ImageNet backbone" in built.weights_source
    assert built.init_kind == "backbone"
    body = built.model.backbone.body
    assert torch.equal(body["0"][0].weight, imagenet.features[0][0].weight)
    assert isinstance(body["0"][1], FrozenBatchNorm2d)  # torchvision's recipe under pretrained weights
    assert (
        not body["0"][0].weight.requires_grad and body["13"].block[0][0].weight.requires_grad
    )  # 3 trainable
    off = build_model(ModelConfig(**tiny_rcnn_model(64)), 2)  # use_hub_cache False in the tiny config
    assert off.weights_source.startswith("random init") and "switched off" in off.weights_source


def _expected_hub_file(weights) -> Path:
    """Where torchvision's loader looks for an enum's file: $TORCH_HOME/hub/checkpoints/<URL file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


@pytest.mark.parametrize("choice", ["DEFAULT", "COCO", "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"])
def test_weights_default_come_from_the_hub_cache_offline(choice, monkeypatch):
    """--weights DEFAULT on a machine without network: torchvision's own file name in the hub cache."""
    from torchvision.models.detection import (
        FasterRCNN_MobileNet_V3_Large_FPN_Weights,
        fasterrcnn_mobilenet_v3_large_fpn,
    )

    monkeypatch.setenv("SIMREAL_OFFLINE", "1")
    torch.manual_seed(3)
    donor = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    path = _expected_hub_file(FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT)
    path.parent.mkdir(parents=True)
    torch.save(donor.state_dict(), path)
    built = build_model(ModelConfig(**tiny_rcnn_model(64, weights=choice)), 2)
    assert built.init_kind == "detector"
    assert "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1" in built.weights_source
    assert "torch hub cache" in built.weights_source and "tensors loaded" in built.weights_source
    got = built.model.state_dict()["backbone.body.0.0.weight"]
    assert torch.equal(got, donor.state_dict()["backbone.body.0.0.weight"])


def test_weights_imagenet_load_the_backbone_named_by_the_builder(monkeypatch):
    from torchvision.models import MobileNet_V3_Large_Weights

    monkeypatch.setenv("SIMREAL_OFFLINE", "1")
    torch.manual_seed(4)
    imagenet = mobilenet_v3_large()
    path = _expected_hub_file(MobileNet_V3_Large_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(imagenet.state_dict(), path)
    built = build_model(ModelConfig(**tiny_rcnn_model(64, weights="IMAGENET")), 2)
    assert (
        built.init_kind == "backbone" and "MobileNet_V3_Large_Weights.IMAGENET1K_V1" in built.weights_source
    )
    assert torch.equal(built.model.backbone.body["0"][0].weight, imagenet.features[0][0].weight)


def test_weights_default_offline_without_a_cached_file_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("SIMREAL_OFFLINE", "1")
    with pytest.raises(ConfigError) as e:
        build_model(ModelConfig(**tiny_rcnn_model(64, weights="DEFAULT")), 2)
    msg = str(e.value)
    assert "\n" not in msg and "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth" in msg
    assert "not in the torch hub cache" in msg and "downloads switched off" in msg
    with pytest.raises(ConfigError, match="weights file not found .or use one of auto, DEFAULT"):
        build_model(ModelConfig(**tiny_rcnn_model(64, weights="IMAGENET2")), 2)
    with pytest.raises(ConfigError, match="neither a file nor one of"):
        build_model(ModelConfig(**tiny_rcnn_model(64, weights="ResNet50_Weights.NOPE")), 2)
    # auto falls back to random init, and says why
    auto = build_model(ModelConfig(**tiny_rcnn_model(64, weights="auto", use_hub_cache=True)), 2)
    assert auto.init_kind == "random" and auto.weights_source.startswith("random init (weights auto:")
    assert "downloads switched off" in auto.weights_source and str(Path.home()) not in auto.weights_source
