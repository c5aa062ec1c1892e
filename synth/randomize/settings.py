"""The render configuration: what a config file under ``configs/`` may say, with every range checked.

A file is read with ``yaml.safe_load`` (no object construction) and validated here, so an unknown key, a
wrong type or an out-of-range value becomes a one-line :class:`ConfigError` naming the file and the key.

Conventions used by every section:

* A *range* is written ``[min, max]`` (or a single number meaning ``[x, x]``); values are drawn uniformly
  from it. Integer ranges include both ends.
* Lengths are metres, angles degrees, colour temperatures Kelvin, probabilities 0..1.
* Directions are given in the *layout frame*: ``right`` (along the shelf / table edge seen from the front),
  ``front`` (towards the viewer of a shelf, the front edge of a table or bin) and ``up`` (world +Z).
* Sections the file leaves out get defaults suited to its ``layout.kind`` (a shelf is photographed from the
  front, a bin from above), see ``LAYOUT_DEFAULTS``; keys the file sets always win.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from synth.config import (
    AnnotationConfig,
    CatalogSelection,
    ImageConfig,
    OutputConfig,
    format_validation_error,
    read_yaml,
)
from synth.errors import ConfigError

LAYOUT_KINDS = ("shelf", "table", "bin")
TEXTURE_KINDS = ("noise", "checker", "stripes", "gradient", "wood", "brushed", "flying")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
TextureKind = Literal["noise", "checker", "stripes", "gradient", "wood", "brushed", "flying"]
LightKind = Literal["point", "spot", "directional", "area"]


# ---- value types ---------------------------------------------------------------------------------------
def _scalar_to_pair(v):
    """Let ``2`` stand for ``[2, 2]`` so a fixed value needs no brackets."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (v, v)
    return v


def _ordered(v):
    if v[0] > v[1]:
        raise ValueError(f"range [{v[0]}, {v[1]}] has its minimum above its maximum")
    return v


def FloatRange(ge: float | None = None, le: float | None = None, gt: float | None = None):  # noqa: N802
    """A ``[min, max]`` pair of floats, each within the given bounds."""
    item = Annotated[float, Field(ge=ge, le=le, gt=gt, allow_inf_nan=False)]
    return Annotated[tuple[item, item], BeforeValidator(_scalar_to_pair), AfterValidator(_ordered)]


def IntRange(ge: int | None = None, le: int | None = None):  # noqa: N802
    item = Annotated[int, Field(ge=ge, le=le)]
    return Annotated[tuple[item, item], BeforeValidator(_scalar_to_pair), AfterValidator(_ordered)]


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Vec3 = tuple[float, float, float]
NonNegVec3 = tuple[
    Annotated[float, Field(ge=0.0, le=10.0)],
    Annotated[float, Field(ge=0.0, le=10.0)],
    Annotated[float, Field(ge=0.0, le=10.0)],
]


def _some_positive(weights: dict) -> dict:
    if weights and not any(w > 0 for w in weights.values()):
        raise ValueError("at least one weight must be positive")
    return weights


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- layouts -------------------------------------------------------------------------------------------
class ShelfLayout(_Strict):
    """Store shelving: bays of boards with products standing upright in facings (columns of identical
    products, several deep), some columns empty, some products pulled forward or turned."""

    kind: Literal["shelf"]
    sections: IntRange(1, 8) = (1, 2)  # bays side by side, separated by upright panels
    section_width: FloatRange(0.3, 3.0) = (0.9, 1.25)
    depth: FloatRange(0.15, 1.2) = (0.35, 0.5)  # board depth, front to back panel
    levels: IntRange(1, 12) = (3, 5)  # product levels per bay (fewer if max_height is reached)
    board_thickness: FloatRange(0.005, 0.1) = (0.02, 0.035)
    base_height: FloatRange(0.0, 0.6) = (0.08, 0.16)  # plinth under the lowest board
    headroom: FloatRange(0.005, 0.5) = (0.03, 0.1)  # free space above the tallest product of a level
    max_height: float = Field(2.1, ge=0.3, le=5.0)  # total shelf height limit
    facings: IntRange(1, 30) = (1, 4)  # side-by-side copies of one SKU in a group
    depth_rows: IntRange(1, 30) = (1, 3)  # copies behind each other (limited by the board depth)
    facing_gap: FloatRange(0.0, 0.1) = (0.002, 0.012)  # spacing between neighbouring columns
    gap_probability: Probability = 0.08  # a column is empty (out of stock)
    pull_out: FloatRange(0.0, 0.3) = (0.0, 0.03)  # how far a front product is pulled forward
    pull_out_probability: Probability = 0.3
    yaw_jitter_deg: float = Field(3.0, ge=0.0, le=45.0)  # products turned by up to this angle
    price_tags: Probability = 0.9  # chance that the boards carry price-tag strips
    price_tag_height: FloatRange(0.01, 0.12) = (0.025, 0.04)
    back_panel: bool = True
    side_panels: bool = True
    max_products: int = Field(150, ge=1, le=5000)  # cap on products; the deepest rows go first


