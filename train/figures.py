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
    `label(pred)` (optional) is written above each detection. Returns the counts of each outcome."""
    from matplotlib.patches import Rectangle

    counts = {"tp": 0, "fp": 0, "miss": 0}
    for j, g in enumerate(gts):
        if j not in matched_gt:
            x, y, w, h = g["bbox"]
            ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=OUTCOME_COLORS["miss"], lw=miss_lw, ls=":"))
            counts["miss"] += 1
    for k, p in enumerate(preds):
        x, y, w, h = p["bbox"]
        kind = "tp" if k in true_positives else "fp"
        counts[kind] += 1
        ax.add_patch(
            Rectangle(
                (x, y), w, h, fill=False, ec=OUTCOME_COLORS[kind], lw=box_lw, ls="-" if kind == "tp" else "--"
            )
        )
        if label is not None:
            ax.text(
                x,
                y - 2,
                label(p),
                fontsize=6,
                color="white",
                bbox={"facecolor": OUTCOME_COLORS[kind], "alpha": 0.8, "pad": 1, "lw": 0},
            )
    return counts
