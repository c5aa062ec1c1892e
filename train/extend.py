"""Extending a trained detector with new classes: ``extend_detector(base, new_train, replay, out, ...)``.

The base model's class heads are enlarged (train.heads: old rows copied, so it still says the same about
the old classes), then fine-tuned by the ordinary training loop (train.engine) on the new data mixed with
replayed base training data, ``replay_fraction`` of every batch (train.replay), so the old classes are not
forgotten. Old-class AP before (base model) and after (extended model) and new-class AP are measured with
pycocotools (train.evaluate) on the same sets, and written up in a report.

``extend_detector`` returns (and writes to OUT/extend.json): ``checkpoint`` (the extended model),
``report`` (OUT/report.html), ``run_dir``, ``classes`` {"old": [...], "new": [...]}, ``labels`` {class: model label}, ``replay`` (set, images,
fraction used), and the box AP summaries ``old_class_ap_before``, ``old_class_ap_after``,
``new_class_ap``: each ``{"AP": float | None, "AP50": float | None}`` (COCO AP at IoU .50:.95 and AP at
IoU .50), the mean over every (evaluation set, class) pair with ground truth of that class, or None
when no set has an object of those classes; ``per_set`` {set: {"before": per-class, "after":
per-class}} with train.evaluate's per-class entries (AP, AP50, gt).

Output folder::

    OUT/
      data/            the sets in the extended model's classes (train.extend_data): train.json,
                       eval_<set>.json, images/<part> links to the original image folders
      train/           the training run (train.engine's layout): checkpoints/last.pt is the extended model,
                       eval/<set>/ its evaluations, report.html the training report (train.report)
      before/<set>/    the base model's evaluations on the same sets
      extend.json      what extend_detector returns
      report.html, report.md, report_files/   before/after per class (train.extend_report)
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from synth.coco import CocoSource, load_coco, resolve_coco_path
from synth.config import validate
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json
from train.config import TrainConfig
from train.data import split_image_ids
from train.evaluate import evaluate_detector, load_checkpoint, model_from_checkpoint, pick_device
from train.extend_data import (
    Part,
    replay_label_map,
    safe_tag,
    union_classes,
    write_class_space,
)
from train.heads import class_layers, enlarge_state

log = logging.getLogger(__name__)

# Share of the new set held out to measure the new classes when no evaluation sets are given.
NEW_VAL_FRACTION = 0.2
METRICS = ("AP", "AP50")


def extend_detector(
    base_checkpoint: Path,
    new_train: Path,
    replay: Path | None,
    out: Path,
    *,
    steps: int,
    batch_size: int,
    replay_fraction: float = 0.5,
    device: str = "auto",
    eval_sets: dict[str, Path] | None = None,
    lr: float | None = None,
    workers: int | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> dict:
    """Add the new set's categories as classes of a ``simreal train`` checkpoint and fine-tune it with
    replay (``replay_fraction`` of every batch, in [0, 1), from ``replay``: the base model's training set;
    None: the one its checkpoint records, if it still exists). ``eval_sets`` {name: COCO set}; None:
    held-out splits of the new set and of the base run's validation images. ``lr``, ``workers``, ``seed``
    override the base run's values; the rest of its config is kept, DANN off. Returns the summary above."""
    from train.engine import train
    from train.extend_report import write_extend_report
    from train.replay import MixedBatchSampler
    from train.report import write_report

    base_checkpoint, out = Path(base_checkpoint), Path(out)
    if (out / "train" / "checkpoints" / "last.pt").exists():
        raise ConfigError(out, "already holds an extended model; choose another output folder")
    if not 0.0 <= replay_fraction < 1.0:
        raise ConfigError("replay_fraction", f"must be in [0, 1), got {replay_fraction}")
    dev = pick_device(device)
    ck, base_cfg, base_model, model_cfg, old = _checked_base(base_checkpoint, dev)

    new_src = load_coco(new_train)
    replay_src = _replay_source(replay, base_cfg)
    replay_map = replay_label_map(replay_src, base_cfg, old) if replay_src else None
    union = union_classes(old, new_src, replay_src, replay_map)
    fraction = replay_fraction if replay_src is not None else 0.0
    log.info("extend: %s + new classes %s", ", ".join(old), ", ".join(union.new))

    data_dir = out / "data"
    train_parts, eval_files = _write_sets(
        data_dir, union, new_src, replay_src, replay_map, base_cfg, eval_sets, seed
    )
    train_counts = write_class_space(data_dir / "train.json", train_parts, union)
    n_new = len(train_parts[0].image_ids)
    n_old = sum(len(p.image_ids) for p in train_parts[1:])
    if fraction > 0 and n_old == 0:
        fraction = 0.0

    cfg = _extension_config(base_cfg, data_dir / "train.json", out / "train", steps, batch_size, device)
    cfg = _override(cfg, lr=lr, workers=workers, seed=seed, progress=progress)
    start = _enlarged_start(ck, model_cfg, old, union, base_checkpoint)
    sampler = functools.partial(MixedBatchSampler, n_new=n_new, fraction=fraction)
    run = train(cfg, start=start, batch_sampler=sampler)
    checkpoint = run / "checkpoints" / "last.pt"

    per_set = _before_and_after(base_model, old, checkpoint, eval_files, out, run, cfg, dev)
    result = {
        **_run_record(checkpoint, out, run, base_checkpoint, model_cfg.name, union),
        "new_train": {"path": str(new_src.ann_file), "images": n_new},
        "replay": {
            "path": str(replay_src.ann_file) if replay_src else None,
            "images": n_old,
            "fraction": fraction,
        },
        "train_data": train_counts,
        "steps": steps,
        "batch_size": batch_size,
        "old_class_ap_before": _mean_ap(per_set, union.old, "before"),
        "old_class_ap_after": _mean_ap(per_set, union.old, "after"),
        "new_class_ap": _mean_ap(per_set, union.new, "after"),
        "per_set": per_set,
    }
    atomic_write_json(out / "extend.json", result)
    write_report(run)
    write_extend_report(out)
    return result


