"""Training and scoring one variant: its config (one shared budget; only data, augmentation, adaptation,
the share of the steps and the starting weights differ), the train-or-reuse cache, the test-split
evaluation and the summary record."""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sim2real.scales import ScaleSettings, Sim2RealParams
from bench.sim2real.variants import Variant
from synth.errors import ConfigError

TEST_SET_NAME = "real_test"
HEADLINE = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
# Keys that may differ between a finished run and the same run asked for again.
_VOLATILE_KEYS = ("resume", "progress")

TrainFn = Callable[[Any], str]  # TrainConfig -> run directory


def train_config(
    v: Variant,
    params: Sim2RealParams,
    s: ScaleSettings,
    *,
    run_dir: Path,
    data: str,
    class_name: str | None,
    category_map: str | None,
    target_images: str | None,
    parent_checkpoint: str | None,
    seed: int | None = None,
):
    """One variant's validated TrainConfig: every budget and optimizer setting is shared, only the data, the
    augmentation switch, DANN, self-training with the variant's own settings, its share of the steps and
    the starting weights differ (and ``seed``, the training seed, default the run's seed). A variant
    without a parent starts from ``params.initial_weights()``. ``params.train_overrides`` that reach the
    variant come last, except over ``parent_checkpoint``: a variant with a parent starts from its
    checkpoint whatever ``model.weights`` the others get."""
    from train.config import is_rcnn_name, load_train_config, resolve_model_name

    steps = max(1, math.ceil(s.steps * v.steps_share))
    settings: dict[str, Any] = {
        "data": data,
        "out": str(run_dir),
        "model.name": resolve_model_name(s.model),
        "model.image_size": s.image_size,
        "steps": steps,
        "batch_size": s.batch_size,
        "class_agnostic": class_name,
        "target_images": target_images if v.adapts else None,
        "dann.enabled": v.dann,
        "self_training.enabled": v.self_training,
        "progress": False,
        "seed": params.seed if seed is None else seed,
        "optimizer": s.optimizer,
        "lr": s.lr,
        "warmup_steps": s.warmup_steps,
        "val_fraction": 0.0,  # nothing is selected on validation data: the last checkpoint is evaluated
        "workers": s.loader_workers,
        "device": params.device,
        "log_every": max(1, steps // 25),
        "checkpoint_every": max(1, steps // 4),
        "augment.enabled": v.augment,
        # Every backbone layer trains, from random init as from (b)'s checkpoint, so (e) keeps the architecture.
        "model.trainable_backbone_layers": 6,
    }
    if category_map:
        settings["category_map"] = category_map
    settings.update(v.settings)
    if not is_rcnn_name(resolve_model_name(params.train_overrides.get("model.name", s.model))):
        settings.update(v.ssd_settings)
    initial = None if parent_checkpoint else params.initial_weights()
    if initial:
        settings["model.weights"] = initial
    parent = {"model.weights": parent_checkpoint} if parent_checkpoint else {}
    overrides = {k: x for k, x in params.train_overrides.items() if v.takes(k)}
    return load_train_config(None, {**settings, **overrides, **parent})


def train_in_process(cfg) -> str:
    """The plain way to run a training config (the flow passes a Prefect-wrapped one instead)."""
    from train.engine import train

    return str(train(cfg))


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _VOLATILE_KEYS}


def _with_defaults(stored: dict) -> dict:
    """A finished run's stored config as this version writes it: a setting added since, at its default,
    leaves the run the same run. A config that no longer validates is returned as stored (not the same)."""
    from pydantic import ValidationError

    from train.config import TrainConfig

    try:
        return TrainConfig.model_validate(stored).model_dump(mode="json")
    except (ValidationError, TypeError):
        return stored


def train_or_reuse(cfg, train: TrainFn) -> tuple[str, str]:
    """Train unless RUN_DIR already holds this exact run; resume a run that stopped early.

    Returns (run dir, what happened: "trained" | "reused" | "resumed")."""
    import torch
    import yaml

    run = Path(cfg.out)
    last = run / "checkpoints" / "last.pt"
    if last.is_file():
        stored = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
        if _comparable(_with_defaults(stored)) != _comparable(cfg.model_dump(mode="json")):
            raise ConfigError(
                run,
                "already holds a training run with other settings: choose another --out "
                "or delete that folder",
            )
        step = int(torch.load(last, map_location="cpu", weights_only=True)["step"])
        if step >= cfg.steps:
            return str(run), "reused"
        return train(cfg.model_copy(update={"resume": True})), "resumed"
    if run.exists():  # a run that died before its first checkpoint: start it again from scratch
        shutil.rmtree(run)
    return train(cfg), "trained"


def evaluate_on_test(
    run_dir: str,
    test_file: str,
    label: str,
    class_agnostic: bool,
    category_map: str | None,
    device: str,
    batch_size: int,
) -> dict:
    """Score the run's last checkpoint on the real test split (written to RUN_DIR/eval/real_test/); metrics
    newer than the checkpoint are reused. ``label`` names the step in logs and Prefect."""
    from train.evaluate import evaluate

    ckpt = Path(run_dir) / "checkpoints" / "last.pt"
    out = Path(run_dir) / "eval" / TEST_SET_NAME
    mfile = out / "metrics.json"
    if mfile.is_file() and mfile.stat().st_mtime >= ckpt.stat().st_mtime:
        metrics = json.loads(mfile.read_text())
        metrics["out_dir"] = str(out)
        return metrics
    return evaluate(
        ckpt,
        test_file,
        out_dir=out,
        name=TEST_SET_NAME,
        class_agnostic=True if class_agnostic else None,
        category_map=category_map,
        device=device,
        batch_size=batch_size,
    )


def training_seconds(run: Path) -> float | None:
    """The training loop's own duration (log.csv elapsed_s): also right when this call reused the run."""
    try:
        with (run / "log.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("elapsed_s")]
        return round(float(rows[-1]["elapsed_s"]), 1) if rows else None
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def variant_record(
    v: Variant, run_dir: str, how: str, train_s: float, metrics: dict, data: str, labels: str
) -> dict:
    """Everything the summary keeps of one trained and evaluated variant."""
    import yaml

    run = Path(run_dir)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    prov = _read_json(run / "provenance.json")
    ds = _read_json(run / "dataset_summary.json")
    bbox = metrics["bbox"]
    return {
        "key": v.key,
        "name": v.name,
        "title": v.title,
        "role": v.role,
        "labels": labels,
        "train_data": data,
        "train_data_kind": v.data,
        "synthetic_only": v.synthetic_only,
        "augment": v.augment,
        "dann": v.dann,
        "self_training": v.self_training,
        "init_from": v.init_from,
        "run_dir": str(run),
        "training": how,
        "call_s": round(train_s, 1),
        "train_s": training_seconds(run),
        "model": cfg["model"]["name"],
        "image_size": cfg["model"]["image_size"],
        "steps": cfg["steps"],
        "batch_size": cfg["batch_size"],
        "seed": cfg["seed"],
        "optimizer": cfg["optimizer"],
        "lr": cfg["lr"],
        "train_images": (ds.get("train") or {}).get("images"),
        "train_objects": (ds.get("train") or {}).get("instances"),
        "target_images": (ds.get("target") or {}).get("images"),
        "weights_source": prov.get("weights_source") or metrics.get("weights_source"),
        "device": prov.get("device"),
        "metrics_file": str(Path(metrics["out_dir"]) / "metrics.json"),
        "predictions_file": str(Path(metrics["out_dir"]) / "predictions.json"),
        "test_images": metrics["images"],
        "test_objects": metrics["gt_instances"],
        "bbox": {k: bbox.get(k) for k in HEADLINE},
        "per_class": {
            c: {"AP": pc["AP"], "AP50": pc["AP50"], "gt": pc["gt"]}
            for c, pc in (bbox.get("per_class") or {}).items()
        },
    }


_SEED_RUN_KEYS = ("seed", "run_dir", "training", "train_s", "predictions_file", "metrics_file")


def seed_mean(runs: list[dict]) -> dict:
    """A variant's record from its training runs (one per seed): the first run's record, its headline scores
    and training time replaced by the runs' mean and sum, and every run's own in ``seed_runs``."""
    rec = dict(runs[0])
    rec["seed_runs"] = [{**{k: r[k] for k in _SEED_RUN_KEYS}, "bbox": r["bbox"]} for r in runs]
    if len(runs) > 1:
        rec["bbox"] = {k: _mean([r["bbox"].get(k) for r in runs]) for k in HEADLINE}
        rec["per_class"] = {
            c: {
                "AP": _mean([r["per_class"].get(c, {}).get("AP") for r in runs]),
                "AP50": _mean([r["per_class"].get(c, {}).get("AP50") for r in runs]),
                "gt": pc["gt"],
            }
            for c, pc in runs[0]["per_class"].items()
        }
        for key in ("call_s", "train_s", "eval_s"):
            times = [r.get(key) for r in runs]
            rec[key] = round(sum(times), 1) if all(t is not None for t in times) else None
    return rec


def _mean(values: list) -> float | None:
    """The mean of a score over runs, or None when a run lacks it (nothing to average honestly)."""
    if not values or any(v is None for v in values):
        return None
    return round(sum(values) / len(values), 4)
