"""The report of pooled benchmark runs (bench.sim2real.pool): each arm's AP50 beside the floor, the paired
differences between arms, every fold's and seed's own figure, and one picture of all of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.document import Document, fmt, pct, png
from train.metrics import interval_side


def _interval(ci) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "n/a"


def _share(ratio: dict) -> str:
    ci = ratio["ci95"]
    return pct(ratio["estimate"]) + (f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else "")


def difference_words(ci) -> str:
    """What a paired interval of a difference says, in words."""
    return {
        None: "no interval",
        "above": "higher: the interval lies above 0",
        "below": "lower: the interval lies below 0",
        "across": "not distinguishable: the interval includes 0",
    }[interval_side(ci)]


def _figure(record: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(record["arms"])
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(arms) + 1.4))
    floor = record["floor"]
    if floor.get("ci95"):
        ax.axvspan(*floor["ci95"], color="#bbbbbb", alpha=0.45, label="blind floor (95 % interval)")
    ax.axvline(floor["estimate"], color="#777777", lw=1)
    markers = "os^Dv<>p"
    for y, a in enumerate(arms):
        arm = record["arms"][a]
        ci = arm["AP50_ci95"] or [arm["AP50"], arm["AP50"]]
        ax.plot(ci, [y, y], color="#313695", lw=2.5)
        ax.plot([arm["AP50"]], [y], "o", color="#313695", ms=8)
        for k, fold in enumerate(record["folds"]):
            runs = fold["AP50"][a]
            jitter = np.linspace(-0.12, 0.12, len(runs)) if len(runs) > 1 else [0.0]
            ax.plot(
                runs,
                y + 0.25 + np.asarray(jitter) * 0.5,
                markers[k % len(markers)],
                color="#d73027",
                ms=4,
                alpha=0.7,
                label=f"fold {k + 1}: one training run" if y == 0 else None,
            )
    ax.set_yticks(range(len(arms)), arms)
    ax.invert_yaxis()
    ax.set_xlabel("AP50 on the real test photos (class-agnostic)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    return png(fig)


def write_pool_report(record: dict, out_dir: Path) -> Path:
    """OUT/report.html and OUT/report.md from the pooled record; returns the HTML path."""
    doc = Document()
    arms, folds, floor = record["arms"], record["folds"], record["floor"]
    n_images = sum(f["images"] for f in folds)
    doc.h(1, f"Sim-to-real, {len(arms)} arm(s) over {len(folds)} test fold(s) ({n_images} real photos)")
    doc.p(
        f"Blind floor (no pixels looked at): AP50 {fmt(floor['estimate'])} {_interval(floor.get('ci95'))}, "
        f"its prior fitted on {floor['prior_from']}. Intervals: {record['method']}.",
        "summary",
    )
    share = record["share_of_real_only"]
    shares = share["arms"] if share["shown"] else None
    rows = []
    for a, arm in arms.items():
        m = arm["floor_margin"]
        rows.append(
            [
                a,
                arm["title"],
                fmt(arm["AP50"]),
                _interval(arm["AP50_ci95"]),
                f"{fmt(m['estimate'])} {_interval(m['ci95'])}: {m['verdict']}",
            ]
            + ([_share(shares[a]) if a != share["reference"] else "reference"] if shares is not None else [])
            + [
                " + ".join(str(len(s)) for s in arm["seeds_per_fold"]),
                fmt(arm["train_s_mean"], 0) if arm["train_s_mean"] is not None else "n/a",
            ]
        )
    doc.h(2, "AP50 per arm")
    doc.table(
        ["arm", "variant", "AP50", "95 % interval", "minus the floor"]
        + ([f"share of {share['reference']} [95 %]"] if shares is not None else [])
        + ["runs per fold", "training s / run"],
        rows,
    )
    if shares is not None:
        doc.p(
            f"Share of real-only: each arm's pooled AP50 over that of {share['reference']}, with the paired "
            "interval of the ratio (the same resampled photos and runs for both)."
        )
    else:
        doc.p(f"No share of real-only is given: {share['why']}.")
    if record["differences"]:
        doc.h(2, "Paired differences")
        doc.p(
            "Each difference is resampled with the same photos for both arms; an interval that includes 0 "
            "does not separate them. The interval is not corrected for reading several differences at once."
        )
        doc.table(
            ["difference", "AP50", "95 % interval", "in words"],
            [
                [name, f"{d['estimate']:+.3f}", _interval(d["ci95"]), difference_words(d["ci95"])]
                for name, d in record["differences"].items()
            ],
        )
    doc.figure(
        "pooled_ap50",
        _figure(record),
        "Blue: each arm's pooled AP50 and its 95 % interval. Red: the AP50 of every training run on its own "
        "fold. Grey: the blind floor.",
    )
    doc.h(2, "Per fold")
    doc.table(
        ["fold", "photos", "objects", "floor"] + [f"{a} (per seed)" for a in arms],
        [
            [str(k + 1), str(f["images"]), fmt(f.get("objects")), fmt(f["floor_AP50"])]
            + [" / ".join(fmt(v) for v in f["AP50"][a]) for a in arms]
            for k, f in enumerate(folds)
        ],
    )
    doc.h(2, "Protocol and runs")
    doc.table(["setting", "value"], [[k, fmt(v)] for k, v in record["protocol"].items()], "kv")
    doc.pre("\n".join(f"fold {k + 1}: " + ", ".join(f["runs"]) for k, f in enumerate(folds)))
    return doc.write(out_dir, "pooled sim-to-real benchmark")
