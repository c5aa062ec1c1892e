"""Training configuration: one validated pydantic model, loadable from YAML, stored in every run directory.

Every knob has a default; a YAML file (``simreal train --config FILE``) or CLI flags override them. The
whole validated config (defaults filled in) is written to ``RUN_DIR/config.yaml`` and into each checkpoint,
so a run can be resumed, evaluated or reported on without the original command line. Example::

    data: runs/shelf                  # COCO folder written by `simreal render`
    out: runs/train-shelf
    model: {name: maskrcnn_resnet50_fpn_v2, image_size: 640}
    class_agnostic: product           # or category_map: map.yaml, or neither (the dataset's classes)
    target_images: photos/unlabelled  # for DANN and self-training
    dann: {enabled: true, instance_level: true}
    self_training: {enabled: true, threshold: 0.6}
    augment: {strength: 0.6}
    eval: [{data: ../shared/real/retail/ycbv_sample, class_agnostic: true}]
    steps: 6000
    batch_size: 8
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synth.config import read_yaml, set_dotted, validate
from synth.errors import ConfigError

ModelName = Literal[
    "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_mobilenet_v3_large_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
]

# Short names accepted on the command line (``--model maskrcnn``).
MODEL_ALIASES: dict[str, str] = {
    "maskrcnn": "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_r50": "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_mobilenet": "maskrcnn_mobilenet_v3_large_fpn",
    "ssd": "ssd300_vgg16",
    "ssdlite": "ssdlite320_mobilenet_v3_large",
}

AugmentOp = Literal[
    "flip", "affine", "perspective", "color", "channel_shuffle", "blur", "noise", "jpeg", "erasing"
]
ALL_AUGMENT_OPS: tuple[str, ...] = (
    "flip",
    "affine",
    "perspective",
    "color",
    "channel_shuffle",
    "blur",
    "noise",
    "jpeg",
    "erasing",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """Architecture and initial weights. ``None`` fields take the architecture's own default."""

    name: ModelName = "maskrcnn_mobilenet_v3_large_fpn"
    # Square training size: images are letterboxed to image_size x image_size; R-CNN models use
    # min_size = max_size = image_size, SSD models resize their input to it.
    image_size: int = Field(512, ge=64, le=2048)
    # auto | DEFAULT | COCO | IMAGENET | none | a torchvision enum name | a local file (see train.weights)
    weights: str = "auto"
    use_hub_cache: bool = True  # False: `auto` means random init (no hub cache, no download)
    trainable_backbone_layers: int | None = Field(None, ge=0, le=6)  # None: 3 if pretrained, else all
    # R-CNN anchors: one list of pixel sizes per feature level; None scales the defaults to image_size.
    anchor_sizes: list[list[float]] | None = None
    aspect_ratios: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    # SSD default boxes: relative scales (one per feature map + 1); None keeps the architecture's.
    anchor_scales: list[float] | None = None
    # MobileNetV3 FPN: the finest FPN level's stride. 8 finds small objects, 16 is cheaper (torchvision: 32).
    mobilenet_finest_stride: Literal[8, 16, 32] = 16
    # Normalisation layers. auto: with pretrained weights torchvision's choice (frozen BN under MobileNet,
    # BN in ResNet-50 v2); from random init GroupNorm for Mask R-CNN (small per-device batches make BN
    # statistics noise) and BN for SSD (as torchvision trains SSDlite from scratch).
    norm: Literal["auto", "batch", "frozen_batch", "group"] = "auto"
    # R-CNN sampling / head sizes: smaller values make CPU training practical.
    fpn_channels: int = Field(256, ge=16, le=512)  # width of every FPN level (and so of the RoI features)
    rpn_batch_size_per_image: int | None = Field(None, ge=8)
    rpn_pre_nms_top_n_train: int | None = Field(None, ge=10)
    rpn_post_nms_top_n_train: int | None = Field(None, ge=10)
    rpn_pre_nms_top_n_test: int | None = Field(None, ge=10)
    rpn_post_nms_top_n_test: int | None = Field(None, ge=10)
    box_batch_size_per_image: int | None = Field(None, ge=8)
    box_head_dim: int | None = Field(None, ge=16)  # representation size of the box head's MLP
    mask_head_channels: list[int] | None = None  # e.g. [64, 64]; None: 4 x 256 as in the papers
    score_threshold: float = Field(0.05, ge=0.0, le=1.0)
    nms_threshold: float = Field(0.5, gt=0.0, le=1.0)
    detections_per_image: int = Field(100, ge=1, le=1000)

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_default(cls, v):
        return "auto" if v is None else v  # configs written before `auto` existed said null

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.anchor_sizes is not None and (
            not self.anchor_sizes or any(not lv for lv in self.anchor_sizes)
        ):
            raise ValueError("anchor_sizes needs one non-empty list of sizes per feature level")
        if self.mask_head_channels is not None and not self.mask_head_channels:
            raise ValueError("mask_head_channels must list at least one layer width")
        return self

    @property
    def is_rcnn(self) -> bool:
        return is_rcnn_name(self.name)


