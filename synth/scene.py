"""The backend-neutral scene description: plain, JSON-serialisable data that every renderer consumes.

Conventions (shared by every backend and by annotation):

* World units are metres, world +Z is up.
* Every ``pose`` is a 4x4 row-major homogeneous matrix mapping local coordinates to world coordinates.
* The camera pose is camera-to-world in the OpenGL convention: the camera looks down its local -Z,
  +Y is up in the image, +X is right (pyrender and Blender both use this natively).
* Intrinsics are pinhole, in pixels: ``fx, fy`` focal lengths, ``cx, cy`` the principal point measured
  from the top-left image corner, where pixel (u, v) covers [u, u+1) x [v, v+1). An ideal centred camera
  has ``cx = width / 2``, ``cy = height / 2``.
* A camera-space point (x, y, z) with z < 0 projects to u = cx + fx * x / -z, v = cy - fy * y / -z.
* Instance ids are positive integers unique within a scene; 0 in an id image means "no object".

Backends never sample randomness: everything random (poses, colours, procedural texture seeds) is
decided by the randomizers and written here, so a scene re-renders identically by any backend.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCENE_VERSION = 1

Matrix4 = Annotated[list[list[float]], Field(min_length=4, max_length=4)]
RGB = tuple[float, float, float]
RGBA = tuple[float, float, float, float]


def identity() -> list[list[float]]:
    return np.eye(4).tolist()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextureSpec(_Strict):
    """An image texture: a file on disk, or a procedural pattern regenerated from its seed.

    Procedural kinds are produced by ``synth.textures.make_texture`` so every backend sees the same pixels.
    """

    file: str | None = None
    procedural: Literal["noise", "checker", "stripes", "gradient", "wood", "brushed", "flying"] | None = None
    seed: int = 0
    colors: list[RGB] = Field(default_factory=list)
    scale: float = 1.0  # pattern frequency multiplier
    size: int = 256  # side of the generated square image in pixels
    repeat: float = 1.0  # UV tiling factor when mapped onto a surface


class Material(_Strict):
    """Principled (metallic-roughness) material. ``texture=None`` with ``use_mesh_texture`` keeps the
    mesh's own texture (e.g. a product label); otherwise ``texture`` replaces it."""

    base_color: RGBA = (0.8, 0.8, 0.8, 1.0)
    metallic: float = Field(0.0, ge=0.0, le=1.0)
    roughness: float = Field(0.5, ge=0.0, le=1.0)
    specular: float = Field(0.5, ge=0.0, le=1.0)
    texture: TextureSpec | None = None
    use_mesh_texture: bool = True


class Geometry(_Strict):
    """Either a mesh file (GLB/OBJ/...) or an analytic primitive, in local coordinates (metres)."""

    mesh: str | None = None  # path to a normalised mesh, usually a catalog entry's mesh.glb
    box: tuple[float, float, float] | None = None  # full extents, centred at the local origin
    plane: tuple[float, float] | None = None  # extents in local X, Y; normal +Z
    cylinder: tuple[float, float] | None = None  # (radius, height) along local Z, centred

    @field_validator("plane", "box", "cylinder")
    @classmethod
    def _positive(cls, v):
        if v is not None and any(x <= 0 for x in v):
            raise ValueError("primitive dimensions must be positive")
        return v

    def kind(self) -> str:
        for k in ("mesh", "box", "plane", "cylinder"):
            if getattr(self, k) is not None:
                return k
        raise ValueError("geometry has neither a mesh nor a primitive")


class SceneObject(_Strict):
    """Something in the scene. Only ``role == 'target'`` objects become COCO annotations, but every
    object has an instance id so occlusion by shelves, bins or distractors is accounted for exactly."""

    instance_id: int = Field(ge=1, le=65535)
    role: Literal["target", "distractor", "support"] = "target"
    sku_id: str | None = None
    category: str | None = None  # COCO class label; required for targets
    geometry: Geometry
    pose: Matrix4 = Field(default_factory=identity)
    scale: float = Field(1.0, gt=0)
    material: Material | None = None  # None: the mesh's own material / catalog hints

    @field_validator("category")
    @classmethod
    def _nonempty(cls, v):
        if v is not None and not v.strip():
            raise ValueError("category must not be empty")
        return v


