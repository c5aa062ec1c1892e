"""Letterboxed photos: a photo of another aspect ratio padded into the square the detector sees.

Many real test sets come that way (55 % of Freiburg Groceries has mid-grey bars), and a detector that has
only ever seen full-frame renders meets the bars, and products cut by them, for the first time on the
photos. The scene builder draws the photo's rectangle (``synth.randomize.letterbox``), every backend
renders the full frame as usual, and ``apply_letterbox`` then paints the bars over colour, depth and
instance ids, above the backends, so annotation (which clips silhouettes to the same rectangle) sees what
the photo shows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from synth.scene import Frame, Letterbox


def photo_rectangle(width: int, height: int, aspect: float, portrait: bool) -> tuple[int, int, int, int]:
    """The largest centred rectangle of the photo's aspect (short / long side) inside width x height."""
    ratio = aspect if portrait else 1.0 / aspect  # photo width / height
    if ratio < width / height:
        w, h = max(1, round(height * ratio)), height
    else:
        w, h = width, max(1, round(width / ratio))
    x0, y0 = (width - w) // 2, (height - h) // 2
    return x0, y0, x0 + w, y0 + h


def outside(box: Letterbox, height: int, width: int) -> np.ndarray:
    """HxW bool: the bars."""
    bars = np.ones((height, width), dtype=bool)
    bars[box.y0 : box.y1, box.x0 : box.x1] = False
    return bars


def apply_letterbox(frame: Frame, box: Letterbox | None) -> Frame:
    """The frame as the letterboxed photo shows it: bars of the fill colour, no depth, no instance. A
    backend's amodal masks are left whole: annotation clips every silhouette to the photo's rectangle."""
    if box is None:
        return frame
    height, width = frame.instance_ids.shape
    bars = outside(box, height, width)
    rgb, depth, ids = frame.rgb.copy(), frame.depth.copy(), frame.instance_ids.copy()
    rgb[bars] = np.round(np.asarray(box.fill) * 255.0).astype(np.uint8)
    depth[bars] = 0.0
    ids[bars] = 0
    return replace(frame, rgb=rgb, depth=depth, instance_ids=ids)