class AugmentConfig(_Strict):
    """Train-time domain randomization with kornia, on the training device, batched."""

    enabled: bool = True
    strength: float = Field(0.5, ge=0.0, le=1.0)  # 0 = off, 1 = strong; scales every range and probability
    ops: list[AugmentOp] = Field(default_factory=lambda: list(ALL_AUGMENT_OPS))
    min_visible_px: int = Field(4, ge=1)  # drop instances with fewer mask pixels left after a geometric op


class DannConfig(_Strict):
    """Adversarial domain adaptation (Ganin & Lempitsky 2015) against unlabelled target-domain images."""

    enabled: bool = False
    instance_level: bool = False  # also a classifier on RoI features (R-CNN models only)
    weight: float = Field(0.1, ge=0.0)  # weight of the domain loss in the total loss
    gamma: float = Field(10.0, gt=0.0)  # lambda schedule 2 / (1 + exp(-gamma * p)) - 1
    target_batch_size: int | None = Field(None, ge=1)  # default: same as batch_size
    hidden_channels: int = Field(128, ge=8)
    # Feature levels the image-level classifier sees, 0 the finest; None: all. Aligning only the fine levels
    # matches local look (texture, noise, lighting) and leaves the coarse, semantic levels free
    # (Strong-Weak DA, Saito et al. 2019).
    levels: list[int] | None = Field(None, min_length=1)
    instance_rois_per_image: int = Field(64, ge=1)

    @field_validator("levels")
    @classmethod
    def _distinct_levels(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (min(v) < 0 or len(set(v)) != len(v)):
            raise ValueError(f"levels must be distinct indices >= 0, got {v}")
        return None if v is None else sorted(v)


class SelfTrainingConfig(_Strict):
    """Mean-teacher pseudo-labels on the unlabelled target-domain images (train.self_training)."""

    enabled: bool = False
    start: float = Field(0.5, ge=0.0, lt=1.0)  # share of the steps trained on the labelled data alone first
    ema: float = Field(0.99, ge=0.0, lt=1.0)  # teacher = ema * teacher + (1 - ema) * detector, every step
    threshold: float = Field(0.5, gt=0.0, le=1.0)  # teacher score a detection needs to become a label
    # Teacher detections scoring in [ignore_below, threshold) are neither labels nor background: SSD's
    # hard-negative mining skips the anchors on them (train.ignore_regions). None: everything else is background.
    ignore_below: float | None = Field(None, gt=0.0, lt=1.0)
    weight: float = Field(1.0, ge=0.0)  # weight of the pseudo-labelled detection loss
    max_per_image: int = Field(100, ge=1)


class FourierConfig(_Strict):
    """Fourier domain adaptation (train.fourier): renders take target photos' low-frequency amplitude."""

    enabled: bool = False
    probability: float = Field(0.5, ge=0.0, le=1.0)  # share of the source images restyled
    # Half-width of the swapped window, a share of the shorter image side, drawn per image. FDA used 0.01 to
    # 0.09 on 1024 x 512 street scenes; on 224 px shelf renders restyled by the retail train photos, windows
    # of 4 px (0.02) and more already paint coloured blotches over the products, 1-2 px change the colour
    # cast and the light falloff only.
    beta: tuple[float, float] = (0.0, 0.01)

    @field_validator("beta")
    @classmethod
    def _beta_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] <= v[1] <= 0.5:
            raise ValueError(f"beta must be [min, max] with 0 <= min <= max <= 0.5, got {list(v)}")
        return v


