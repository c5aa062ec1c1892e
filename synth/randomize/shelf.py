"""The retail shelf layout: bays of shelving with products standing in facings, as a store photo shows them.

World frame: the board fronts lie in the plane y = 0, the shelf extends to +Y, the aisle (and the camera)
is at -Y, the floor is z = 0. Products stand upright (their +Z up) with their local -Y face to the aisle.

A bay is planned level by level: groups of one SKU (``facings`` columns wide) fill the board width, the
level's clearance is its tallest product plus headroom, and the next board goes above it. Each column
holds ``depth_rows`` copies front to back. Then columns are positioned left to right with their *rotated*
footprints, so a product turned by its yaw jitter or pulled forward never overlaps a neighbour: for upright
boxes on one board, non-overlapping rotated footprints are an exact non-interpenetration test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from synth.randomize.items import Item, ItemFactory
from synth.randomize.physics import CLEARANCE
from synth.randomize.placed import LayoutResult, Placed, randint, support_box, translation, uniform
from synth.randomize.settings import DistractorsConfig, ShelfLayout

PANEL_THICKNESS = (0.015, 0.025)  # side panels (uprights)
BACK_THICKNESS = (0.008, 0.018)
FRONT_SETBACK = (0.003, 0.015)  # products stand this far behind the board front
ROW_GAP = (0.002, 0.012)  # between products of one column, front to back
BACK_MARGIN = 0.005  # products keep this far from the back panel
STRIP_THICKNESS = (0.004, 0.008)
STRIP_LIP = (0.0, 0.012)  # price strip standing above the board top
TAG_WIDTH = (0.03, 0.06)
TAG_THICKNESS = 0.0015


@dataclass(eq=False)
class _Group:
    item: Item
    facings: int


@dataclass(eq=False)
class _Level:
    board_bottom: float
    board_top: float
    headroom: float
    groups: list[_Group] = field(default_factory=list)


@dataclass(eq=False)
class _Bay:
    left: float
    right: float
    levels: list[_Level]
    top_board_bottom: float  # the cap board above the last level


def build_shelf(
    cfg: ShelfLayout, distractors: DistractorsConfig, factory: ItemFactory, rng: np.random.Generator
) -> LayoutResult:
    n_bays = randint(rng, cfg.sections)
    widths = [uniform(rng, cfg.section_width) for _ in range(n_bays)]
    depth = uniform(rng, cfg.depth)
    board_t = uniform(rng, cfg.board_thickness)
    panel_t = uniform(rng, PANEL_THICKNESS) if cfg.side_panels else 0.0
    back_t = uniform(rng, BACK_THICKNESS)
    base = uniform(rng, cfg.base_height)
    n_levels = randint(rng, cfg.levels)
    usable_depth = depth - FRONT_SETBACK[1] - BACK_MARGIN

    total_width = sum(widths) + (n_bays + 1) * panel_t
    x = -total_width / 2 + panel_t
    bays = []
    for w in widths:
        bays.append(_plan_bay(cfg, factory, rng, x, x + w, base, board_t, n_levels, usable_depth))
        x += w + panel_t
    _insert_distractor_groups(bays, distractors, factory, rng, usable_depth)

    objects: list[Placed] = []
    for bay in bays:
        objects += _place_bay_products(cfg, bay, depth, rng)
    objects = _cap_products(objects, cfg.max_products, rng)

    has_tags = rng.random() < cfg.price_tags
    tag_height = uniform(rng, cfg.price_tag_height)
    height = max(b.top_board_bottom + board_t for b in bays)
    objects += _structure(cfg, bays, widths, depth, board_t, panel_t, back_t, base, height, total_width)
    if has_tags:
        objects += _price_tags(bays, objects, tag_height, rng)

    products = [o for o in objects if o.role != "support"]
    bottom = min(b.levels[0].board_top for b in bays if b.levels) if products else base
    top = _top_of(products, height)
    center = np.array([0.0, 0.0, (bottom + top) / 2])
    half = np.array([total_width / 2 - panel_t, 0.0, max(0.05, (top - bottom) / 2)])
    return LayoutResult(objects, center, half)


# ---- planning ------------------------------------------------------------------------------------------
def _plan_bay(
    cfg: ShelfLayout, factory: ItemFactory, rng, left, right, base, board_t, n_levels, usable_depth
) -> _Bay:
    levels = []
    bottom = base
    for _ in range(n_levels):
        top = bottom + board_t
        headroom = uniform(rng, cfg.headroom)
        max_h = cfg.max_height - top - board_t - headroom  # room for products under the cap board
        if max_h <= 0.01:
            break
        level = _Level(bottom, top, headroom)
        level.groups = _plan_row(cfg, factory, rng, right - left, usable_depth, max_h)
        if not level.groups:
            break
        levels.append(level)
        tallest = max(g.item.size[2] for g in level.groups)
        bottom = top + CLEARANCE + tallest + headroom
    return _Bay(left, right, levels, bottom)


def _plan_row(cfg: ShelfLayout, factory: ItemFactory, rng, width, usable_depth, max_h) -> list[_Group]:
    groups, used = [], 0.0
    mean_gap = sum(cfg.facing_gap) / 2
    while used < width:
        item = factory.target(max_size=(width, usable_depth, max_h))
        if item is None:
            break
        n = randint(rng, cfg.facings)
        groups.append(_Group(item, n))
        used += n * (_footprint(item.size, 0.0)[0] + mean_gap)
    return groups


def _insert_distractor_groups(
    bays: list[_Bay], distractors: DistractorsConfig, factory: ItemFactory, rng, usable_depth
) -> None:
    """Turn a drawn number of facing groups into distractor products no taller than their level's own."""
    slots = [(level, i) for bay in bays for level in bay.levels for i in range(len(level.groups))]
    n = min(randint(rng, distractors.count), len(slots))
    if n == 0:
        return
    for k in rng.choice(len(slots), size=n, replace=False):
        level, i = slots[int(k)]
        tallest = max(g.item.size[2] for g in level.groups)
        width = level.groups[i].item.size[0] * 1.5
        item = factory.distractor(max_size=(width, usable_depth, tallest))
        if item is not None:
            level.groups[i] = _Group(item, level.groups[i].facings)


