"""Letterbox bars in real photos, measured so that renders can carry the same (``letterbox`` section).

A bar is a run of whole rows (top, bottom) or columns (left, right) at the image border whose pixels are
one plain colour, with its opposite bar (padding is centred). The photo inside them gives its aspect
(short side / long side); photos are grouped by aspect, and the groups become the section's ``aspects``
and ``weights``. Photos are read as they are,
without resizing, so a bar is found to the pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.errors import ConfigError

TOLERANCE = 8  # grey levels a bar's pixel may differ from its colour (JPEG)
PLAIN_SHARE = 0.9  # share of a line's pixels within that for the line to be bar
EDGE_TOLERANCE = 12.0  # mean grey levels a ringing line next to a bar may differ from its colour
MIN_BAR_PX = 2  # thinner runs are an edge of the photo, not a bar
MIN_SHARE = 0.05  # below this share of letterboxed photos a set is treated as having no bars
ASPECT_GAP = 0.05  # photos whose aspects differ by more start another group
MIN_GROUP = 0.05  # groups smaller than this share of the letterboxed photos are left out


def _run(lines: np.ndarray) -> int:
    """How many of the leading lines (each [n, 3]) are bar: the first ``PLAIN_SHARE`` of whose pixels are
    within ``TOLERANCE`` of the first line's colour decide that there is a bar; it then extends while a
    line's mean deviation stays under ``EDGE_TOLERANCE`` (JPEG rings where a bar meets the photo, over
    up to one 16 px chroma block)."""
    first = np.median(lines[0], axis=0)
    deviation = np.abs(lines - first).max(axis=2)  # [lines, n]
    plain = (deviation <= TOLERANCE).mean(axis=1) >= PLAIN_SHARE
    if not plain[0]:
        return 0
    strict = int(np.argmin(plain)) if not plain.all() else len(lines)
    if strict < MIN_BAR_PX:
        return strict
    ringing = deviation[strict:].mean(axis=1) <= EDGE_TOLERANCE
    return strict + (int(np.argmin(ringing)) if not ringing.all() else len(ringing))


def bars_of(rgb: np.ndarray) -> tuple[tuple[int, int, int, int], float] | None:
    """((left, top, right, bottom) bar widths in px, grey level 0..1 of the bars), or None without bars."""
    a = rgb.astype(np.int16)
    left, right = _run(a.transpose(1, 0, 2)), _run(a[:, ::-1].transpose(1, 0, 2))
    top, bottom = _run(a), _run(a[::-1])
    # padding is centred: a bar needs its opposite one (a plain wall along one edge is not a bar)
    sides = (left, right) if min(left, right) >= MIN_BAR_PX else (0, 0)
    ends = (top, bottom) if min(top, bottom) >= MIN_BAR_PX else (0, 0)
    widths = [sides[0], ends[0], sides[1], ends[1]]
    h, w = a.shape[:2]
    if not any(widths) or widths[0] + widths[2] >= w or widths[1] + widths[3] >= h:
        return None
    corner = (0, 0) if widths[0] or widths[1] else (h - 1, w - 1)
    return (widths[0], widths[1], widths[2], widths[3]), float(a[corner].mean() / 255.0)


def measure_letterbox(images: list[Path]) -> dict | None:
    """The ``letterbox`` config section that reproduces the photos' bars, or None when under
    ``MIN_SHARE`` of them have any."""
    import cv2

    if not images:
        raise ConfigError("photos", "no images to measure letterbox bars on")
    aspects, portrait, fills = [], [], []
    for path in images:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConfigError(path, "photos: not a readable image")
        found = bars_of(bgr[..., ::-1])
        if found is None:
            continue
        (left, top, right, bottom), fill = found
        h, w = bgr.shape[:2]
        pw, ph = w - left - right, h - top - bottom
        aspects.append(min(pw, ph) / max(pw, ph))
        portrait.append(pw < ph)
        fills.append(fill)
    if len(aspects) < MIN_SHARE * len(images):
        return None
    values = np.sort(aspects)
    groups = np.split(values, np.flatnonzero(np.diff(values) > ASPECT_GAP) + 1)
    kept = [g for g in groups if len(g) >= MIN_GROUP * len(values)]
    return {
        "probability": round(len(aspects) / len(images), 3),
        "aspects": [round(float(np.median(g)), 3) for g in kept],
        "weights": [len(g) for g in kept],
        "portrait_probability": round(float(np.mean(portrait)), 3),
        "fill": round(float(np.median(fills)), 3),
    }
