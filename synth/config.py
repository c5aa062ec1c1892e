"""Render configuration: YAML parsed with ``yaml.safe_load`` (no object construction) and validated by
pydantic, so an unknown key, a wrong type or an out-of-range value is a one-line error naming the file
and the key.

The randomization sections (layout, lighting, camera, materials, background, distractors) are defined in
``synth.randomize.settings``; this module holds the top level and the parts the writer needs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synth.errors import ConfigError
from synth.paths import find_input
from synth.scene import dumps_canonical


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageConfig(_Strict):
    width: int = Field(640, ge=16, le=8192)
    height: int = Field(480, ge=16, le=8192)


class OutputConfig(_Strict):
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = Field(92, ge=50, le=100)
    shard_size: int = Field(50, ge=1, le=100000)  # images per shard (the unit of resume and fan-out)
    write_depth: bool = True  # 16-bit PNG depth in millimetres


class AnnotationConfig(_Strict):
    min_visibility: float = Field(0.1, ge=0.0, le=1.0)  # modal / amodal pixel fraction
    min_area_px: int = Field(16, ge=1)  # visible pixels
    amodal: bool = True  # also store amodal masks / boxes
    # Drop targets cut by the image border: truncation is the share of the box around the object's projected
    # vertices that lies outside the image (KITTI's measure). Photo annotators often leave products cut by
    # the frame unlabelled; left labelled in renders, the detector learns to box them. 1 keeps every object.
    max_truncation: float = Field(1.0, ge=0.0, le=1.0)


class CatalogSelection(_Strict):
    root: str = "assets/catalog"
    supercategory: Literal["retail", "industrial", "any"] = "any"
    include: list[str] = Field(default_factory=list)  # catalog ids or glob patterns; empty = all
    exclude: list[str] = Field(default_factory=list)
    class_agnostic: str | None = None  # e.g. "product": every target gets this one category


def format_validation_error(path: str | Path, err: ValidationError) -> str:
    e = err.errors()[0]
    key = ".".join(str(x) for x in e["loc"]) or "<root>"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"key '{key}': {msg}{more}"


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping; a relative path missing from the current folder is looked up in the repository
    (shipped configs work from any folder)."""
    path = find_input(path)
    if not path.is_file():
        raise ConfigError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(path, f"not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "top level must be a mapping of keys")
    return data


def validate(model: type[BaseModel], data: dict, path: str | Path):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(path, format_validation_error(path, e)) from None


def set_dotted(
    data: dict, key: str, value, where: str | Path | None, problem: str = "'{part}' is not a section"
) -> None:
    """``set_dotted(d, "image.width", 320, where)`` sets d["image"]["width"], creating sections as needed:
    the one way a dotted-key override (render, train, flows) reaches its config. A step through a value
    that is not a section raises ConfigError(where, ``problem`` with ``{part}`` filled in)."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(where, problem.format(part=part))
    node[parts[-1]] = value


def config_hash(cfg: BaseModel) -> str:
    """Hash of the validated config (defaults filled in), so equivalent files hash the same."""
    return hashlib.sha256(dumps_canonical(cfg.model_dump(mode="json")).encode()).hexdigest()[:16]
