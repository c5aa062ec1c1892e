"""COCO evaluation (pycocotools) of a trained detector on a labelled set, e.g. real photos.

The set's categories are first mapped onto the model's classes (by name, by a category-map file, or all
onto one class with ``class_agnostic``); the ground truth is rewritten in the model's class space and
COCOeval runs on it: bbox always, segm when the model predicts masks and every evaluated object has a
mask. Ground-truth categories the model does not know are left out and listed in metrics.json.

Class-agnostic evaluation of a multi-class model relabels every detection to the one class and runs a
class-agnostic NMS (the model's NMS threshold), so an object detected as two classes counts once.

Outputs in ``OUT`` (default ``RUN_DIR/eval/<set name>/`` for a checkpoint inside a run directory):
``metrics.json`` (AP, AP50, AP75, AP small/medium/large, AR, per-class AP, PR curves from
COCOeval.eval['precision'], the mapping, timings) and ``predictions.json`` (COCO results; category ids
refer to ``metrics.json["categories"]``, each result also names its category).
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from synth.coco import CocoSource, load_coco, segmentation_to_mask
from synth.errors import ConfigError, SimrealError
from synth.fsutil import atomic_write_json
from train.data import CocoDetection, LabelMap, build_label_map

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
CHECKPOINT_FORMAT = "simreal-train-checkpoint/1"


# ---- checkpoints -----------------------------------------------------------------------------------
# what a checkpoint holds, by type; evaluation needs the first four, resuming a run all of them
CHECKPOINT_FIELDS = {
    "model": dict,
    "config": dict,
    "class_names": list,
    "init_kind": str,
    "step": int,
    "optimizer": dict,
    "scheduler": dict,
    "domain_heads": dict,
    "weights_source": str,
}
EVAL_FIELDS = ("model", "config", "class_names", "init_kind")


def load_checkpoint(path: str | Path, fields=EVAL_FIELDS) -> dict:
    """A checkpoint written by ``simreal train`` (tensors and plain data only: ``weights_only``), with
    ``fields`` of the right types; anything else stops with one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "checkpoint not found")
    if path.stat().st_size == 0:
        raise ConfigError(path, "checkpoint file is empty")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means an unusable file
        detail = (str(e).splitlines() or [""])[0][:120]
        raise ConfigError(
            path, f"not a loadable checkpoint ({type(e).__name__}{': ' + detail if detail else ''})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(path, f"not a simreal training checkpoint (expected format {CHECKPOINT_FORMAT})")
    for key in fields:
        kind = CHECKPOINT_FIELDS[key]
        if not isinstance(ckpt.get(key), kind) or isinstance(ckpt.get(key), bool):
            raise ConfigError(path, f"checkpoint field '{key}' is missing or not a {kind.__name__}")
    return ckpt


def model_from_checkpoint(ckpt: dict, device: torch.device | str = "cpu", where: str | Path = "checkpoint"):
    """(detector in eval mode, ModelConfig, class names) from a loaded checkpoint; a config or weights that
    do not describe one model is a one-line error naming ``where``."""
    from pydantic import ValidationError

    from train.config import TrainConfig
    from train.models import build_model

    try:
        cfg = TrainConfig.model_validate(ckpt["config"])
    except ValidationError as e:
        raise ConfigError(where, f"its training config is not valid ({e.error_count()} problems)") from None
    built = build_model(
        cfg.model, len(ckpt["class_names"]), restore_kind=ckpt["init_kind"], restore_norm=ckpt.get("norm")
    )
    try:
        built.model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)[:120]
        raise ConfigError(
            where, f"its weights do not fit its {cfg.model.name} model ({first[:160]})"
        ) from None
    return built.model.to(device).eval(), cfg.model, list(ckpt["class_names"])


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device", "CUDA requested but no GPU is available")
    return torch.device(name)


# ---- prediction ------------------------------------------------------------------------------------
def _pad_square(image: torch.Tensor) -> torch.Tensor:
    """Pad bottom/right to a square: the model then sees the same geometry as the letterboxed training."""
    _, h, w = image.shape
    side = max(h, w)
    if h == w:
        return image
    out = image.new_zeros((image.shape[0], side, side))
    out[:, :h, :w] = image
    return out


