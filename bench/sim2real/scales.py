"""The tasks, the budgets and the run parameters. One budget (model, input size, steps, batch, optimizer,
seed) applies to every variant of a run, so the variants differ only in what ``variants`` says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.sim2real.variants import VARIANTS, Variant, VariantKey, plan_variants
from synth.errors import ConfigError
from synth.paths import REPO_ROOT

Task = Literal["retail", "industrial"]
Scale = Literal["smoke", "cpu", "full"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    config: str  # relative to the repository
    class_name: str  # the class-agnostic label
    real_train: str  # relative to shared_root()
    real_test: str | None  # None: split real_train


TASKS: dict[str, TaskSpec] = {
    "retail": TaskSpec("retail", "configs/sim2real_retail.yaml", "product", "real/retail/freiburg_dev", None),
    "industrial": TaskSpec(
        "industrial",
        "configs/sim2real_industrial.yaml",
        "screw",
        "real/industrial/amv_screws_train",
        "real/industrial/amv_screws_valid",
    ),
}


class ScaleSettings(BaseModel):
    """One training and rendering budget, the same for every variant of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    images: int = Field(ge=1)  # per synthetic set
    render_size: int = Field(ge=32)  # rendered images are square, this many pixels
    catalog_items: int = Field(ge=1)  # retail packages, or procedural fasteners per kind
    model: str
    image_size: int = Field(ge=64)
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: Literal["sgd", "adamw"]
    lr: float = Field(gt=0)
    warmup_fraction: float = Field(ge=0, le=0.5)
    per_class: bool
    loader_workers: int = Field(ge=0)
    # Training minutes per variant: when set, ``steps`` is measured out of it (the same count for every
    # variant, from the step time of the shared model on this machine), so a faster model gets more steps.
    budget_min: float | None = Field(None, gt=0)

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_fraction * self.steps))


# A model family and the optimizer it trains well with, the same at every scale.
_SSDLITE = dict(model="ssdlite320_mobilenet_v3_large", optimizer="adamw", lr=1e-3)
_MASK_RCNN = dict(model="maskrcnn_resnet50_fpn_v2", optimizer="sgd", lr=0.02)
_SMOKE = dict(images=160, steps=50, batch_size=8, warmup_fraction=0.1, per_class=False, loader_workers=1)
_FULL = dict(images=4000, steps=8000, per_class=True, loader_workers=6)
_CPU = dict(images=800, steps=800, batch_size=8, warmup_fraction=0.05, per_class=False, loader_workers=1)

# Smoke: the tests' toy, a few minutes per task; its numbers sit at the blind floor by design.
# Cpu: the scale to quote on a 2-core CPU: 800 rendered images per set and 12 training minutes per variant
# (the step count measured from them; ~800 steps x 8 images for SSDlite at 224 px), which took real-only
# from the floor to AP50 0.65 on Freiburg photos. Models start from random init unless weight files are in
# the torch hub cache.
# Full: for a GPU; the retail real set has boxes only, so both tasks keep a box-capable model family that
# C's engine trains on it (SSD for retail; Mask R-CNN R50 needs masks, which the industrial set has).
SCALES: dict[tuple[str, str], ScaleSettings] = {
    ("retail", "smoke"): ScaleSettings(
        **_SMOKE, **_SSDLITE, render_size=224, catalog_items=30, image_size=224
    ),
    ("industrial", "smoke"): ScaleSettings(
        **_SMOKE, **_SSDLITE, render_size=320, catalog_items=5, image_size=256
    ),
    ("retail", "cpu"): ScaleSettings(
        **_CPU, **_SSDLITE, render_size=224, catalog_items=30, image_size=224, budget_min=12.0
    ),
    ("industrial", "cpu"): ScaleSettings(
        **_CPU, **_SSDLITE, render_size=320, catalog_items=5, image_size=256, budget_min=12.0
    ),
    ("retail", "full"): ScaleSettings(
        **_FULL,
        **_SSDLITE,
        render_size=224,
        catalog_items=90,
        image_size=320,
        batch_size=32,
        warmup_fraction=0.03,
    ),
    ("industrial", "full"): ScaleSettings(
        **_FULL,
        **_MASK_RCNN,
        render_size=640,
        catalog_items=20,
        image_size=640,
        batch_size=8,
        warmup_fraction=0.05,
    ),
}

# Parameters that, when given, replace the scale's value for every variant alike.
_BUDGET_OVERRIDES = (
    "images",
    "render_size",
    "steps",
    "batch_size",
    "image_size",
    "model",
    "catalog_items",
    "budget_min",
)