# ---- placing -------------------------------------------------------------------------------------------
def _footprint(size, yaw: float) -> tuple[float, float]:
    """Width (x) and depth (y) of the axis-aligned box around a size[0] x size[1] rectangle turned by yaw."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    return size[0] * c + size[1] * s, size[0] * s + size[1] * c


def _place_bay_products(cfg: ShelfLayout, bay: _Bay, depth: float, rng) -> list[Placed]:
    out: list[Placed] = []
    max_yaw = math.radians(cfg.yaw_jitter_deg)
    back_limit = depth - BACK_MARGIN
    for level in bay.levels:
        x = bay.left + uniform(rng, cfg.facing_gap)
        full = False
        for group in level.groups:
            size = group.item.size
            for _ in range(group.facings):
                n_deep = randint(rng, cfg.depth_rows)
                yaws = [uniform(rng, (-max_yaw, max_yaw)) for _ in range(n_deep)]
                feet = [_footprint(size, a) for a in yaws]
                col_w = max(f[0] for f in feet)
                if x + col_w > bay.right - CLEARANCE:
                    full = True
                    break
                if rng.random() >= cfg.gap_probability:
                    out += _column(cfg, group.item, level, x, col_w, yaws, feet, back_limit, rng)
                x += col_w + uniform(rng, cfg.facing_gap)
            if full:
                break
            x += uniform(rng, cfg.facing_gap)  # a little extra space between groups
    return out


def _column(
    cfg: ShelfLayout, item: Item, level: _Level, x: float, col_w: float, yaws, feet, back_limit, rng
) -> list[Placed]:
    """Products of one facing column, front to back; the front one may be pulled towards the aisle."""
    out = []
    y = uniform(rng, FRONT_SETBACK)
    z = level.board_top + CLEARANCE + item.size[2] / 2
    for row, (yaw, (w, d)) in enumerate(zip(yaws, feet, strict=True)):
        if y + d > back_limit:
            break
        cy = y + d / 2
        if row == 0 and rng.random() < cfg.pull_out_probability:
            # pulled forward, but never further than a third of its depth over the board edge
            cy = max(cy - uniform(rng, cfg.pull_out), d / 6)
        cx = x + col_w / 2 + uniform(rng, (-(col_w - w) / 2, (col_w - w) / 2))
        out.append(
            Placed(
                item.role,
                item.geometry,
                translation(cx, cy, z, yaw),
                item.record,
                item.category,
                depth_row=row,
            )
        )
        y += d + uniform(rng, ROW_GAP)
    return out


def _cap_products(objects: list[Placed], cap: int, rng) -> list[Placed]:
    """Keep at most ``cap`` products, removing the deepest rows first (they are the most hidden)."""
    if len(objects) <= cap:
        return objects
    order = np.lexsort((rng.random(len(objects)), [o.depth_row for o in objects]))
    keep = set(order[:cap].tolist())
    return [o for i, o in enumerate(objects) if i in keep]


def _top_of(products: list[Placed], default: float) -> float:
    tops = [o.pose[2, 3] + _half_height(o) for o in products]
    return max(tops, default=default)


def _half_height(o: Placed) -> float:
    g = o.geometry
    if g.box is not None:
        return g.box[2] / 2
    if g.cylinder is not None:
        return g.cylinder[1] / 2
    return o.record.size_m[2] / 2 if o.record else 0.0


# ---- structure -----------------------------------------------------------------------------------------
def _structure(
    cfg: ShelfLayout, bays, widths, depth, board_t, panel_t, back_t, base, height, total_width
) -> list[Placed]:
    """Floor, plinths, boards (one per level plus a cap), side panels and the back panel."""
    out = [support_box((total_width + 8.0, 8.0, 0.05), (0.0, -3.0, -0.025), "floor")]
    for bay, w in zip(bays, widths, strict=True):
        xc = (bay.left + bay.right) / 2
        if base > 1e-3:
            out.append(support_box((w, depth, base), (xc, depth / 2, base / 2), "shelf_board"))
        for level in bay.levels:
            out.append(
                support_box(
                    (w, depth, board_t), (xc, depth / 2, level.board_bottom + board_t / 2), "shelf_board"
                )
            )
        out.append(
            support_box(
                (w, depth, board_t), (xc, depth / 2, bay.top_board_bottom + board_t / 2), "shelf_board"
            )
        )
    if cfg.side_panels:
        x = -total_width / 2
        for i in range(len(bays) + 1):
            out.append(
                support_box((panel_t, depth, height), (x + panel_t / 2, depth / 2, height / 2), "shelf_panel")
            )
            if i < len(widths):
                x += panel_t + widths[i]
    if cfg.back_panel:
        out.append(
            support_box((total_width, back_t, height), (0.0, depth + back_t / 2, height / 2), "shelf_back")
        )
    return out


def _price_tags(bays: list[_Bay], objects: list[Placed], tag_height: float, rng) -> list[Placed]:
    """A strip on each product board's front edge, and a tag on it at the start of each facing group.

    The strip sits in front of the board (y < 0) and reaches at most half the headroom of the level below,
    so it cannot touch a product there, even one pulled over the board edge.
    """
    out = []
    products = [o for o in objects if o.role != "support"]
    for bay in bays:
        for li, level in enumerate(bay.levels):
            t = uniform(rng, STRIP_THICKNESS)
            lip = uniform(rng, STRIP_LIP)
            top = level.board_top + lip
            lowest = level.board_bottom - (bay.levels[li - 1].headroom / 2 if li > 0 else 0.0)
            bottom = max(top - tag_height, lowest)
            if lip > 0 and _overhanging(products, level, bay):  # a lip would hit them: no lip
                top = level.board_top
            if top - bottom < 0.005:
                continue
            y = -CLEARANCE - t / 2
            out.append(
                support_box(
                    (bay.right - bay.left, t, top - bottom),
                    ((bay.left + bay.right) / 2, y, (top + bottom) / 2),
                    "price_strip",
                )
            )
            out += _tags_on_strip(bay, level, products, y - t / 2, bottom, top, rng)
    return out


def _on_level(o: Placed, level: _Level, bay: _Bay) -> bool:
    return (
        bay.left <= o.pose[0, 3] <= bay.right
        and abs(o.pose[2, 3] - _half_height(o) - level.board_top) < 2 * CLEARANCE
    )


def _overhanging(products: list[Placed], level: _Level, bay: _Bay) -> bool:
    """Whether a product of this level stands over the board's front edge."""
    return any(_on_level(o, level, bay) and _front_y(o) < CLEARANCE for o in products)


