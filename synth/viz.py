"""``simreal viz DIR``: contact sheets of a COCO dataset with its labels drawn on, to check by eye that
masks, boxes and classes line up with the pixels.

Each tile shows one image with every annotation's modal mask filled in a translucent colour, its
amodal silhouette outlined in the same colour (when the dataset has amodal masks), its box, and
"category visibility%". Works on any COCO file with RLE or polygon masks (real data too).
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np

from synth.coco import load_coco, segmentation_to_mask
from synth.errors import AssetError, ConfigError
from synth.fsutil import atomic_write_bytes

TILE_WIDTH = 320


def _colour(k: int) -> tuple[int, int, int]:
    """Well-separated colours (golden-ratio hues), BGR for OpenCV."""
    r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _decode(seg, height: int, width: int) -> np.ndarray | None:
    return segmentation_to_mask(seg, height, width).astype(bool) if seg else None


def draw_annotations(
    image_bgr: np.ndarray, anns: list[dict], names: dict[int, str], width: int | None = None
) -> np.ndarray:
    """The image (resized to ``width``) with masks, amodal outlines, boxes and labels drawn on, BGR.

    Masks are resized with nearest neighbour, so every drawn mask pixel is a labelled pixel."""
    h, w = image_bgr.shape[:2]
    width = width or w
    s = width / w
    size = (width, max(1, round(h * s)))
    out = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST)

    def scaled(mask):
        return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)

    overlay = out.copy()
    for k, a in enumerate(anns):
        m = _decode(a.get("segmentation"), h, w)
        if m is not None:
            overlay[scaled(m)] = _colour(k)
    out = cv2.addWeighted(overlay, 0.45, out, 0.55, 0)
    for k, a in enumerate(anns):
        col = _colour(k)
        am = _decode(a.get("amodal_segmentation"), h, w)
        if am is not None:
            contours, _ = cv2.findContours(
                scaled(am).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
            )
            cv2.drawContours(out, contours, -1, col, 1, cv2.LINE_AA)
        x, y, bw, bh = (int(round(v * s)) for v in a["bbox"])
        cv2.rectangle(out, (x, y), (x + bw - 1, y + bh - 1), col, 1)
        label = names.get(a["category_id"], str(a["category_id"]))
        if "visibility" in a:
            label += f" {100 * a['visibility']:.0f}%"
        ty = y - 3 if y > 12 else y + bh + 11
        cv2.putText(out, label, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(out, label, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.35, col, 1, cv2.LINE_AA)
    return out


def contact_sheets(
    dataset: str | Path,
    out_dir: str | Path | None = None,
    per_sheet: int = 16,
    columns: int = 4,
    max_sheets: int = 4,
    annotations: str = "annotations.json",
    tile_width: int = TILE_WIDTH,
) -> list[Path]:
    """Write ``DIR/viz/sheet-000.png`` ... (or into ``out_dir``); returns the paths.

    Images are taken in id order, ``per_sheet`` per sheet, at most ``max_sheets`` sheets."""
    dataset = Path(dataset)
    for name, v in (("per_sheet", per_sheet), ("columns", columns), ("max_sheets", max_sheets)):
        if v < 1:
            raise ConfigError(name, "must be at least 1")
    source = load_coco(dataset / annotations if dataset.is_dir() else dataset, check_files=False)
    names = {c["id"]: c["name"] for c in source.categories}
    image_ids = sorted(source.images)[: per_sheet * max_sheets]
    out_dir = Path(out_dir) if out_dir is not None else source.ann_file.parent / "viz"
    paths = []
    for s in range(0, len(image_ids), per_sheet):
        tiles = []
        for image_id in image_ids[s : s + per_sheet]:
            path = source.image_path(image_id)
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise AssetError(path, "cannot read image")
            tile = draw_annotations(img, source.anns_by_image[image_id], names, tile_width)
            cv2.putText(
                tile, f"#{image_id}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
            )
            tiles.append(tile)
        tile_h = max(t.shape[0] for t in tiles)
        cols = min(columns, len(tiles))
        rows = -(-len(tiles) // cols)
        sheet = np.full((rows * (tile_h + 4) + 4, cols * (tile_width + 4) + 4, 3), 32, dtype=np.uint8)
        for k, t in enumerate(tiles):
            r, c = divmod(k, cols)
            y, x = 4 + r * (tile_h + 4), 4 + c * (tile_width + 4)
            sheet[y : y + t.shape[0], x : x + t.shape[1]] = t
        ok, png = cv2.imencode(".png", sheet)
        path = out_dir / f"sheet-{s // per_sheet:03d}.png"
        atomic_write_bytes(path, png.tobytes())
        paths.append(path)
    return paths
