"""Parameters of the ``new-sku-dataset`` flow (``simreal sku dataset`` and the served deployment)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class NewSkuParams(BaseModel):
    """New meshes (or catalog ids) -> a dataset where each shows up in ``share`` of the images ->
    optionally a fit to real photos first, and an existing detector extended to the new classes."""

    model_config = ConfigDict(extra="forbid")
    meshes: list[str] = Field(min_length=1)  # mesh files to import, or ids of catalog entries
    names: list[str] | None = None  # display names, one per mesh (default: from the file name)
    categories: list[str] | None = None  # class labels, one per mesh (default: from the name)
    supercategory: Literal["retail", "industrial"] = "retail"
    units: Literal["auto", "m", "cm", "mm", "in"] = "auto"
    up: Literal["auto", "z", "y"] = "auto"
    catalog: str = "assets/catalog"
    images: int = Field(200, ge=1, le=10_000_000)
    share: float = Field(0.8, gt=0.0, le=1.0)  # each new SKU appears in at least this share of images
    others: Literal["labelled", "distractors"] = "labelled"  # what the other catalog items are
    layout: Literal["shelf", "table", "bin"] | None = None  # default: the supercategory's first
    config: str | None = None  # a render config instead of the layout's shipped one
    overrides: dict[str, Any] = Field(default_factory=dict)  # dotted-key config overrides
    seed: int = Field(0, ge=0)
    workers: int = Field(2, ge=1, le=512)
    out: str = "runs/new-sku"
    photos: str | None = None  # real photos (COCO set or folder): fit the config to them first
    probe_images: int = Field(40, ge=4, le=2000)
    fit_iterations: int = Field(3, ge=1, le=10)
    base_checkpoint: str | None = None  # a trained detector to extend with the new classes
    replay: str | None = None  # COCO json of the base detector's training set
    steps: int = Field(300, ge=1)
    batch_size: int = Field(4, ge=1)
    device: str = "auto"
    eval_sets: dict[str, str] | None = None  # name -> COCO json, scored before and after extending

    @model_validator(mode="after")
    def _one_label_per_mesh(self):
        for key in ("names", "categories"):
            given = getattr(self, key)
            if given is not None and len(given) != len(self.meshes):
                raise ValueError(f"{key}: give one per mesh ({len(self.meshes)}), got {len(given)}")
        return self
