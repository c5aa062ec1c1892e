"""A time budget turned into one step count for every variant, measured once per output folder.

The count comes from the step time of the shared model on this machine, so a faster model gets more steps
within the same minutes. It is stored in ``OUT/budget.json`` and reused while the budget and the model stay
the same: a re-run keeps its trained variants instead of re-measuring into a different count.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from bench.sim2real.scales import ScaleSettings
from synth.fsutil import atomic_write_json
from train.config import resolve_model_name

BUDGET_FILE = "budget.json"


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_budget(s: ScaleSettings, out: Path, device: str) -> tuple[ScaleSettings, dict | None]:
    """``s`` with ``steps`` measured out of ``s.budget_min`` (unchanged without a budget), and the record."""
    if s.budget_min is None:
        return s, None
    key = {
        "model": resolve_model_name(s.model),
        "image_size": s.image_size,
        "batch_size": s.batch_size,
        "budget_min": s.budget_min,
        "device": _device(device),
    }
    path = out / BUDGET_FILE
    try:
        saved = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        saved = None  # a damaged record is measured again
    if saved and saved.get("key") == key:
        record = saved
    else:
        from train.bench import seconds_per_step

        step_s = seconds_per_step(key["model"], s.image_size, s.batch_size, device=key["device"])
        record = {
            "key": key,
            "step_s": round(step_s, 4),
            "steps": max(1, int(s.budget_min * 60 / step_s)),
            "measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        atomic_write_json(path, record)
    return s.model_copy(update={"steps": record["steps"]}), record