# The config sections that read ``target_images`` (each has ``enabled``), with the names reports give them.
TARGET_IMAGE_METHODS: dict[str, str] = {"dann": "DANN", "self_training": "self-training", "fda": "FDA"}


class EvalSetConfig(_Strict):
    """A labelled COCO set evaluated after training into RUN_DIR/eval/<name>/."""

    data: str
    name: str | None = None  # default: the data folder's name
    category_map: str | None = None
    class_agnostic: bool = False
    # the set whose boxes the blind floor may know (a real train split); default: the training set
    floor_from: str | None = None


class TrainConfig(_Strict):
    data: str  # a COCO dataset folder (annotations.json + images/) or an annotations .json file
    out: str  # the run directory
    model: ModelConfig = Field(default_factory=ModelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    dann: DannConfig = Field(default_factory=DannConfig)
    self_training: SelfTrainingConfig = Field(default_factory=SelfTrainingConfig)
    fda: FourierConfig = Field(default_factory=FourierConfig)
    # Category handling of the training set (see train.data.build_label_map).
    category_map: str | None = None  # YAML/JSON {dataset category name: class name or null}
    class_agnostic: str | None = None  # e.g. "product": every category becomes this one class
    target_images: str | None = None  # unlabelled target-domain images (DANN, self-training, FDA)
    val_data: str | None = None  # a separate labelled validation set; else val_fraction of data
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    eval: list[EvalSetConfig] = Field(default_factory=list)
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(4, ge=1)  # per process
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.02, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0.0, le=1.0)  # cosine decays to lr * min_lr_ratio
    clip_grad_norm: float | None = Field(10.0, gt=0.0)
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto = bf16 autocast on CUDA, off on CPU
    channels_last: Literal["auto", "on", "off"] = "auto"  # auto = on for CUDA
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = Field(2, ge=0)
    threads: int | None = Field(None, ge=1)  # torch CPU threads per process
    seed: int = 0
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    eval_every: int = Field(0, ge=0)  # 0: evaluate the validation split only at the end
    resume: bool = False
    progress: bool = True  # tqdm bar on rank 0

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.class_agnostic is not None and self.category_map is not None:
            raise ValueError("class_agnostic and category_map are exclusive")
        for key in TARGET_IMAGE_METHODS:
            if getattr(self, key).enabled and not self.target_images:
                raise ValueError(f"{key}.enabled needs target_images (unlabelled target-domain photos)")
        if (
            self.model.name == "ssdlite320_mobilenet_v3_large"
            and self.batch_size < 2
            and self.model.norm in ("auto", "batch")
        ):
            raise ValueError(
                "ssdlite320_mobilenet_v3_large needs batch_size >= 2 per process: BatchNorm cannot "
                "train on its 1x1 feature maps with one image (or set model.norm: group)"
            )
        if self.dann.instance_level and not self.model.is_rcnn:
            raise ValueError("dann.instance_level needs an R-CNN model (SSD has no RoI features)")
        st = self.self_training
        if st.ignore_below is not None and st.ignore_below >= st.threshold:
            raise ValueError(
                f"self_training.ignore_below ({st.ignore_below}) must be below self_training.threshold "
                f"({st.threshold}): it opens the band of teacher scores that are neither label nor background"
            )
        if st.ignore_below is not None and self.model.is_rcnn:
            raise ValueError(
                "self_training.ignore_below needs an SSD model (it acts on SSD's hard-negative mining)"
            )
        return self


def is_rcnn_name(name: str) -> bool:
    """Whether a full architecture name is an R-CNN (the rest are SSDs)."""
    return name.startswith("maskrcnn")


def resolve_model_name(name: str) -> str:
    """Map a CLI short name to the architecture name; error on unknown names."""
    full = MODEL_ALIASES.get(name, name)
    if full not in ModelName.__args__:  # type: ignore[attr-defined]
        known = ", ".join(sorted(set(MODEL_ALIASES) | set(ModelName.__args__)))  # type: ignore[attr-defined]
        raise ConfigError("--model", f"unknown model '{name}' (known: {known})")
    return full


def load_train_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML TrainConfig, apply dotted-key overrides (``{"model.name": ...}``), validate."""
    data = read_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value, where=path, problem="key '{part}' must be a mapping")
    return validate(TrainConfig, data, path if path is not None else "<command line>")
