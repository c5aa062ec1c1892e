"""Flow parameters as pydantic models: Prefect validates them before a run is created, so a negative image
count or an unknown backend is rejected at `prefect deployment run` time with a clear message.

These models are the one set of defaults: ``simreal run`` reads its argparse defaults from them, the served
deployment (flows/serve.py) and the ``prefect.yaml`` deployments take them as they are (only the output
folder differs), and ``simreal train`` on a machine without CUDA starts from ``CPU_RECIPE``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RenderParams(_Strict):
    """What to render: a config file (plus dotted-key overrides), how many images, where, how."""

    # the sim-to-real retail recipe (224 px, as the Freiburg shelf photos): the default run transfers
    config: str = "configs/sim2real_retail.yaml"
    overrides: dict[str, Any] = Field(default_factory=dict)  # dotted-key config overrides
    n: int = Field(800, ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    out: str = "runs/default/data"
    backend: Literal["pyrender", "cycles"] = "pyrender"
    backend_opts: dict[str, Any] = Field(default_factory=dict)
    workers: int = Field(2, ge=1, le=512)  # local worker processes (ignored with dask_address)
    dask_address: str | None = None  # e.g. "tcp://scheduler:8786": shards run on that Dask cluster

    def load_config(self):
        """The validated RenderConfig, overrides applied; errors name the file and key in one line."""
        from synth.config import read_yaml, set_dotted
        from synth.randomize.settings import parse_render_config

        data = read_yaml(self.config)
        for key, value in self.overrides.items():
            set_dotted(data, key, value, where=key)
        return parse_render_config(data, self.config)


class EvalSet(_Strict):
    """A labelled COCO set to measure transfer on (usually real photos)."""

    data: str
    name: str | None = None
    class_agnostic: bool = False
    category_map: str | None = None
    note: str | None = None  # what a reader of the report must know about this set (kept in its metrics)

    def display_name(self) -> str:
        return self.name or Path(self.data).name


# A Mask R-CNN MobileNetV3-FPN slimmed for a few minutes of CPU training (~1.3 s per step of 2 images at
# 256 px on 2 cores, about 4x faster than the architecture's defaults), for those who want masks on a CPU.
CPU_SMALL_MODEL: dict[str, Any] = {
    "model.fpn_channels": 96,
    "model.mask_head_channels": [64, 64],
    "model.box_head_dim": 256,
    "model.rpn_pre_nms_top_n_train": 600,
    "model.rpn_post_nms_top_n_train": 300,
    "model.rpn_pre_nms_top_n_test": 300,
    "model.rpn_post_nms_top_n_test": 150,
    "model.box_batch_size_per_image": 128,
}
# The CPU training recipe: the default run's, the cpu scale of `bench sim2real`'s, and `simreal train`'s
# defaults when there is no CUDA device: SSDlite at 224 px, every layer trained, AdamW with a short warmup
# and domain randomization, 700 steps of 8 images (~1 s a step: about 12 minutes on 2 cores, where
# TrainConfig's GPU-sized defaults would take ~10 hours).
CPU_RECIPE: dict[str, Any] = {
    "model.name": "ssdlite320_mobilenet_v3_large",
    "steps": 700,
    "batch_size": 8,
    "model.image_size": 224,
    "model.trainable_backbone_layers": 6,
    "optimizer": "adamw",
    "lr": 1e-3,
    "warmup_steps": 35,
    "workers": 1,
    "threads": 2,
}
# TrainParams has fields of its own for these; the rest of the recipe travels as overrides.
_TRAIN_FIELDS = {
    "model.name": "model",
    "steps": "steps",
    "batch_size": "batch_size",
    "model.image_size": "image_size",
}


# Recipe keys that only make sense together: when the user sets one of a group, the recipe fills none of it
# (an lr chosen for SGD must not meet the recipe's AdamW; layers to train belong to the chosen model).
_RECIPE_GROUPS = (("optimizer", "lr", "warmup_steps"), ("model.name", "model.trainable_backbone_layers"))


def cpu_recipe_fill(given: dict[str, Any], config: dict) -> dict[str, Any]:
    """The CPU recipe's values for the keys that neither ``given`` (dotted keys) nor ``config`` (a
    TrainConfig mapping, as read from YAML) sets, leaving out whole groups the user has started on."""

    def in_config(key: str) -> bool:
        node = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    fill = {k: v for k, v in CPU_RECIPE.items() if k not in given and not in_config(k)}
    for group in _RECIPE_GROUPS:
        if any(k not in fill for k in group):
            fill = {k: v for k, v in fill.items() if k not in group}
    return fill


class TrainParams(_Strict):
    """The training recipe. ``overrides`` reach any TrainConfig key (dotted), e.g. {"model.image_size": 320}."""

    model: str = CPU_RECIPE["model.name"]
    steps: int = Field(CPU_RECIPE["steps"], ge=1)
    batch_size: int = Field(CPU_RECIPE["batch_size"], ge=1)
    image_size: int = Field(CPU_RECIPE["model.image_size"], ge=64, le=2048)
    class_agnostic: str | None = "product"
    target_images: str | None = None
    dann: bool = False
    out: str = "runs/default/train"
    overrides: dict[str, Any] = Field(
        default_factory=lambda: {k: v for k, v in CPU_RECIPE.items() if k not in _TRAIN_FIELDS}
    )

    def to_config(self, data: str, eval_sets: list[EvalSet] | None = None):
        from synth.config import set_dotted, validate
        from train.config import TrainConfig, resolve_model_name

        cfg: dict[str, Any] = {
            "data": data,
            "out": self.out,
            "model": {"name": resolve_model_name(self.model), "image_size": self.image_size},
            "steps": self.steps,
            "batch_size": self.batch_size,
            "class_agnostic": self.class_agnostic,
            "target_images": self.target_images,
            "dann": {"enabled": self.dann},
            "progress": False,
            "eval": [s.model_dump() for s in eval_sets or []],
        }
        for key, value in self.overrides.items():
            set_dotted(cfg, key, value, where=key)
        return validate(TrainConfig, cfg, "train parameters")


class PipelineParams(_Strict):
    """render -> train -> evaluate -> report."""

    render: RenderParams = Field(default_factory=RenderParams)
    train: TrainParams = Field(default_factory=TrainParams)
    eval_sets: list[EvalSet] | None = None  # None: the real sets in ../shared/real when present

    @field_validator("eval_sets")
    @classmethod
    def _nonempty(cls, v):
        if v is not None and not v:
            raise ValueError("give at least one evaluation set, or leave eval_sets unset for the defaults")
        return v


CACHE_ENV = "SIMREAL_CACHE"  # where `simreal pretrain` keeps its detectors (default ~/.cache/simreal)


class PretrainParams(_Strict):
    """What a pretrained detector depends on (all in its cache key) and where the work runs (not in it)."""

    config: str = "configs/pretrain.yaml"
    # A catalog folder; None: the procedural library (retail 30, industrial 12, seed 0: what
    # `simreal sku generate` makes by default), generated once into the cache.
    catalog: str | None = None
    images: int = Field(1600, ge=1, le=1_000_000)
    render_size: int = Field(320, ge=32, le=4096)
    seed: int = Field(0, ge=0)
    model: str = "ssdlite320_mobilenet_v3_large"
    image_size: int = Field(256, ge=64, le=2048)
    steps: int = Field(1800, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(90, ge=0)
    # How, not what: excluded from the key.
    workers: int = Field(2, ge=1, le=512)  # render processes
    threads: int | None = Field(None, ge=1)  # torch CPU threads while training
    device: str = "auto"
    cache: str | None = None  # default $SIMREAL_CACHE or ~/.cache/simreal

    @field_validator("model")
    @classmethod
    def _full_model_name(cls, v: str) -> str:
        """``ssdlite`` and its full name are one model, so one cache key."""
        from synth.errors import ConfigError
        from train.config import resolve_model_name

        try:
            return resolve_model_name(v)
        except ConfigError as e:
            raise ValueError(e.problem) from None

    def config_path(self) -> Path:
        from synth.errors import ConfigError
        from synth.paths import REPO_ROOT

        path = Path(self.config)
        if not path.is_absolute() and not path.is_file():
            path = REPO_ROOT / path
        if not path.is_file():
            raise ConfigError(self.config, "pretraining recipe not found")
        return path

    def check(self) -> None:
        """Missing inputs as one-line errors before any flow starts (inside one, Prefect logs a traceback)."""
        from synth.errors import ConfigError

        self.config_path()
        if self.catalog and not Path(self.catalog).is_dir():
            raise ConfigError(self.catalog, "pretraining catalog not found")

    def root(self) -> Path:
        return Path(self.cache or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "simreal")