class Camera(_Strict):
    width: int = Field(ge=8, le=8192)
    height: int = Field(ge=8, le=8192)
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    znear: float = Field(0.01, gt=0)
    zfar: float = Field(50.0, gt=0)
    pose: Matrix4 = Field(default_factory=identity)  # camera-to-world, OpenGL axes

    @classmethod
    def from_fov(cls, width: int, height: int, yfov_deg: float, pose=None, **kw) -> Camera:
        fy = 0.5 * height / math.tan(math.radians(yfov_deg) / 2)
        return cls(
            width=width,
            height=height,
            fx=fy,
            fy=fy,
            cx=width / 2,
            cy=height / 2,
            pose=pose if pose is not None else identity(),
            **kw,
        )

    @property
    def yfov(self) -> float:
        return 2 * math.atan(self.height / (2 * self.fy))

    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)


class Letterbox(_Strict):
    """The photo's rectangle inside the image, in pixels ([x0, x1) x [y0, y1)); outside it the image is a
    plain bar of ``fill``, with no depth and no instance. Annotation treats its edges as the image border."""

    x0: int = Field(ge=0)
    y0: int = Field(ge=0)
    x1: int = Field(gt=0)
    y1: int = Field(gt=0)
    fill: RGB = (0.5, 0.5, 0.5)

    @model_validator(mode="after")
    def _not_empty(self):
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"empty photo rectangle [{self.x0}, {self.x1}) x [{self.y0}, {self.y1})")
        return self


class Light(_Strict):
    kind: Literal["point", "spot", "directional", "area"]
    pose: Matrix4 = Field(default_factory=identity)  # lights shine down their local -Z
    color: RGB = (1.0, 1.0, 1.0)
    intensity: float = Field(gt=0)  # watts for point/spot/area, W/m^2 (irradiance) for directional
    spot_angle: float = Field(math.radians(45), gt=0, lt=math.pi)  # full cone angle (spot)
    spot_blend: float = Field(0.15, ge=0, le=1)
    size: float = Field(
        0.5, gt=0
    )  # side of an area light, or bulb diameter of a point/spot (soft shadows), m


class Environment(_Strict):
    """What is seen behind everything and the light that comes from it."""

    background_color: RGB = (0.5, 0.5, 0.5)
    background_texture: TextureSpec | None = None  # drawn as a backdrop plane/image
    # Uniform ambient light; with an HDRI or sky (path-traced backends) they tint and scale the
    # environment's own light instead (intensity 1.0 = as stored).
    ambient_color: RGB = (1.0, 1.0, 1.0)
    ambient_intensity: float = Field(0.3, ge=0)
    hdri: str | None = None  # equirectangular HDR/EXR for image-based lighting (path-traced backends)
    sky: bool = False  # procedural sky for path-traced backends


class Scene(_Strict):
    version: int = SCENE_VERSION
    seed: int = 0
    index: int = 0
    config_hash: str = ""
    camera: Camera
    lights: list[Light] = Field(default_factory=list)
    objects: list[SceneObject] = Field(default_factory=list)
    environment: Environment = Field(default_factory=Environment)
    letterbox: Letterbox | None = None

    @field_validator("objects")
    @classmethod
    def _unique_ids(cls, objs):
        ids = [o.instance_id for o in objs]
        if len(ids) != len(set(ids)):
            raise ValueError("instance ids must be unique within a scene")
        for o in objs:
            if o.role == "target" and not o.category:
                raise ValueError(f"target instance {o.instance_id} has no category")
        return objs

    @model_validator(mode="after")
    def _letterbox_inside(self):
        box, cam = self.letterbox, self.camera
        if box is not None and (box.x1 > cam.width or box.y1 > cam.height):
            rect = f"[{box.x0}, {box.x1}) x [{box.y0}, {box.y1})"
            raise ValueError(f"letterbox {rect} leaves the {cam.width}x{cam.height} image")
        return self

    def targets(self) -> list[SceneObject]:
        return [o for o in self.objects if o.role == "target"]

    def to_json(self) -> str:
        # a scene without bars is written as before the field existed
        return self.model_dump_json(indent=None, exclude={"letterbox"} if self.letterbox is None else None)

    @classmethod
    def from_json(cls, text: str) -> Scene:
        return cls.model_validate_json(text)

    @classmethod
    def load(cls, path: str | Path) -> Scene:
        return cls.from_json(Path(path).read_text())

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


@dataclass
class Frame:
    """What a backend returns for one scene.

    rgb: HxWx3 uint8. depth: HxW float32 metres along the camera axis, 0 where nothing was hit.
    instance_ids: HxW uint16, exact (never blended at edges), 0 = nothing.
    amodal: optional per-instance full silhouettes (HxW bool) if the backend renders them; otherwise
    annotation computes them from the scene geometry.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance_ids: np.ndarray
    amodal: dict[int, np.ndarray] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def pose_matrix(pose) -> np.ndarray:
    return np.asarray(pose, dtype=np.float64).reshape(4, 4)


def dumps_canonical(obj) -> str:
    """Stable JSON (sorted keys) for hashing configs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
