"""Drawing what a detector got right and wrong, the same way in the training report and the comparison."""

from __future__ import annotations

OUTCOME_COLORS = {"tp": "#1a9850", "fp": "#d73027", "miss": "#fdae61"}


def draw_outcomes(
    ax,
    gts: list[dict],
    matched_gt: set[int],
    preds: list[dict],
    true_positives: set[int],
    *,
    box_lw: float,
    miss_lw: float,
    label=None,
) -> dict[str, int]:
    """Missed objects orange dotted, correct detections green solid, false positives red dashed, on `ax`;
    `label(pred)` (optional) is written outside each detection's box, see ``place_labels``. Returns the
    counts of each outcome."""
    from matplotlib.patches import Rectangle

    counts = {"tp": 0, "fp": 0, "miss": 0}
    for j, g in enumerate(gts):
        if j not in matched_gt:
            x, y, w, h = g["bbox"]
            ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=OUTCOME_COLORS["miss"], lw=miss_lw, ls=":"))
            counts["miss"] += 1
    kinds = []
    for k, p in enumerate(preds):
        x, y, w, h = p["bbox"]
        kind = "tp" if k in true_positives else "fp"
        kinds.append(kind)
        counts[kind] += 1
        ax.add_patch(
            Rectangle(
                (x, y), w, h, fill=False, ec=OUTCOME_COLORS[kind], lw=box_lw, ls="-" if kind == "tp" else "--"
            )
        )
    if label is not None:
        place_labels(ax, preds, kinds, label)
    return counts


def place_labels(ax, preds: list[dict], kinds: list[str], label) -> int:
    """Each detection's label just above its box (below it at the image's top edge), never inside it;
    highest score first, and a label that would cover one already placed is left out, so dense scenes
    stay readable. Returns how many labels were placed."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = []
    for k in sorted(range(len(preds)), key=lambda i: -preds[i].get("score", 0.0)):
        x, y, w, h = preds[k]["bbox"]
        style = {"facecolor": OUTCOME_COLORS[kinds[k]], "alpha": 0.85, "pad": 1, "lw": 0}
        text = ax.text(x, y, label(preds[k]), fontsize=6, color="white", va="bottom", bbox=style)
        extent = text.get_window_extent(renderer).expanded(1.1, 1.4)
        if extent.y1 > frame.y1:  # no room above the box: put it under the box instead
            text.set_y(y + h)
            text.set_va("top")
            extent = text.get_window_extent(renderer).expanded(1.1, 1.4)
        if any(extent.overlaps(other) for other in placed):
            text.remove()
            continue
        placed.append(extent)
    return len(placed)
