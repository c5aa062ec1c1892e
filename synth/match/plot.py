"""The before/after figure of a fit: each statistic's distribution for the real photos, the unfitted
config and the fitted one, with the Wasserstein distances in the panel titles."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from synth.fsutil import atomic_write_bytes

LABELS = {
    "rel_side": "relative longer side of boxes",
    "boxes_per_image": "boxes per image",
    "center_x": "box centre x / W",
    "center_y": "box centre y / H",
    "brightness": "brightness (mean luma)",
    "warmth": "warmth (mean R - mean B)",
}


def plot_fit(result, out_png: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in LABELS if k in result.real and len(result.real[k])]
    cols = 3
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        series = [
            (result.real, "real", "black"),
            (result.before, "before", "#c44e52"),
            (result.after, "fitted", "#4c72b0"),
        ]
        values = np.concatenate([s[key] for s, _, _ in series if len(s.get(key, []))])
        bins = np.histogram_bin_edges(values, bins=min(30, max(5, len(np.unique(values)))))
        for stats, name, colour in series:
            if len(stats.get(key, [])):
                ax.hist(
                    stats[key], bins=bins, density=True, histtype="step", lw=1.6, color=colour, label=name
                )
        b, a = result.distance_before.get(key), result.distance_after.get(key)
        ax.set_title(f"{LABELS[key]}\nW1 {b:.3g} -> {a:.3g}", fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out_png, buf.getvalue())
    return Path(out_png)