def _before_and_after(base_model, old, checkpoint: Path, eval_files: dict, out: Path, run: Path, cfg, dev):
    """Per evaluation set, the base model's and the extended model's per-class AP on the same images."""
    ext_model, _, classes = model_from_checkpoint(load_checkpoint(checkpoint), dev, where=checkpoint)
    return {
        name: _evaluate_pair(base_model, old, ext_model, classes, path, name, out, run, cfg, dev)
        for name, path in eval_files.items()
    }


def _checked_base(base_checkpoint: Path, dev):
    """The base checkpoint (untrusted: validated config, distinct class names, a class head to enlarge),
    its training config, its model on ``dev``, the model config and the class names."""
    ck = load_checkpoint(base_checkpoint)
    base_cfg = validate(TrainConfig, ck["config"], base_checkpoint)
    old = ck["class_names"]
    if not old or not all(isinstance(c, str) and c.strip() for c in old) or len(set(old)) != len(old):
        raise ConfigError(base_checkpoint, "its class names are not distinct non-empty strings")
    base_model, model_cfg, old = model_from_checkpoint(ck, dev, where=base_checkpoint)
    if not class_layers(base_model, len(old) + 1):
        raise ConfigError(base_checkpoint, f"its {model_cfg.name} model has no class head to enlarge")
    return ck, base_cfg, base_model, model_cfg, old


def _enlarged_start(ck: dict, model_cfg, old: list[str], union, base_checkpoint: Path):
    """Training's starting point: the base weights with class heads grown to the union of classes."""
    from train.engine import StartFrom
    from train.models import build_model

    n = len(union.class_names)
    enlarged = build_model(model_cfg, n, restore_kind=ck["init_kind"], restore_norm=ck.get("norm"))
    state = enlarge_state(ck["model"], enlarged.model, len(old), n, base_checkpoint)
    return StartFrom(
        state,
        ck["init_kind"],
        ck.get("norm"),
        f"extended from {base_checkpoint.name} ({len(old)} + {len(union.new)} classes; "
        f"base weights: {ck.get('weights_source', 'unknown')})",
    )


def _run_record(checkpoint: Path, out: Path, run: Path, base_checkpoint: Path, model: str, union) -> dict:
    return {
        "checkpoint": str(checkpoint),
        "report": str(out / "report.html"),
        "run_dir": str(run),
        "base_checkpoint": str(base_checkpoint),
        "model": model,
        "classes": {"old": list(union.old), "new": list(union.new)},
        "labels": union.labels(),
    }


def _replay_source(replay: Path | None, base: TrainConfig) -> CocoSource | None:
    """The replay set: the one given, else the base run's training set when it is still there."""
    if replay is not None:
        return load_coco(replay)
    recorded = Path(base.data)
    if recorded.exists():
        return load_coco(recorded)
    log.warning("extend: the base model's training set %s is gone; training without replay", recorded)
    return None