class _PileLayout(_Strict):
    """Fields shared by layouts whose objects are dropped into piles and settled."""

    piles: IntRange(1, 20) = (1, 3)  # pile centres; each object picks one
    pile_spread: FloatRange(0.0, 2.0) = (0.03, 0.12)  # std-dev of an object's offset from its pile centre
    upright_probability: Probability = 0.0  # chance of the +Z-up pose instead of a random stable pose
    stacking: Probability = 1.0  # chance an object may come to rest on other objects, not only on supports
    attempts: int = Field(6, ge=1, le=50)  # drops tried per object before it is left out


class TableLayout(_PileLayout):
    """A cluttered table top, optionally with a basket that gets part of the products."""

    kind: Literal["table"]
    width: FloatRange(0.3, 4.0) = (0.8, 1.4)
    depth: FloatRange(0.3, 3.0) = (0.6, 0.9)
    height: FloatRange(0.2, 1.5) = (0.7, 0.78)
    thickness: FloatRange(0.005, 0.1) = (0.02, 0.04)
    edge_margin: float = Field(0.03, ge=0.0, le=0.5)  # objects keep this far from the table edge
    basket_probability: Probability = 0.3
    basket_share: Probability = 0.6  # fraction of objects dropped into the basket when there is one
    basket_width: FloatRange(0.1, 1.5) = (0.32, 0.45)
    basket_depth: FloatRange(0.1, 1.5) = (0.24, 0.32)
    basket_wall_height: FloatRange(0.01, 0.6) = (0.08, 0.15)
    wall_thickness: FloatRange(0.001, 0.05) = (0.003, 0.008)
    upright_probability: Probability = 0.7
    stacking: Probability = 0.25
    piles: IntRange(1, 20) = (2, 4)
    pile_spread: FloatRange(0.0, 2.0) = (0.1, 0.3)


class BinLayout(_PileLayout):
    """Industrial parts piled in a bin, a low tray or straight on a work table."""

    kind: Literal["bin"]
    container: dict[Literal["bin", "tray", "table"], Weight] = Field(
        default_factory=lambda: {"bin": 0.5, "tray": 0.3, "table": 0.2}
    )
    width: FloatRange(0.05, 3.0) = (0.2, 0.45)  # inner size of the bin / tray, or the pile area on a table
    depth: FloatRange(0.05, 3.0) = (0.15, 0.35)
    wall_height: FloatRange(0.005, 1.0) = (0.1, 0.25)  # bin walls
    tray_wall_height: FloatRange(0.002, 0.3) = (0.015, 0.05)
    wall_thickness: FloatRange(0.001, 0.05) = (0.003, 0.01)
    pile_spread: FloatRange(0.0, 2.0) = (0.01, 0.06)

    @model_validator(mode="after")
    def _container_weights(self):
        if not self.container or not any(w > 0 for w in self.container.values()):
            raise ValueError("container: at least one of bin, tray, table needs a positive weight")
        return self


Layout = Annotated[ShelfLayout | TableLayout | BinLayout, Field(discriminator="kind")]


