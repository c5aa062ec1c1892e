"""Fit a render config to a few real photos: render a small probe set, compare its statistics with the
photos' (1-D Wasserstein distances, ``synth.match.stats``), adjust (``synth.match.adjust``), repeat, and
keep the candidate closest to the photos. Letterbox bars, where the photos have them, are measured
(``synth.match.letterbox``) and given to every candidate. Probe sets are ordinary resumable datasets under
``work_dir``, so a second run with the same inputs renders nothing.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from synth.dataset import render_dataset
from synth.fsutil import atomic_write_json, atomic_write_text
from synth.match.adjust import adjust, with_image_size
from synth.match.letterbox import measure_letterbox
from synth.match.stats import distances, image_size, photo_set, set_stats
from synth.randomize.settings import parse_render_config

log = logging.getLogger(__name__)
SCORED = ("rel_side", "boxes_per_image", "brightness", "warmth")  # what decides the best candidate


@dataclass
class FitResult:
    data: dict  # the fitted config mapping
    real: dict
    before: dict  # statistics of the unfitted config's probe set
    after: dict
    distance_before: dict[str, float]
    distance_after: dict[str, float]
    history: list[dict] = field(default_factory=list)  # distances of every candidate

    def table(self) -> str:
        lines = [f"{'statistic':<16} {'before':>10} {'after':>10} {'ratio':>7}"]
        for key, b in self.distance_before.items():
            a = self.distance_after.get(key, float("nan"))
            ratio = a / b if b and not math.isnan(b) else float("nan")
            lines.append(f"{key:<16} {b:>10.4f} {a:>10.4f} {ratio:>7.2f}")
        return "\n".join(lines)


def _score(dist: dict, ref: dict) -> float:
    keys = [k for k in SCORED if k in dist and ref.get(k)]
    return sum(dist[k] / ref[k] for k in keys) / max(1, len(keys))


def fit_config(
    data: dict,
    photos: str | Path,
    work_dir: str | Path,
    *,
    probe_n: int = 40,
    iterations: int = 3,
    seed: int = 0,
    workers: int = 2,
    source: str = "<config>",
) -> FitResult:
    """Fit the config mapping ``data`` to ``photos`` (COCO set or folder); see the module docstring."""
    work_dir = Path(work_dir)
    real = set_stats(photos)
    coco, images = photo_set(photos)
    parse_render_config(data, source)  # one-line error before any rendering

    def probe(candidate: dict, name: str) -> dict:
        cfg = parse_render_config(candidate, source)
        out = work_dir / name
        render_dataset(cfg, probe_n, out, seed, workers, progress=False)
        return set_stats(out)

    before = probe(data, "probe-before")
    d_before = distances(before, real)
    log.info("unfitted: %s", d_before)
    history = [{"candidate": "before", **d_before}]
    best = (float("inf"), data, before, d_before)
    current, stats = with_image_size(data, image_size(coco, images)), before
    bars = measure_letterbox(images)  # measured, not searched: the photos show it directly
    if bars is not None:
        log.info("letterbox bars on %.0f %% of the photos: %s", 100 * bars["probability"], bars)
        current = {**current, "letterbox": bars}
    for k in range(iterations):
        current = adjust(current, stats, real)
        stats = probe(current, f"probe-{k + 1}")
        dist = distances(stats, real)
        log.info("candidate %d: %s", k + 1, dist)
        history.append({"candidate": k + 1, **dist})
        score = _score(dist, d_before)
        if score < best[0]:
            best = (score, copy.deepcopy(current), stats, dist)
    _, fitted, after, d_after = best
    return FitResult(fitted, real, before, after, d_before, d_after, history)


def write_fit(result: FitResult, out_yaml: str | Path, *, config: str, photos: str) -> dict[str, Path]:
    """The fitted config (YAML, with the distances in its header), the plot and a JSON report."""
    from synth.match.plot import plot_fit

    out_yaml = Path(out_yaml)
    header = [
        f"# Fitted by `simreal sku match` from {config} to the photos {photos}.",
        "# 1-D Wasserstein distance, synthetic vs real (probe sets):",
        *(f"#   {line}" for line in result.table().splitlines()),
    ]
    body = yaml.safe_dump(result.data, sort_keys=False, default_flow_style=None, width=110)
    atomic_write_text(out_yaml, "\n".join(header) + "\n" + body)
    plot = out_yaml.with_suffix(".png")
    plot_fit(result, plot)
    report = out_yaml.with_suffix(".json")
    atomic_write_json(
        report,
        {
            "config": config,
            "photos": photos,
            "fitted": str(out_yaml),
            "distance_before": result.distance_before,
            "distance_after": result.distance_after,
            "history": result.history,
            "real_median": {k: float(np.median(v)) for k, v in result.real.items() if len(v)},
        },
    )
    return {"config": out_yaml, "plot": plot, "report": report}