def _results_for_image(out: dict, image_id: int, h: int, w: int, with_masks: bool) -> list[dict]:
    boxes = out["boxes"].float().cpu()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    scores = out["scores"].float().cpu().tolist()
    labels = out["labels"].cpu().tolist()
    rles = []
    if with_masks and len(labels):
        masks = (out["masks"][:, 0, :h, :w] >= 0.5).cpu().numpy().astype(np.uint8)
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    results = []
    for i, (b, s, lab) in enumerate(zip(boxes.tolist(), scores, labels, strict=True)):
        bw, bh = b[2] - b[0], b[3] - b[1]
        if bw <= 0 or bh <= 0:
            continue
        r = {
            "image_id": image_id,
            "category_id": int(lab),
            "bbox": [round(v, 2) for v in (b[0], b[1], bw, bh)],
            "score": round(float(s), 5),
        }
        if rles:
            r["segmentation"] = {"size": [h, w], "counts": rles[i]["counts"].decode("ascii")}
        results.append(r)
    return results


@torch.no_grad()
def predict(
    detector: torch.nn.Module,
    dataset: CocoDetection,
    *,
    device: torch.device,
    with_masks: bool,
    batch_size: int = 4,
    workers: int = 0,
    agnostic_nms: float | None = None,
    progress: bool = False,
) -> tuple[list[dict], float]:
    """COCO results (category ids = model labels) for every image of `dataset`; and seconds spent."""
    from torch.utils.data import DataLoader
    from torchvision.ops import nms
    from tqdm import tqdm

    from train.data import collate_detection

    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_detection, shuffle=False
    )
    detector.eval()
    results: list[dict] = []
    start = time.perf_counter()
    for images, targets in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
        batch = [_pad_square(im).to(device, non_blocking=True).float().div_(255) for im in images]
        outputs = detector(batch)
        for out, tgt in zip(outputs, targets, strict=True):
            h, w = tgt["orig_size"]
            if agnostic_nms is not None and len(out["labels"]):
                keep = nms(out["boxes"].float(), out["scores"].float(), agnostic_nms)
                out = {k: v[keep] for k, v in out.items()}
                out["labels"] = torch.ones_like(out["labels"])
            results += _results_for_image(
                out, int(tgt["image_id"]), int(h), int(w), with_masks and "masks" in out
            )
    return results, time.perf_counter() - start


# ---- ground truth in the model's class space -------------------------------------------------------
def remapped_ground_truth(source: CocoSource, label_map: LabelMap, image_ids: list[int]) -> tuple[dict, int]:
    """A COCO dict whose categories are the model classes present; and how many objects were left out."""
    anns, dropped, used = [], 0, set()
    for i in image_ids:
        info = source.images[i]
        for a in source.anns_by_image[i]:
            lab = label_map.category_to_label.get(a["category_id"])
            if lab is None:
                dropped += 1
                continue
            new = {k: v for k, v in a.items() if k not in ("id", "category_id")}
            new.update(id=len(anns) + 1, category_id=lab, iscrowd=int(a.get("iscrowd", 0)))
            if "area" not in new:
                if "segmentation" in new:
                    new["area"] = float(
                        segmentation_to_mask(new["segmentation"], info["height"], info["width"]).sum()
                    )
                else:
                    new["area"] = float(a["bbox"][2] * a["bbox"][3])
            anns.append(new)
            used.add(lab)
    cats = [{"id": lab, "name": label_map.class_names[lab - 1]} for lab in sorted(used)]
    images = [{k: source.images[i][k] for k in ("id", "file_name", "width", "height")} for i in image_ids]
    return {"images": images, "annotations": anns, "categories": cats}, dropped


def _coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _nan_to_none(x: float) -> float | None:
    return None if x is None or x < 0 or np.isnan(x) else round(float(x), 4)


def coco_metrics(gt: dict, results: list[dict], iou_type: str) -> dict:
    """COCOeval stats, per-class AP/AP50 and per-class PR curves (area all, 100 detections)."""
    coco_gt = _coco(gt)
    if iou_type == "bbox":
        dets = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    else:
        dets = [{k: v for k, v in r.items() if k != "bbox"} for r in results if "segmentation" in r]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets) if dets else _coco({**gt, "annotations": []})
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    ev.params.imgIds = [im["id"] for im in gt["images"]]
    ev.params.catIds = [c["id"] for c in gt["categories"]]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out: dict = {name: _nan_to_none(v) for name, v in zip(STAT_NAMES, ev.stats, strict=True)}
    precision = ev.eval["precision"]  # [T iou, R recall, K class, A area, M maxdets]
    iou50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    iou75 = int(np.argmin(np.abs(ev.params.iouThrs - 0.75)))
    gt_counts = {c["id"]: 0 for c in gt["categories"]}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            gt_counts[a["category_id"]] += 1
    per_class, curves = {}, {}
    for k, cat in enumerate(gt["categories"]):
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        per_class[cat["name"]] = {
            "AP": _nan_to_none(valid.mean()) if valid.size else None,
            "AP50": _nan_to_none(p[iou50][p[iou50] > -1].mean()) if (p[iou50] > -1).any() else None,
            "gt": gt_counts[cat["id"]],
        }
        curves[cat["name"]] = {
            "iou50": [round(float(max(v, 0)), 4) for v in p[iou50]],
            "iou75": [round(float(max(v, 0)), 4) for v in p[iou75]],
        }
    out.update(
        per_class=per_class,
        pr_curves=curves,
        recall_points=[round(float(r), 2) for r in ev.params.recThrs],
        summary=buf.getvalue().strip(),
    )
    return out