def _front_y(o: Placed) -> float:
    size = _size(o)
    yaw = math.atan2(o.pose[1, 0], o.pose[0, 0])
    return o.pose[1, 3] - _footprint(size, yaw)[1] / 2


def _size(o: Placed) -> tuple[float, float, float]:
    g = o.geometry
    if g.box is not None:
        return g.box
    if g.cylinder is not None:
        return (2 * g.cylinder[0], 2 * g.cylinder[0], g.cylinder[1])
    return o.record.size_m


def _tags_on_strip(
    bay: _Bay, level: _Level, products: list[Placed], strip_front: float, bottom: float, top: float, rng
) -> list[Placed]:
    """Tags under the left edge of each run of front-row products of one SKU on this level."""
    row = sorted(
        (o for o in products if o.depth_row == 0 and _on_level(o, level, bay)), key=lambda o: o.pose[0, 3]
    )
    starts = []
    for i, o in enumerate(row):
        if i == 0 or row[i - 1].geometry != o.geometry:
            starts.append(o.pose[0, 3] - _footprint(_size(o), 0.0)[0] / 2)
    out = []
    h = (top - bottom) - 0.004
    if h < 0.005:
        return out
    for i, start in enumerate(starts):
        left = max(start, bay.left + 0.002)
        room = (starts[i + 1] if i + 1 < len(starts) else bay.right) - left - 0.004
        w = min(uniform(rng, TAG_WIDTH), room)
        if w < 0.01:
            continue
        out.append(
            support_box(
                (w, TAG_THICKNESS, h),
                (left + w / 2, strip_front - CLEARANCE - TAG_THICKNESS / 2, (top + bottom) / 2),
                "price_tag",
            )
        )
    return out