class Sim2RealParams(BaseModel):
    """Everything a benchmark run depends on. Budget overrides apply to every variant alike."""

    model_config = ConfigDict(extra="forbid")
    task: Task
    scale: Scale = "smoke"
    out: str | None = None  # default runs/sim2real/<task>-<scale>
    real_train: str | None = None  # a labelled COCO set of real photos; default: the task's set in ../shared
    real_test: str | None = None  # a separate labelled test set; None: split real_train (or the task default)
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # of real_train's photos, when it is split
    seed: int = Field(0, ge=0)  # rendering, split, training: one seed for everything
    # Which disjoint block of the seeded photo draw is the test split (0: the plain split). Runs on folds
    # 0, 1, ... test on different photos; `simreal bench pool` scores them together.
    test_fold: int = Field(0, ge=0)
    # Training runs per variant, with training seeds seed, seed + 1, ...: one run's AP50 moves by several
    # points with the seed alone, so judging a recipe change wants more than one.
    train_seeds: int = Field(1, ge=1, le=16)
    variants: list[VariantKey] = Field(default_factory=lambda: [v.key for v in VARIANTS])
    per_class: bool | None = None  # None: the scale's default
    images: int | None = Field(None, ge=1)  # per synthetic set
    render_size: int | None = Field(None, ge=32)
    steps: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=64, le=2048)
    model: str | None = None
    catalog: str | None = None  # use this catalog instead of building the benchmark's own
    render_config: str | None = None  # a render config instead of the task's (e.g. one fitted to the photos)
    catalog_items: int | None = Field(None, ge=1)
    budget_min: float | None = Field(None, gt=0)  # training minutes per variant; ignored when steps is given
    backend: Literal["pyrender", "cycles"] = "pyrender"
    workers: int = Field(2, ge=1, le=512)  # render worker processes
    device: Literal["auto", "cpu", "cuda"] = "auto"
    render_overrides: dict[str, Any] = Field(default_factory=dict)  # dotted keys, both synthetic sets
    train_overrides: dict[str, Any] = Field(default_factory=dict)  # dotted TrainConfig keys, every variant
    # Start every variant that does not start from another one ((a)-(d)) from the detector `simreal pretrain`
    # trains on the project's own renders (cached; its cost is reported apart from the per-variant budget).
    pretrain: bool = False
    # That pretraining's record (checkpoint, key, cost), filled in by the flow.
    pretrained: dict[str, Any] | None = None

    @field_validator("render_config")
    @classmethod
    def _config_exists(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no render config at {v}")
        return v

    @field_validator("variants")
    @classmethod
    def _known_unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("choose at least one variant")
        return sorted(set(v))

    def settings(self) -> ScaleSettings:
        base = SCALES[(self.task, self.scale)]
        update = {
            k: getattr(self, k) for k in (*_BUDGET_OVERRIDES, "per_class") if getattr(self, k) is not None
        }
        if self.steps is not None:
            update["budget_min"] = None  # an explicit step count wins over a time budget
        return base.model_copy(update=update)

    def spec(self) -> TaskSpec:
        return TASKS[self.task]

    def render_config_path(self) -> Path:
        """The render config both synthetic sets start from: ``render_config``, else the task's recipe."""
        return Path(self.render_config) if self.render_config else REPO_ROOT / self.spec().config

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else REPO_ROOT / "runs" / "sim2real" / f"{self.task}-{self.scale}"

    def training_seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.train_seeds)]

    def initial_weights(self) -> str | None:
        """The weights file the variants without a parent start from (None: the model's own default)."""
        if not self.pretrain:
            return None
        if not self.pretrained:
            raise ConfigError("sim2real pretrain", "asked for, but no pretrained detector was made or found")
        return self.pretrained["checkpoint"]

    def planned_variants(self) -> list[Variant]:
        """The chosen variants plus what they start from ((e) needs (b)), in training order."""
        return plan_variants(self.variants)


def parse_params(task: str, scale: str = "smoke", out: str | None = None, **kwargs) -> Sim2RealParams:
    """Validated parameters, or a one-line ConfigError naming the field ("sim2real steps: ...")."""
    try:
        return Sim2RealParams(task=task, scale=scale, out=out, **kwargs)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "parameters"
        raise ConfigError(f"sim2real {key}", err["msg"].removeprefix("Value error, ")) from None