# ---- the whole evaluation --------------------------------------------------------------------------
def _name_predictions(results: list[dict], gt: dict, class_names: list[str]) -> None:
    """Each result also names its category: the evaluated class, else the model's own class name."""
    names = {c["id"]: c["name"] for c in gt["categories"]}
    for r in results:
        r["category_name"] = names.get(
            r["category_id"],
            class_names[r["category_id"] - 1] if 0 < r["category_id"] <= len(class_names) else "?",
        )


def _add_coco_metrics(metrics: dict, gt: dict, scored: list[dict], masks: bool, with_masks: bool) -> None:
    """bbox AP always; segm AP when the model predicts masks and every evaluated object has one."""
    metrics["bbox"] = coco_metrics(gt, scored, "bbox")
    if masks:
        metrics["segm"] = coco_metrics(gt, scored, "segm")
    else:
        metrics["segm"] = None
        metrics["segm_skipped"] = (
            "the model predicts boxes only"
            if not with_masks
            else "the set has no instance masks for every object"
        )


def _evaluation_labels(source: CocoSource, class_names: list[str], category_map, class_agnostic):
    """The single class name of a class-agnostic evaluation (or None) and the set's label map."""
    if class_agnostic is True:
        class_agnostic = class_names[0] if len(class_names) == 1 else "object"
    label_map = build_label_map(
        source.categories,
        class_names=None if class_agnostic else class_names,
        category_map=category_map,
        class_agnostic=class_agnostic or None,
        where=source.ann_file,
    )
    return class_agnostic, label_map


def evaluate_detector(
    detector: torch.nn.Module,
    class_names: list[str],
    data: str | Path | CocoSource,
    *,
    out_dir: str | Path | None,
    name: str | None = None,
    category_map: str | Path | None = None,
    class_agnostic: str | bool | None = None,
    image_ids: list[int] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 4,
    workers: int = 0,
    nms_threshold: float = 0.5,
    progress: bool = False,
    meta: dict | None = None,
    floor_from: str | Path | CocoSource | None = None,
    floor_ids: list[int] | None = None,
) -> dict:
    """Evaluate an in-memory detector; writes metrics.json and predictions.json when `out_dir` is set.

    With ``floor_from`` (the set whose boxes a blind detector may know: the real train split, else the
    training images, ``floor_ids`` of it) the metrics gain ``floor``: the class-agnostic AP50 beside the
    blind floor, with intervals."""
    source = data if isinstance(data, CocoSource) else load_coco(data)
    class_agnostic, label_map = _evaluation_labels(source, class_names, category_map, class_agnostic)
    ids = sorted(image_ids) if image_ids is not None else sorted(source.images)
    gt, dropped = remapped_ground_truth(source, label_map, ids)
    with_masks = hasattr(detector, "roi_heads") and getattr(detector.roi_heads, "has_mask", lambda: False)()
    evaluated = [a for a in gt["annotations"] if not a["iscrowd"]]
    gt_has_masks = bool(evaluated) and all("segmentation" in a for a in evaluated)
    results, seconds = predict(
        detector,
        CocoDetection(source, label_map, image_ids=ids, image_size=None, masks=False),
        device=torch.device(device),
        with_masks=with_masks and gt_has_masks,
        batch_size=batch_size,
        workers=workers,
        agnostic_nms=nms_threshold if (class_agnostic and len(class_names) > 1) else None,
        progress=progress,
    )
    if class_agnostic:
        for r in results:
            r["category_id"] = 1
    _name_predictions(results, gt, class_names)
    known = {c["id"] for c in gt["categories"]}
    scored = [r for r in results if r["category_id"] in known]
    metrics: dict = {
        "set": name or source.name,
        "data": str(source.ann_file.resolve()),
        "images": len(ids),
        "image_ids": ids if image_ids is not None else None,
        "categories": gt["categories"],
        "class_names": list(class_names),
        "mapping": label_map.describe(source.categories),
        "class_agnostic": bool(class_agnostic),
        "gt_instances": len(evaluated),
        "gt_left_out": dropped,
        "predictions": len(results),
        "predictions_of_unevaluated_classes": len(results) - len(scored),
        "seconds": round(seconds, 2),
        "images_per_s": round(len(ids) / seconds, 2) if seconds > 0 else None,
        **(meta or {}),
    }
    if not gt["categories"]:
        raise ConfigError(
            source.ann_file, "no labelled object of a class the model knows in the evaluated images"
        )
    _add_coco_metrics(metrics, gt, scored, with_masks and gt_has_masks, with_masks)
    if floor_from is not None:
        metrics["floor"] = _floor(source, results, floor_from, ids, floor_ids)
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "predictions.json", results, indent=None)
        atomic_write_json(out / "metrics.json", metrics)
        metrics["out_dir"] = str(out)
    return metrics


