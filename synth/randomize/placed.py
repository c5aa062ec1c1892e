"""What a layout produces: objects with world poses (not yet ids or materials) and the region of interest
that the camera and lights aim at."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from synth.catalog import SkuRecord
from synth.scene import Geometry

# Surface kinds a layout assigns to its supports; synth.randomize.materials knows how each one looks.
SurfaceKind = Literal[
    "floor",
    "worktop",
    "table_top",
    "table_leg",
    "shelf_board",
    "shelf_panel",
    "shelf_back",
    "price_strip",
    "price_tag",
    "basket",
    "bin",
    "tray",
]

# The layout frame used by every layout: right (+X), front (-Y, towards the viewer), up (+Z).
DEFAULT_FRAME = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).T  # columns


@dataclass(eq=False)
class Placed:
    role: Literal["target", "distractor", "support"]
    geometry: Geometry
    pose: np.ndarray  # 4x4 local-to-world
    record: SkuRecord | None = None  # catalog entry of targets and catalog distractors
    category: str | None = None
    surface: SurfaceKind | None = None  # supports: what the surface is made of
    depth_row: int = 0  # shelves: 0 = front row


@dataclass(eq=False)
class LayoutResult:
    objects: list[Placed]
    focus_center: np.ndarray  # world point the camera aims around
    focus_half: np.ndarray  # half extents of the aim region along the frame axes (right, front, up)
    frame: np.ndarray = field(default_factory=lambda: DEFAULT_FRAME.copy())  # columns: right, front, up

    def placed(self, role: str) -> list[Placed]:
        return [o for o in self.objects if o.role == role]


def translation(x: float, y: float, z: float, yaw: float = 0.0) -> np.ndarray:
    """Pose of an upright object turned by ``yaw`` radians about world Z."""
    c, s = math.cos(yaw), math.sin(yaw)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    pose[:3, 3] = (x, y, z)
    return pose


def support_box(size, center, surface: SurfaceKind) -> Placed:
    """An axis-aligned box support (board, panel, wall, floor) given its full size and centre."""
    size = tuple(float(s) for s in size)
    return Placed("support", Geometry(box=size), translation(*center), surface=surface)


def uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = bounds
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def randint(rng: np.random.Generator, bounds) -> int:
    lo, hi = bounds
    return int(lo) if lo == hi else int(rng.integers(lo, hi + 1))


def categorical(rng: np.random.Generator, weights) -> int:
    """Index drawn with probability proportional to ``weights`` (one uniform draw; ``Generator.choice``
    with ``p=`` costs ~50x more per call and this runs for every object)."""
    cumulative = np.cumsum(weights, dtype=np.float64)
    return int(
        min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(cumulative) - 1)
    )