# ---- what goes into the scene --------------------------------------------------------------------------
class ObjectsConfig(_Strict):
    count: IntRange(1, 1000) = (8, 20)  # targets per image (table and bin; a shelf is filled by facings)
    balance: Literal["sku", "category"] = "sku"  # "category": every class equally likely, then its SKUs
    weights: Annotated[dict[str, Weight], AfterValidator(_some_positive)] = Field(default_factory=dict)
    # ^ catalog id or glob pattern -> relative weight (default 1; first matching pattern wins; 0 = never)


class DistractorsConfig(_Strict):
    """Objects that are not targets: they occlude, clutter and are never annotated."""

    count: IntRange(0, 500) = (0, 4)  # per image (on a shelf: facing groups)
    catalog_probability: Probability = 0.5  # a non-selected catalog entry rather than a textured primitive
    primitives: list[Literal["box", "cylinder"]] = Field(
        default_factory=lambda: ["box", "cylinder"], min_length=1
    )
    size: FloatRange(0.002, 3.0) = (0.04, 0.22)  # primitives: extents drawn here; catalog distractors:
    # ^ only entries whose largest extent is at most the maximum are used


class LightingConfig(_Strict):
    count: IntRange(0, 16) = (1, 4)
    kinds: Annotated[dict[LightKind, Weight], AfterValidator(_some_positive)] = Field(
        default_factory=lambda: {"point": 1.0, "spot": 1.0, "area": 1.0, "directional": 0.5}
    )
    irradiance: FloatRange(0.001, 1000.0) = (1.0, 3.0)  # W/m^2 all lights together deliver at the scene
    # ^ centre; each light's power follows from its share and distance, so exposure is independent of scale
    temperature_k: FloatRange(1000.0, 40000.0) = (2700.0, 6500.0)  # blackbody colour
    placement: Literal["hemisphere", "box"] = "hemisphere"
    distance: FloatRange(0.05, 100.0) = (1.2, 3.0)  # hemisphere: metres from the scene centre
    elevation_deg: FloatRange(-90.0, 90.0) = (25.0, 85.0)  # hemisphere: above the horizon
    azimuth_deg: FloatRange(-360.0, 360.0) = (-180.0, 180.0)  # hemisphere: 0 = in front
    box_min: Vec3 = (-1.0, 0.3, 0.8)  # box: corner in the layout frame (right, front, up), from the centre
    box_max: Vec3 = (1.0, 2.0, 1.6)
    spot_angle_deg: FloatRange(2.0, 175.0) = (30.0, 80.0)  # full cone angle
    area_size: FloatRange(0.01, 10.0) = (0.3, 1.0)
    ambient: FloatRange(0.0, 10.0) = (0.1, 0.4)  # ambient intensity (its colour follows temperature_k)

    @model_validator(mode="after")
    def _box_ordered(self):
        if any(lo > hi for lo, hi in zip(self.box_min, self.box_max, strict=True)):
            raise ValueError("box_min must not exceed box_max on any axis")
        return self


class CameraConfig(_Strict):
    """The camera orbits a look-at point chosen in the layout's region of interest."""

    distance: FloatRange(0.05, 100.0) = (0.8, 1.6)  # metres from the look-at point (limits, with fill)
    fill: FloatRange(0.02, 1.0) | None = None  # instead: distance at which the region of interest spans
    # ^ this fraction of the image height (scales the view to the objects, e.g. small parts vs large)
    elevation_deg: FloatRange(-89.0, 90.0) = (20.0, 60.0)  # above the horizontal; 90 = straight down
    azimuth_deg: FloatRange(-180.0, 180.0) = (-30.0, 30.0)  # 0 = from the layout's front
    roll_deg: FloatRange(-180.0, 180.0) = (-3.0, 3.0)
    yfov_deg: FloatRange(5.0, 120.0) = (40.0, 60.0)  # vertical field of view
    look_at_jitter: NonNegVec3 = (0.03, 0.03, 0.03)  # uniform +- metres per layout axis (right, front, up)
    min_targets_in_view: Probability = 0.5  # resample the camera until this fraction of targets is framed
    znear: float = Field(0.01, gt=0.0, le=1.0)
    zfar: float = Field(30.0, gt=1.0, le=1000.0)


