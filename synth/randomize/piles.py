"""Pile layouts: products cluttering a table (some in a basket) and industrial parts in a bin, a tray or
on a work table. Every object is dropped and settled by ``synth.randomize.physics``.

World frame: the resting surface's centre is at x = y = 0, the front edge faces -Y, the floor is z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synth.randomize.items import Item, ItemFactory
from synth.randomize.physics import CLEARANCE, CONTACT_TOLERANCE, SUPPORT_TAG, World
from synth.randomize.placed import LayoutResult, Placed, categorical, randint, support_box, uniform
from synth.randomize.settings import BinLayout, DistractorsConfig, ObjectsConfig, TableLayout
from synth.randomize.shapes import geometry_shape

MAX_SLIDES = 3  # times an unstable object slides off and drops again before another attempt
SLIDE_LIFT = 0.01  # lift before sliding, so the object does not scrape what it rests on
SLIDE_REACH = 0.5  # an unstable object slides its overhang plus this fraction of its footprint diagonal
TABLE_LEG = 0.05
WORKTOP_MARGIN = 0.25  # how far a work table extends around the pile area
OBJECT_TAG = "object"  # Body.tag of placed targets and distractors
FREE_SPOT_TRIES = 8  # drop points tried for an object that must land on the bare surface
WALL_GAP = 4 * CLEARANCE  # objects start their drop this far from walls, so they never graze one


@dataclass
class _Region:
    """A rectangle on a resting surface: where pile centres go and where objects may come to rest."""

    lo: np.ndarray  # (x, y)
    hi: np.ndarray
    floor_z: float  # height of the surface the objects rest on

    def contains(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        return bool(np.all(lo[:2] >= self.lo - 1e-6) and np.all(hi[:2] <= self.hi + 1e-6))


@dataclass
class _Pile:
    center: np.ndarray  # (x, y)
    spread: float
    region: _Region


def build_table(
    cfg: TableLayout,
    objects_cfg: ObjectsConfig,
    distractors: DistractorsConfig,
    factory: ItemFactory,
    rng: np.random.Generator,
) -> LayoutResult:
    width, depth = uniform(rng, cfg.width), uniform(rng, cfg.depth)
    height, thick = uniform(rng, cfg.height), uniform(rng, cfg.thickness)
    supports = [
        support_box((8.0, 8.0, 0.05), (0.0, 0.0, -0.025), "floor"),
        support_box((width, depth, thick), (0.0, 0.0, height - thick / 2), "table_top"),
    ]
    leg_h = height - thick - CLEARANCE
    for sx in (-1, 1):
        for sy in (-1, 1):
            supports.append(
                support_box(
                    (TABLE_LEG, TABLE_LEG, leg_h),
                    (sx * (width / 2 - TABLE_LEG), sy * (depth / 2 - TABLE_LEG), leg_h / 2),
                    "table_leg",
                )
            )
    m = min(cfg.edge_margin, width / 4, depth / 4)
    table = _Region(
        np.array([-width / 2 + m, -depth / 2 + m]), np.array([width / 2 - m, depth / 2 - m]), height
    )
    piles = _pile_centres(cfg, table, rng)
    basket_pile = None
    if rng.random() < cfg.basket_probability:
        bw = min(uniform(rng, cfg.basket_width), table.hi[0] - table.lo[0])
        bd = min(uniform(rng, cfg.basket_depth), table.hi[1] - table.lo[1])
        wall_t = uniform(rng, cfg.wall_thickness)
        cx = uniform(rng, (table.lo[0] + bw / 2, table.hi[0] - bw / 2))
        cy = uniform(rng, (table.lo[1] + bd / 2, table.hi[1] - bd / 2))
        walls, inner = _container(
            bw, bd, uniform(rng, cfg.basket_wall_height), wall_t, cx, cy, height, "basket"
        )
        supports += walls
        basket_pile = _Pile(np.array([cx, cy]), min(bw, bd) / 4, inner)
    items = _draw_items(objects_cfg, distractors, factory, rng)
    assigned = []
    for item in items:
        if basket_pile is not None and rng.random() < cfg.basket_share:
            assigned.append((item, basket_pile))
        else:
            assigned.append((item, piles[int(rng.integers(len(piles)))]))
    return _settle(cfg, supports, assigned, rng)


def build_bin(
    cfg: BinLayout,
    objects_cfg: ObjectsConfig,
    distractors: DistractorsConfig,
    factory: ItemFactory,
    rng: np.random.Generator,
) -> LayoutResult:
    kinds = sorted(cfg.container)
    weights = np.array([cfg.container[k] for k in kinds], dtype=np.float64)
    kind = kinds[categorical(rng, weights)]
    width, depth = uniform(rng, cfg.width), uniform(rng, cfg.depth)
    if kind == "table":
        top_w, top_d = width + 2 * WORKTOP_MARGIN, depth + 2 * WORKTOP_MARGIN
        supports = [support_box((top_w, top_d, 0.04), (0.0, 0.0, -0.02), "worktop")]
        region = _Region(
            np.array([-top_w / 2, -top_d / 2]) + 0.01, np.array([top_w / 2, top_d / 2]) - 0.01, 0.0
        )
        pile_area = _Region(np.array([-width / 2, -depth / 2]), np.array([width / 2, depth / 2]), 0.0)
    else:
        wall_h = uniform(rng, cfg.wall_height if kind == "bin" else cfg.tray_wall_height)
        wall_t = uniform(rng, cfg.wall_thickness)
        supports = [support_box((width + 3.0, depth + 3.0, 0.04), (0.0, 0.0, -0.02), "floor")]
        walls, region = _container(width, depth, wall_h, wall_t, 0.0, 0.0, 0.0, kind)
        supports += walls
        pile_area = region
    piles = _pile_centres(cfg, pile_area, rng, rest_region=region)
    items = _draw_items(objects_cfg, distractors, factory, rng)
    assigned = [(item, piles[int(rng.integers(len(piles)))]) for item in items]
    return _settle(cfg, supports, assigned, rng)


# ---- pieces --------------------------------------------------------------------------------------------
def _container(width, depth, wall_h, wall_t, cx, cy, base_z, surface) -> tuple[list[Placed], _Region]:
    """A floor slab inside four walls (none overlapping); returns them and the inner resting region."""
    floor_t = wall_t
    parts = [support_box((width, depth, floor_t), (cx, cy, base_z + floor_t / 2), surface)]
    h = wall_h + floor_t
    for s in (-1, 1):
        parts.append(
            support_box(
                (wall_t, depth + 2 * wall_t, h), (cx + s * (width + wall_t) / 2, cy, base_z + h / 2), surface
            )
        )
        parts.append(
            support_box((width, wall_t, h), (cx, cy + s * (depth + wall_t) / 2, base_z + h / 2), surface)
        )
    inner = _Region(
        np.array([cx - width / 2, cy - depth / 2]) + WALL_GAP,
        np.array([cx + width / 2, cy + depth / 2]) - WALL_GAP,
        base_z + floor_t,
    )
    return parts, inner


def _pile_centres(cfg, area: _Region, rng, rest_region: _Region | None = None) -> list[_Pile]:
    piles = []
    for _ in range(randint(rng, cfg.piles)):
        spread = uniform(rng, cfg.pile_spread)
        centre = np.array([uniform(rng, (area.lo[0], area.hi[0])), uniform(rng, (area.lo[1], area.hi[1]))])
        piles.append(_Pile(centre, spread, rest_region or area))
    return piles


def _draw_items(
    objects_cfg: ObjectsConfig, distractors: DistractorsConfig, factory: ItemFactory, rng
) -> list[Item]:
    """Targets then distractors, dropped in a random order so distractors end up inside the pile too."""
    items = [factory.target() for _ in range(randint(rng, objects_cfg.count))]
    items += [factory.distractor() for _ in range(randint(rng, distractors.count))]
    items = [i for i in items if i is not None]
    order = rng.permutation(len(items))
    return [items[int(k)] for k in order]


def _settle(cfg, supports: list[Placed], assigned, rng) -> LayoutResult:
    world = World()
    for s in supports:
        world.add(geometry_shape(s.geometry), s.pose, tag=SUPPORT_TAG)
    placed: list[Placed] = []
    for item, pile in assigned:
        pose = _drop_one(cfg, world, item, pile, rng)
        if pose is None:
            continue  # no stable spot found: the image has one object fewer
        world.add(item.shape, pose, tag=OBJECT_TAG)
        placed.append(Placed(item.role, item.geometry, pose, item.record, item.category))
    return LayoutResult(supports + placed, *_focus(world, placed, supports))


def _drop_one(cfg, world: World, item: Item, pile: _Pile, rng) -> np.ndarray | None:
    """Drop an item near its pile centre and let it slide off until it rests stably."""
    shape = item.shape
    region = pile.region
    may_stack = rng.random() < cfg.stacking
    for _ in range(cfg.attempts):
        upright = rng.random() < cfg.upright_probability
        if upright:
            base = np.eye(3)
        else:
            base = shape.stable_rotations[categorical(rng, shape.stable_probabilities)]
        yaw = rng.uniform(0.0, 2 * math.pi)
        c, s = math.cos(yaw), math.sin(yaw)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ base
        lo, hi = shape.rotated_bounds(rotation)
        com = rotation @ shape.center_mass
        # keep the whole footprint inside the region: origin limits from the rotated bounds
        xy_lo, xy_hi = region.lo - lo[:2], region.hi - hi[:2]
        if np.any(xy_lo > xy_hi):
            continue  # does not fit this way round
        origin = _drop_point(world, pile, com, lo, hi, xy_lo, xy_hi, free_only=not may_stack, rng=rng)
        pose = world.drop(shape, rotation, origin, floor_z=region.floor_z - 1e-3)
        for _slide in range(MAX_SLIDES + 1):
            if pose is None or not _inside(shape, pose, region):
                break
            support = world.support(shape, pose, resting_pose=not upright)
            if not may_stack and any(b.tag == OBJECT_TAG for b in support.carriers):
                break  # landed on another object but this one should lie on the surface: drop elsewhere
            if support.stable:
                return pose
            if _slide == MAX_SLIDES or support.slide_direction is None:
                break
            pose = world.move(shape, pose, (0.0, 0.0, 1.0), SLIDE_LIFT)
            reach = support.overhang + SLIDE_REACH * float(np.linalg.norm(shape.extents[:2]))
            pose = world.move(shape, pose, support.slide_direction, reach)
            pose = world.fall(shape, pose)
    return None


def _drop_point(world: World, pile: _Pile, com, lo, hi, xy_lo, xy_hi, free_only: bool, rng) -> np.ndarray:
    """Where to drop from: near the pile centre; for an object that must not stack, the first of a few
    draws whose footprint is clear of every placed object (saves drops that would land on one)."""
    objects = [b for b in world.bodies if b.tag == OBJECT_TAG] if free_only else []
    for _ in range(FREE_SPOT_TRIES if objects else 1):
        target = pile.center + rng.normal(0.0, pile.spread, 2) if pile.spread > 0 else pile.center.copy()
        origin = np.clip(target - com[:2], xy_lo, xy_hi)
        foot_lo, foot_hi = origin + lo[:2] - CONTACT_TOLERANCE, origin + hi[:2] + CONTACT_TOLERANCE
        if not any(np.all(b.lo[:2] <= foot_hi) and np.all(b.hi[:2] >= foot_lo) for b in objects):
            break
    return origin


def _inside(shape, pose: np.ndarray, region: _Region) -> bool:
    """Resting within the region's rectangle and not below its surface (i.e. not fallen off)."""
    v = shape.vertices @ pose[:3, :3].T + pose[:3, 3]
    lo, hi = v.min(axis=0), v.max(axis=0)
    return region.contains(lo, hi) and lo[2] >= region.floor_z - 1e-3


def _focus(world: World, placed: list[Placed], supports: list[Placed]):
    """The camera aims at the region of the targets (or of everything placed, or the top support)."""
    chosen = [b for b, p in zip(world.bodies[len(supports) :], placed, strict=True) if p.role == "target"]
    if not chosen:
        chosen = world.bodies[len(supports) :] or world.bodies[1:2]
    lo = np.min([b.lo for b in chosen], axis=0)
    hi = np.max([b.hi for b in chosen], axis=0)
    return (lo + hi) / 2, (hi - lo) / 2