def _floor(source: CocoSource, results: list[dict], floor_from, ids: list[int], prior_ids) -> dict:
    """The blind-floor comparison, or why there is none (a prior set without boxes is no reason to fail)."""
    from train.floor import floor_comparison

    try:
        prior = floor_from if isinstance(floor_from, CocoSource) else load_coco(floor_from, check_files=False)
        return floor_comparison(source, results, prior, image_ids=ids, prior_ids=prior_ids)
    except (SimrealError, ValueError) as e:
        return {"skipped": f"no blind floor: {e}"}


def default_eval_dir(checkpoint: Path, set_name: str) -> Path | None:
    """RUN_DIR/eval/<set> for a checkpoint stored as RUN_DIR/checkpoints/*.pt."""
    if checkpoint.parent.name == "checkpoints" and (checkpoint.parent.parent / "config.yaml").is_file():
        return checkpoint.parent.parent / "eval" / set_name
    return None


def evaluate(
    ckpt: str | Path,
    data: str | Path,
    *,
    out_dir: str | Path | None = None,
    name: str | None = None,
    category_map: str | Path | None = None,
    class_agnostic: str | bool | None = None,
    image_ids: list[int] | None = None,
    device: str = "auto",
    batch_size: int = 4,
    workers: int = 0,
    progress: bool = False,
    floor_from: str | Path | None = None,
    note: str | None = None,
) -> dict:
    """Evaluate a `simreal train` checkpoint on a COCO set; returns the metrics dict (also written to disk).

    A model trained class-agnostically is evaluated class-agnostically unless a category map is given.
    The blind floor is fitted on ``floor_from`` (e.g. the real train split), else on the checkpoint's
    training set when it is still there. A ``note`` (what a reader must know about the set) is kept in the
    metrics and shown in the report.
    """
    ckpt_path = Path(ckpt)
    ck = load_checkpoint(ckpt_path)
    dev = pick_device(device)
    detector, model_cfg, class_names = model_from_checkpoint(ck, dev, where=ckpt_path)
    source = load_coco(data)
    set_name = name or source.name
    if out_dir is None:
        out_dir = default_eval_dir(ckpt_path, set_name)
        if out_dir is None:
            raise ConfigError(ckpt_path, "is not inside a run directory: pass --out for the results")
    if class_agnostic is None and category_map is None and ck.get("label_mode") == "class-agnostic":
        class_agnostic = class_names[0]
    if class_agnostic and category_map:
        raise ConfigError("--class-agnostic", "cannot be combined with --category-map")
    meta = {
        "checkpoint": str(ckpt_path.resolve()),
        "step": int(ck["step"]),
        "model": model_cfg.name,
        "weights_source": ck.get("weights_source", "unknown"),
        "device": str(dev),
        **({"note": note} if note else {}),
    }
    return evaluate_detector(
        detector,
        class_names,
        source,
        out_dir=out_dir,
        name=set_name,
        category_map=category_map,
        class_agnostic=class_agnostic,
        image_ids=image_ids,
        device=dev,
        batch_size=batch_size,
        workers=workers,
        nms_threshold=model_cfg.nms_threshold,
        progress=progress,
        meta=meta,
        floor_from=floor_from or _training_set(ck),
    )


def _training_set(ck: dict) -> str | None:
    """The COCO set a checkpoint was trained on, when it can still be read."""
    data = (ck.get("config") or {}).get("data")
    return data if isinstance(data, str) and Path(data).exists() else None


def label_map_for_metrics(metrics: dict, source: CocoSource) -> LabelMap:
    """Rebuild the mapping an evaluation used (for reports drawing ground truth next to predictions)."""
    mapping = metrics["mapping"]
    if metrics.get("class_agnostic"):
        return build_label_map(source.categories, class_agnostic=mapping["class_names"][0])
    lookup = {c["name"]: c["id"] for c in metrics["categories"]}
    to_label = {
        c["id"]: lookup[mapping["mapped"][c["name"]]]
        for c in source.categories
        if mapping["mapped"].get(c["name"]) in lookup
    }
    return LabelMap(tuple(metrics["class_names"]), to_label, mapping["mode"], tuple(mapping["unmapped"]))