class MaterialsConfig(_Strict):
    """Realistic looks (catalog textures and finishes) versus domain-randomized "flying" textures."""

    mode: Literal["realistic", "randomized", "mix"] = "mix"
    randomized_probability: Probability = 0.3  # mix: chance that an image is domain-randomized
    texture_kinds: list[TextureKind] = Field(
        default_factory=lambda: ["flying", "noise", "checker", "stripes", "gradient"], min_length=1
    )
    roughness_jitter: float = Field(0.1, ge=0.0, le=1.0)  # +- around the catalog value
    metallic_jitter: float = Field(0.05, ge=0.0, le=1.0)
    color_jitter: float = Field(0.05, ge=0.0, le=0.5)  # relative brightness / tint change per channel


class BackgroundConfig(_Strict):
    """What is seen behind the scene: a user photo, a procedural texture, or a plain colour."""

    photos_dir: str | None = None  # folder of .jpg/.png backdrops (relative to the working directory)
    photo_probability: Probability = 1.0  # with photos_dir: chance of a photo instead of a pattern
    procedural_kinds: list[TextureKind] = Field(
        default_factory=lambda: ["noise", "gradient", "checker", "stripes", "wood", "brushed", "flying"]
    )
    brightness: FloatRange(0.0, 1.0) = (0.15, 0.85)  # plain colour / palette brightness


class LetterboxConfig(_Strict):
    """Photos that reach the detector padded to a square: the photo keeps its aspect ratio inside the frame
    and plain bars fill the rest (Freiburg Groceries: 55 % of the photos, mid-grey, left and right for an
    upright photo, top and bottom for a landscape one). The scene is framed as before and the image is cut
    to the photo's rectangle, so the bars hide part of the view, as the frame of the real photo did."""

    probability: Probability = 0.0  # chance that an image is a letterboxed photo
    aspects: list[Annotated[float, Field(gt=0.05, le=1.0)]] = Field(
        default_factory=lambda: [0.75], min_length=1
    )
    # ^ photo short side / long side, one drawn per letterboxed image (3:4 = 0.75, 9:16 = 0.5625)
    weights: list[Weight] | None = None  # relative chance of each aspect; default equal
    portrait_probability: Probability = 0.5  # upright photo (bars left and right) rather than landscape
    fill: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5  # grey level of the bars

    @model_validator(mode="after")
    def _weights_match(self):
        if self.weights is not None:
            if len(self.weights) != len(self.aspects):
                raise ValueError(f"{len(self.weights)} weights for {len(self.aspects)} aspects")
            if not any(w > 0 for w in self.weights):
                raise ValueError("at least one weight must be positive")
        return self