def _write_sets(data_dir, union, new_src, replay_src, replay_map, base_cfg, eval_sets, seed):
    """The training parts (new first, then replay) and the evaluation files, all in class space."""
    seed = base_cfg.seed if seed is None else seed
    new_ids = sorted(new_src.images)
    new_val: list[int] = []
    replay_ids = sorted(replay_src.images) if replay_src else []
    replay_val: list[int] = []
    if eval_sets is None:
        new_ids, new_val = split_image_ids(new_ids, NEW_VAL_FRACTION, seed)
        if replay_src is not None:
            replay_ids, replay_val = _replay_split(replay_src, base_cfg, seed)
    parts = [Part(new_src, new_ids, "new")]
    if replay_src is not None and replay_ids:
        parts.append(Part(replay_src, replay_ids, "replay", replay_map))
    files = {}
    if eval_sets is None:
        for name, part in (
            ("new", Part(new_src, new_val, "new")),
            ("replay", Part(replay_src, replay_val, "replay", replay_map) if replay_src else None),
        ):
            if part is not None and part.image_ids:
                files[name] = write_class_space(data_dir / f"eval_{name}.json", [part], union)["path"]
    else:
        for name, path in eval_sets.items():
            src = load_coco(path)
            tag = f"eval-{safe_tag(name)}"
            files[name] = write_class_space(
                data_dir / f"eval_{safe_tag(name)}.json", [Part(src, sorted(src.images), tag)], union
            )["path"]
    return parts, files


def _replay_split(replay: CocoSource, base: TrainConfig, seed: int) -> tuple[list[int], list[int]]:
    """The base run's own train/validation split when the replay set is its training set and it held
    images out; else a NEW_VAL_FRACTION split (the base model may have trained on those images)."""
    ids = list(replay.images)
    same = Path(base.data).exists() and resolve_coco_path(base.data).resolve() == replay.ann_file.resolve()
    if same and not base.val_data and base.val_fraction > 0:
        return split_image_ids(ids, base.val_fraction, base.seed)
    return split_image_ids(ids, NEW_VAL_FRACTION, seed)


def _extension_config(
    base: TrainConfig, data: Path, out: Path, steps: int, batch_size: int, device: str
) -> TrainConfig:
    """The base run's training config, on the class-space set, without validation split, extra
    evaluation sets, DANN or resume (extend_detector evaluates itself)."""
    d = base.model_dump(mode="json")
    d.update(
        data=str(data),
        out=str(out),
        category_map=None,
        class_agnostic=None,
        target_images=None,
        val_data=None,
        val_fraction=0.0,
        eval=[],
        steps=steps,
        batch_size=batch_size,
        device=device,
        resume=False,
        eval_every=0,
        checkpoint_every=steps,
        log_every=min(base.log_every, steps),
        warmup_steps=min(base.warmup_steps, steps // 10),
    )
    d["dann"] = {**d["dann"], "enabled": False, "instance_level": False}
    return validate(TrainConfig, d, "extension")


def _override(cfg: TrainConfig, **values) -> TrainConfig:
    given = {k: v for k, v in values.items() if v is not None}
    return validate(TrainConfig, {**cfg.model_dump(mode="json"), **given}, "extension")


def _evaluate_pair(base_model, old, ext_model, classes, path, name, out, run, cfg, dev) -> dict:
    """Per-class box AP of the base model (old classes present only) and the extended one on one set."""
    src = load_coco(path)
    present = {a["category_id"] for anns in src.anns_by_image.values() for a in anns}
    kwargs = {
        "name": name,
        "device": dev,
        "batch_size": cfg.batch_size,
        "nms_threshold": cfg.model.nms_threshold,
    }
    before = None
    if present & set(range(1, len(old) + 1)):
        before = evaluate_detector(base_model, old, src, out_dir=out / "before" / safe_tag(name), **kwargs)
    after = evaluate_detector(ext_model, classes, src, out_dir=run / "eval" / safe_tag(name), **kwargs)
    return {
        "images": after["images"],
        "before": before["bbox"]["per_class"] if before else {},
        "after": after["bbox"]["per_class"],
        "before_AP": before["bbox"]["AP"] if before else None,
        "after_AP": after["bbox"]["AP"],
    }


def _mean_ap(per_set: dict, classes, when: str) -> dict | None:
    """Mean per-class AP / AP50 over every (set, class) pair with ground truth of that class (a class the
    model finds nothing of counts 0)."""
    pairs = [
        sets[when].get(c) or {}
        for sets in per_set.values()
        for c in classes
        if (sets["after"].get(c) or {}).get("gt")
    ]
    if not pairs:
        return None
    return {m: round(sum(p.get(m) or 0.0 for p in pairs) / len(pairs), 4) for m in METRICS}