class RenderConfig(_Strict):
    image: ImageConfig = Field(default_factory=ImageConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    catalog: CatalogSelection = Field(default_factory=CatalogSelection)
    layout: Layout
    objects: ObjectsConfig = Field(default_factory=ObjectsConfig)
    distractors: DistractorsConfig = Field(default_factory=DistractorsConfig)
    lighting: LightingConfig = Field(default_factory=LightingConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    materials: MaterialsConfig = Field(default_factory=MaterialsConfig)
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    letterbox: LetterboxConfig = Field(default_factory=LetterboxConfig)

    _source: str = PrivateAttr(default="<render config>")

    @model_validator(mode="before")
    @classmethod
    def _layout_defaults(cls, data):
        return apply_layout_defaults(data)

    @property
    def source(self) -> str:
        """The file this config came from, for error messages raised later (e.g. at scene build time)."""
        return self._source


# Per layout kind: defaults for sections the file does not set (merged key by key under the file's values).
LAYOUT_DEFAULTS: dict[str, dict[str, dict]] = {
    "shelf": {
        "camera": {
            "distance": [0.7, 1.6],
            "elevation_deg": [-8.0, 18.0],
            "azimuth_deg": [-25.0, 25.0],
            "roll_deg": [-3.0, 3.0],
            "yfov_deg": [40.0, 60.0],
            "look_at_jitter": [0.05, 0.02, 0.05],
            "min_targets_in_view": 0.15,
        },
        "lighting": {
            "placement": "box",
            "box_min": [-1.0, 0.3, 0.6],
            "box_max": [1.0, 2.0, 1.4],
            "kinds": {"area": 2.0, "point": 1.0, "spot": 0.5, "directional": 0.3},
        },
    },
    "table": {
        "camera": {
            "distance": [0.6, 1.3],
            "elevation_deg": [30.0, 75.0],
            "azimuth_deg": [-180.0, 180.0],
            "min_targets_in_view": 0.6,
        },
        "lighting": {"placement": "hemisphere", "distance": [1.2, 2.5], "elevation_deg": [30.0, 85.0]},
    },
    "bin": {
        "camera": {
            "distance": [0.12, 1.5],
            "fill": [0.35, 0.85],
            "elevation_deg": [55.0, 90.0],
            "azimuth_deg": [-180.0, 180.0],
            "roll_deg": [-180.0, 180.0],
            "yfov_deg": [35.0, 55.0],
            "look_at_jitter": [0.02, 0.02, 0.0],
            "min_targets_in_view": 0.7,
        },
        "lighting": {"placement": "hemisphere", "distance": [0.8, 2.0], "elevation_deg": [40.0, 88.0]},
        "distractors": {"size": [0.005, 0.05]},
    },
}


def apply_layout_defaults(data):
    """Merge ``LAYOUT_DEFAULTS[layout.kind]`` under the sections of a raw config mapping."""
    if not isinstance(data, dict):
        return data
    layout = data.get("layout")
    kind = layout.get("kind") if isinstance(layout, dict) else None
    defaults = LAYOUT_DEFAULTS.get(kind) if isinstance(kind, str) else None
    if not defaults:
        return data
    merged = dict(data)
    for section, values in defaults.items():
        given = merged.get(section)
        if given is None:
            merged[section] = copy.deepcopy(values)
        elif isinstance(given, dict):
            merged[section] = {**copy.deepcopy(values), **given}
    return merged


# ---- loading -------------------------------------------------------------------------------------------
class _UntaggedErrors:
    """A ValidationError's error list with discriminated-union tags removed from the key paths, so a
    problem in ``layout.levels`` is reported as that, not as ``layout.shelf.levels``."""

    def __init__(self, err: ValidationError):
        self._errors = []
        for e in err.errors():
            loc = list(e["loc"])
            if len(loc) >= 2 and loc[0] == "layout" and loc[1] in LAYOUT_KINDS:
                del loc[1]
            if loc and loc[-1] == "[key]":  # a mapping key that is not allowed: name the key itself
                loc.pop()
                e = dict(e, msg=f"not an allowed key: {e['msg']}")
            e = dict(e, loc=tuple(loc))
            if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
                e["loc"] = (*e["loc"], "kind")
                tag = e.get("ctx", {}).get("tag")
                e["msg"] = (
                    f"unknown layout kind {tag!r}" if e["type"] == "union_tag_invalid" else "missing"
                ) + f" (expected one of: {', '.join(LAYOUT_KINDS)})"
            self._errors.append(e)

    def errors(self):
        return self._errors


def parse_render_config(data: dict, source: str | Path = "<render config>") -> RenderConfig:
    """Validate an already-parsed mapping; errors name ``source`` and the offending key."""
    try:
        cfg = RenderConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, format_validation_error(source, _UntaggedErrors(e))) from None
    cfg._source = str(source)
    _check_paths(cfg)
    return cfg


def load_render_config(path: str | Path) -> RenderConfig:
    """Read and validate a render config file (one-line ConfigError naming file and key on bad input)."""
    return parse_render_config(read_yaml(path), path)


def list_photos(folder: str | Path) -> list[Path]:
    """Backdrop photos of a folder, sorted by name so the choice by index is stable across machines."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def _check_paths(cfg: RenderConfig) -> None:
    folder = cfg.background.photos_dir
    if folder is None:
        return
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(cfg.source, f"key 'background.photos_dir': folder not found: {path}")
    if not list_photos(path):
        raise ConfigError(
            cfg.source, f"key 'background.photos_dir': no {'/'.join(PHOTO_SUFFIXES)} images in {path}"
        )
