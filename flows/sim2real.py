"""The ``sim2real-benchmark`` flow: does a detector trained on rendered images find the objects in real photos?

Per task (retail: packaged products on store shelves; industrial: screws and bolts on a table), it

1. builds the benchmark's own catalog (procedural packages, or procedural fasteners plus the meshes in
   ``../shared/meshes/fasteners``) and renders two synthetic sets from ``configs/sim2real_<task>.yaml``
   with one seed, so both show the same scenes: *plain* (realistic materials, fixed lighting) and *dr*
   (the file's domain-randomized looks and lighting);
2. splits the real set deterministically by photo (``train.splits``) unless a separate test set is given,
   and refuses to go on if any test picture (or a copy of one) is also in training;
3. trains the variants with one budget (model, input size, steps, batch, optimizer, seed):
   (a) synthetic plain, no train-time augmentation; (b) synthetic DR + kornia augmentation; (c) (b) + DANN
   with the real *train* photos as unlabelled target; (d) real train split only (the reference);
   (e) (b)'s checkpoint fine-tuned on the real train split -- class-agnostic ("product" / "screw"), and
   per class too where the catalog's category names match the real set's;
4. evaluates every model on the same real test split (pycocotools), writes ``sim2real.json`` (every number,
   the protocol, provenance) and the comparison report (``train.compare``).

Nothing is tuned on the test split: all settings below are fixed before a run, and the last checkpoint of
every variant is evaluated once. Every step reuses finished work (catalog entries, render shards, trained
runs whose configuration matches), so an interrupted benchmark continues where it stopped.

Output directory (default ``runs/sim2real/<task>-<scale>``)::

    catalog/                    the benchmark's catalog (generated, not committed)
    real/train.json, test.json  the real split as COCO files pointing at the original photos
    real/split.json             split ids, photo groups and the leak check
    real/category_maps/         per-class label maps (when classes match)
    synthetic/plain/, dr/       rendered COCO sets (synth.writer layout)
    variants/<key>-<name>/      one training run each (train.engine layout), eval/real_test/ inside
    sim2real.json               all numbers
    report.html, report.md, report_files/
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.params import RenderParams, TrainParams
from flows.render_then_train import REPO_ROOT, shared_root
from synth.errors import ConfigError

FORMAT = "simreal-sim2real/1"
TEST_SET_NAME = "real_test"
Task = Literal["retail", "industrial"]
Scale = Literal["smoke", "full"]
VariantKey = Literal["a", "b", "c", "d", "e"]


# ---- what is compared ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    key: str
    name: str  # folder name and short label
    title: str
    data: str  # "synthetic_plain" | "synthetic_dr" | "real_train"
    augment: bool  # train-time kornia randomization
    dann: bool = False
    init_from: str | None = None  # key of the variant whose checkpoint this one starts from

    @property
    def synthetic_only(self) -> bool:
        return self.data.startswith("synthetic")


VARIANTS: tuple[Variant, ...] = (
    Variant("a", "synthetic-plain", "(a) synthetic, no randomization", "synthetic_plain", augment=False),
    Variant("b", "synthetic-dr", "(b) synthetic + domain randomization", "synthetic_dr", augment=True),
    Variant(
        "c",
        "synthetic-dr-dann",
        "(c) = (b) + DANN to the real train photos",
        "synthetic_dr",
        augment=True,
        dann=True,
    ),
    Variant("d", "real-only", "(d) real train split only (reference)", "real_train", augment=True),
    Variant(
        "e",
        "dr-then-real",
        "(e) = (b) fine-tuned on the real train split",
        "real_train",
        augment=True,
        init_from="b",
    ),
)
VARIANT_BY_KEY = {v.key: v for v in VARIANTS}

# Variant (a): the recipe's scenes with realistic looks and studio-like, nearly fixed lighting. Applied as
# dotted overrides on top of configs/sim2real_<task>.yaml (whose own values are the DR recipe).
PLAIN_LOOKS: dict[str, Any] = {
    "materials.mode": "realistic",
    "materials.roughness_jitter": 0.03,
    "materials.metallic_jitter": 0.03,
    "materials.color_jitter": 0.02,
    "lighting.count": [2, 2],
    "lighting.kinds": {"area": 1.0},
    "lighting.irradiance": [1.8, 2.2],
    "lighting.temperature_k": [4800, 5200],
    "lighting.area_size": [0.5, 0.6],
    "lighting.ambient": [0.25, 0.3],
    "background.procedural_kinds": [],  # a plain backdrop colour
    "background.brightness": [0.45, 0.55],
}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    config: str  # relative to the repository
    class_name: str  # the class-agnostic label
    real_train: str  # relative to shared_root()
    real_test: str | None  # None: split real_train


TASKS: dict[str, TaskSpec] = {
    "retail": TaskSpec("retail", "configs/sim2real_retail.yaml", "product", "real/retail/freiburg_dev", None),
    "industrial": TaskSpec(
        "industrial",
        "configs/sim2real_industrial.yaml",
        "screw",
        "real/industrial/amv_screws_train",
        "real/industrial/amv_screws_valid",
    ),
}


class ScaleSettings(BaseModel):
    """One training and rendering budget, the same for every variant of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    images: int = Field(ge=1)  # per synthetic set
    render_size: int = Field(ge=32)  # rendered images are square, this many pixels
    catalog_items: int = Field(ge=1)  # retail packages, or procedural fasteners per kind
    model: str
    image_size: int = Field(ge=64)
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: Literal["sgd", "adamw"]
    lr: float = Field(gt=0)
    warmup_fraction: float = Field(ge=0, le=0.5)
    per_class: bool
    loader_workers: int = Field(ge=0)


# Smoke: sized for a 2-core CPU, about 30 min per task (measured: see the README / report). Models start
# from random init unless weight files are in the torch hub cache, so smoke numbers are low by design.
# Full: for a GPU; the retail real set has boxes only, so both tasks keep a box-capable model family that
# C's engine trains on it (SSD for retail; Mask R-CNN R50 needs masks, which the industrial set has).
SCALES: dict[tuple[str, str], ScaleSettings] = {
    ("retail", "smoke"): ScaleSettings(
        images=160,
        render_size=224,
        catalog_items=30,
        model="ssdlite320_mobilenet_v3_large",
        image_size=224,
        steps=50,
        batch_size=8,
        optimizer="adamw",
        lr=1e-3,
        warmup_fraction=0.1,
        per_class=False,
        loader_workers=1,
    ),
    ("industrial", "smoke"): ScaleSettings(
        images=160,
        render_size=320,
        catalog_items=5,
        model="ssdlite320_mobilenet_v3_large",
        image_size=256,
        steps=50,
        batch_size=8,
        optimizer="adamw",
        lr=1e-3,
        warmup_fraction=0.1,
        per_class=False,
        loader_workers=1,
    ),
    ("retail", "full"): ScaleSettings(
        images=4000,
        render_size=224,
        catalog_items=90,
        model="ssdlite320_mobilenet_v3_large",
        image_size=320,
        steps=8000,
        batch_size=32,
        optimizer="adamw",
        lr=1e-3,
        warmup_fraction=0.03,
        per_class=True,
        loader_workers=6,
    ),
    ("industrial", "full"): ScaleSettings(
        images=4000,
        render_size=640,
        catalog_items=20,
        model="maskrcnn_resnet50_fpn_v2",
        image_size=640,
        steps=8000,
        batch_size=8,
        optimizer="sgd",
        lr=0.02,
        warmup_fraction=0.05,
        per_class=True,
        loader_workers=6,
    ),
}


class Sim2RealParams(BaseModel):
    """Everything a benchmark run depends on. Budget overrides apply to every variant alike."""

    model_config = ConfigDict(extra="forbid")
    task: Task
    scale: Scale = "smoke"
    out: str | None = None  # default runs/sim2real/<task>-<scale>
    real_train: str | None = None  # a labelled COCO set of real photos; default: the task's set in ../shared
    real_test: str | None = None  # a separate labelled test set; None: split real_train (or the task default)
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # of real_train's photos, when it is split
    seed: int = Field(0, ge=0)  # rendering, split, training: one seed for everything
    variants: list[VariantKey] = Field(default_factory=lambda: [v.key for v in VARIANTS])
    per_class: bool | None = None  # None: the scale's default
    images: int | None = Field(None, ge=1)  # per synthetic set
    render_size: int | None = Field(None, ge=32)
    steps: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=64, le=2048)
    model: str | None = None
    catalog: str | None = None  # use this catalog instead of building the benchmark's own
    catalog_items: int | None = Field(None, ge=1)
    backend: Literal["pyrender", "cycles"] = "pyrender"
    workers: int = Field(2, ge=1, le=512)  # render worker processes
    device: Literal["auto", "cpu", "cuda"] = "auto"
    render_overrides: dict[str, Any] = Field(default_factory=dict)  # dotted keys, both synthetic sets
    train_overrides: dict[str, Any] = Field(default_factory=dict)  # dotted TrainConfig keys, every variant

    @field_validator("variants")
    @classmethod
    def _known_unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("choose at least one variant")
        return sorted(set(v))

    def settings(self) -> ScaleSettings:
        base = SCALES[(self.task, self.scale)]
        update = {
            k: getattr(self, k)
            for k in (
                "images",
                "render_size",
                "steps",
                "batch_size",
                "image_size",
                "model",
                "catalog_items",
                "per_class",
            )
            if getattr(self, k) is not None
        }
        return base.model_copy(update=update)

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else REPO_ROOT / "runs" / "sim2real" / f"{self.task}-{self.scale}"

    def planned_variants(self) -> list[Variant]:
        """The chosen variants plus what they start from ((e) needs (b)), in training order."""
        keys = set(self.variants)
        for k in list(keys):
            if VARIANT_BY_KEY[k].init_from:
                keys.add(VARIANT_BY_KEY[k].init_from)
        return [v for v in VARIANTS if v.key in keys]


# ---- catalog -------------------------------------------------------------------------------------------
INDUSTRIAL_TARGET_KINDS = ("wood_screw", "drywall_screw", "socket_cap_screw", "hex_bolt")
INDUSTRIAL_DISTRACTOR_KINDS = ("hex_nut", "washer")
# ../shared/meshes/fasteners (millimetres): file, display name, category
SHARED_FASTENERS = (
    ("hex_head_screw_M8x30.stl", "M8x30 hex head screw", "bolt"),
    ("socket_head_cap_screw_M6x20.stl", "M6x20 socket head cap screw", "screw"),
    ("hexnut_M6.stl", "M6 hex nut", "nut"),
    ("squarenut_M6.stl", "M6 square nut", "nut"),
    ("plain_washer_M6.stl", "M6 plain washer", "washer"),
)


@task(name="prepare-catalog")
def prepare_catalog(task_name: str, root: str, items: int, seed: int) -> dict:
    """Fill ``root`` with the task's objects; entries already there are kept (ids follow from seeds)."""
    from synth.catalog import Catalog

    catalog = Catalog(root)
    if task_name == "retail":
        from synth.library import generate_library

        added, kept = generate_library(catalog, items, 0, seed, thumbnails=False)
        return {
            "root": str(catalog.root),
            "added": added,
            "kept": kept,
            "entries": len(list(catalog)),
            "sources": ["procedural packaging (synth.procedural)"],
        }
    return _industrial_catalog(catalog, items, seed)


def _industrial_catalog(catalog, per_kind: int, seed: int) -> dict:
    import numpy as np

    from synth.catalog import MaterialHints
    from synth.library import entry_id
    from synth.procedural import generate_asset
    from synth.sku import add_mesh, write_entry

    added = kept = 0
    kinds = INDUSTRIAL_TARGET_KINDS + INDUSTRIAL_DISTRACTOR_KINDS
    for k, kind in enumerate(kinds):
        for i in range(per_kind):
            item_seed = int(np.random.SeedSequence([seed, 2, k, i]).generate_state(1, dtype=np.uint32)[0])
            sku_id = entry_id(kind, item_seed)
            if sku_id in catalog:
                kept += 1
                continue
            asset = generate_asset(kind, item_seed)
            write_entry(catalog, asset.record(sku_id), asset.mesh, thumbnail=False)
            added += 1
    sources = ["procedural fasteners (synth.procedural)"]
    folder = shared_root() / "meshes" / "fasteners"
    if folder.is_dir():
        steel = MaterialHints(base_color=(0.72, 0.72, 0.74, 1.0), metallic=1.0, roughness=0.35, finish="zinc")
        for file, name, category in SHARED_FASTENERS:
            path = folder / file
            if not path.is_file():
                continue
            sku_id = "shared-" + Path(file).stem.lower().replace("_", "-")
            if sku_id in catalog:
                kept += 1
                continue
            add_mesh(
                catalog,
                path,
                name=name,
                category=category,
                supercategory="industrial",
                units="mm",
                sku_id=sku_id,
                material=steel,
                thumbnail=False,
                echo=None,
                license="Apache-2.0 tool output",
            )
            added += 1
        sources.append(f"meshes from {folder}")
    else:
        sources.append(f"({folder} not found: procedural fasteners only)")
    return {
        "root": str(catalog.root),
        "added": added,
        "kept": kept,
        "entries": len(list(catalog)),
        "sources": sources,
    }


# ---- real sets -----------------------------------------------------------------------------------------
def _default_real(rel: str | None) -> str | None:
    return None if rel is None else str(shared_root() / rel)


def _require_set(path: str, what: str) -> str:
    from train.data import resolve_coco_path

    p = Path(path)
    if not p.exists():
        raise ConfigError(
            what,
            f"{p} not found: pass a labelled COCO set of real photos, or provide ../shared "
            "(or $SIMREAL_SHARED) with the default real sets",
        )
    return str(resolve_coco_path(p))


def resolve_real_sets(params: Sim2RealParams) -> tuple[str, str | None]:
    """(train COCO file, test COCO file or None to split the train set), defaults from the task."""
    spec = TASKS[params.task]
    real_train = _require_set(params.real_train or _default_real(spec.real_train), "real_train")
    test_arg = (
        params.real_test
        if params.real_test
        else (None if params.real_train else _default_real(spec.real_test))
    )
    return real_train, (_require_set(test_arg, "real_test") if test_arg else None)


@task(name="prepare-real-sets")
def prepare_real_sets(
    real_train: str, real_test: str | None, test_fraction: float, seed: int, out: str
) -> dict:
    """Write real/train.json and real/test.json and prove that no test picture is in the training set."""
    from synth.fsutil import atomic_write_json
    from train.data import load_coco
    from train.splits import assert_no_leak, overlap_report, split_by_photo, write_subset

    out_dir = Path(out)
    train_src = load_coco(real_train)
    if real_test is None:
        split = split_by_photo(train_src, test_fraction, seed)
        test_src, train_ids, test_ids = train_src, split.train_ids, split.test_ids
        how = (
            f"{train_src.ann_file} split by photo: {len(test_ids)} of {len(train_src.images)} images "
            f"({split.groups} photos, test fraction {test_fraction}, seed {seed}) held out for testing"
        )
    else:
        test_src = load_coco(real_test)
        train_ids, test_ids = sorted(train_src.images), sorted(test_src.images)
        how = f"train on every image of {train_src.ann_file}, test on every image of {test_src.ann_file}"
    leak = overlap_report(train_src, test_src, train_ids, test_ids)
    assert_no_leak(leak, test_src.ann_file)
    train_file = write_subset(train_src, train_ids, out_dir / "train.json", note="sim2real real train split")
    test_file = write_subset(test_src, test_ids, out_dir / "test.json", note="sim2real real test split")
    info = {
        "train": str(train_file),
        "test": str(test_file),
        "train_source": str(train_src.ann_file),
        "test_source": str(test_src.ann_file),
        "train_image_ids": train_ids,
        "test_image_ids": test_ids,
        "train_files": [str(train_src.image_path(i).resolve()) for i in train_ids],
        "test_files": [str(test_src.image_path(i).resolve()) for i in test_ids],
        "how": how,
        "leak_check": leak,
    }
    atomic_write_json(out_dir / "split.json", info)
    return info


def _coco_counts(path: str | Path) -> dict:
    from train.data import load_coco

    src = load_coco(path, check_files=False)
    names = {c["id"]: c["name"] for c in src.categories}
    per_category = {n: 0 for n in names.values()}
    for lst in src.anns_by_image.values():
        for a in lst:
            if not a.get("iscrowd", 0):
                per_category[names[a["category_id"]]] += 1
    return {
        "path": str(src.ann_file),
        "images": len(src.images),
        "objects": sum(per_category.values()),
        "categories": [c["name"] for c in src.categories],
        "objects_per_category": per_category,
    }


# ---- per-class label maps ------------------------------------------------------------------------------
def shared_classes(synthetic_categories: list[str], real_categories: list[str]) -> list[str]:
    """Real category names that some synthetic category also has (compared loosely, see normalize_name)."""
    from train.data import normalize_name

    syn = {normalize_name(c) for c in synthetic_categories}
    return sorted({c for c in real_categories if normalize_name(c) in syn})


def write_category_map(categories: list[str], classes: list[str], path: Path) -> str:
    """{category: its class, or null}: categories outside ``classes`` are dropped from training/evaluation."""
    import yaml

    from synth.fsutil import atomic_write_text
    from train.data import normalize_name

    by_norm = {normalize_name(c): c for c in classes}
    mapping = {c: by_norm.get(normalize_name(c)) for c in categories}
    atomic_write_text(path, yaml.safe_dump(mapping, sort_keys=True))
    return str(path)


# ---- training and evaluation ---------------------------------------------------------------------------
def train_params(
    v: Variant,
    params: Sim2RealParams,
    s: ScaleSettings,
    *,
    run_dir: Path,
    class_name: str | None,
    category_map: str | None,
    target_images: str | None,
    init_checkpoint: str | None,
) -> TrainParams:
    """One variant's training recipe: every budget and optimizer setting is shared, only the data, the
    augmentation switch, DANN and the starting weights differ."""
    overrides: dict[str, Any] = {
        "seed": params.seed,
        "optimizer": s.optimizer,
        "lr": s.lr,
        "warmup_steps": int(round(s.warmup_fraction * s.steps)),
        "val_fraction": 0.0,  # nothing is selected on validation data: the last checkpoint is evaluated
        "workers": s.loader_workers,
        "device": params.device,
        "log_every": max(1, s.steps // 25),
        "checkpoint_every": max(1, s.steps // 4),
        "augment.enabled": v.augment,
        # Every backbone layer trains, from random init as from (b)'s checkpoint, so (e) keeps the architecture.
        "model.trainable_backbone_layers": 6,
    }
    if category_map:
        overrides["category_map"] = category_map
    if init_checkpoint:
        overrides["model.weights"] = init_checkpoint
    overrides.update(params.train_overrides)
    return TrainParams(
        model=s.model,
        steps=s.steps,
        batch_size=s.batch_size,
        image_size=s.image_size,
        class_agnostic=class_name,
        target_images=target_images if v.dann else None,
        dann=v.dann,
        out=str(run_dir),
        overrides=overrides,
    )


_VOLATILE_KEYS = ("resume", "progress")


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _VOLATILE_KEYS}


def _train_or_reuse(tp: TrainParams, data: str) -> tuple[str, str]:
    """Train unless RUN_DIR already holds this exact run; resume a run that stopped early.

    Returns (run dir, what happened: "trained" | "reused" | "resumed")."""
    import torch
    import yaml

    from flows.training import train_model

    cfg = tp.to_config(data)
    run = Path(cfg.out)
    last = run / "checkpoints" / "last.pt"
    if last.is_file():
        stored = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
        if _comparable(stored) != _comparable(cfg.model_dump(mode="json")):
            raise ConfigError(
                run,
                "already holds a training run with other settings: choose another --out "
                "or delete that folder",
            )
        step = int(torch.load(last, map_location="cpu", weights_only=True)["step"])
        if step >= cfg.steps:
            return str(run), "reused"
        tp = tp.model_copy(update={"overrides": {**tp.overrides, "resume": True}})
        return train_model(tp, data), "resumed"
    if run.exists():  # a run that died before its first checkpoint: start it again from scratch
        shutil.rmtree(run)
    return train_model(tp, data), "trained"


@task(name="evaluate-variant", task_run_name="evaluate-{label}", log_prints=False)  # COCOeval prints
def evaluate_variant(
    run_dir: str,
    test_file: str,
    label: str,
    class_agnostic: bool,
    category_map: str | None,
    device: str,
    batch_size: int,
) -> dict:
    """Score the run's last checkpoint on the real test split (written to RUN_DIR/eval/real_test/)."""
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


HEADLINE = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


def _training_seconds(run: Path) -> float | None:
    """The training loop's own duration (log.csv elapsed_s): also right when this call reused the run."""
    import csv

    try:
        with (run / "log.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("elapsed_s")]
        return round(float(rows[-1]["elapsed_s"]), 1) if rows else None
    except (OSError, ValueError):
        return None


def _variant_record(
    v: Variant, run_dir: str, how: str, train_s: float, metrics: dict, data: str, labels: str
) -> dict:
    import yaml

    run = Path(run_dir)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    prov = json.loads((run / "provenance.json").read_text()) if (run / "provenance.json").is_file() else {}
    ds = (
        json.loads((run / "dataset_summary.json").read_text())
        if (run / "dataset_summary.json").is_file()
        else {}
    )
    bbox = metrics["bbox"]
    return {
        "key": v.key,
        "name": v.name,
        "title": v.title,
        "labels": labels,
        "train_data": data,
        "train_data_kind": v.data,
        "synthetic_only": v.synthetic_only,
        "augment": v.augment,
        "dann": v.dann,
        "init_from": v.init_from,
        "run_dir": str(run),
        "training": how,
        "call_s": round(train_s, 1),
        "train_s": _training_seconds(run),
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


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 4) if num is not None and den else None


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 4) if a is not None and b is not None else None


# Below this real-only AP50 the reference is at chance level and "x % of real-only" says nothing.
MIN_REFERENCE_AP50 = 0.05


def transfer_summary(variants: dict[str, dict]) -> dict:
    """The issue's numbers: each variant's AP50 as a fraction of real-only's, and the gains of DANN and of
    fine-tuning (class-agnostic)."""
    ap50 = {k: (r["bbox"] or {}).get("AP50") for k, r in variants.items()}
    ap = {k: (r["bbox"] or {}).get("AP") for k, r in variants.items()}
    out: dict[str, Any] = {"reference": "d" if "d" in variants else None}
    if "d" in variants:
        out["ratios_meaningful"] = (ap50["d"] or 0.0) >= MIN_REFERENCE_AP50
        out["min_reference_AP50"] = MIN_REFERENCE_AP50
        out["AP50_relative_to_real_only"] = {k: _ratio(ap50[k], ap50["d"]) for k in variants if k != "d"}
        out["AP_relative_to_real_only"] = {k: _ratio(ap[k], ap["d"]) for k in variants if k != "d"}
    if "b" in variants and "c" in variants:
        out["dann_gain_AP50"] = _diff(ap50["c"], ap50["b"])
    if "a" in variants and "b" in variants:
        out["randomization_gain_AP50"] = _diff(ap50["b"], ap50["a"])
    if "d" in variants and "e" in variants:
        out["finetune_gain_AP50"] = _diff(ap50["e"], ap50["d"])
    return out


# ---- the flow ------------------------------------------------------------------------------------------
@flow(name="sim2real-benchmark", log_prints=True)
def sim2real_benchmark(params: Sim2RealParams) -> dict:
    """Render, split, train every variant, evaluate on the real test split, write the JSON and the report."""
    from flows.render import run_render
    from synth.fsutil import atomic_write_json
    from train.compare import bootstrap_transfer, write_comparison
    from train.provenance import git_info, package_versions

    logger = get_run_logger()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    spec = TASKS[params.task]
    s = params.settings()
    out = params.out_dir().resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = params.planned_variants()
    logger.info(
        "sim2real %s at %s scale -> %s: variants %s, %s at %d px, %d steps x %d images, seed %d",
        params.task,
        params.scale,
        out,
        ", ".join(v.key for v in plan),
        s.model,
        s.image_size,
        s.steps,
        s.batch_size,
        params.seed,
    )

    # Real photos: the split and its leak check come first, so a bad set fails before any rendering.
    t = time.perf_counter()
    real_train, real_test = resolve_real_sets(params)
    real = prepare_real_sets(real_train, real_test, params.test_fraction, params.seed, str(out / "real"))
    timings["split_s"] = round(time.perf_counter() - t, 1)
    logger.info("real photos: %s", real["how"])

    # Synthetic sets: one catalog, one seed, two looks.
    roles = (
        [f"training ({', '.join(v.key for v in plan if v.data == 'real_train')})"]
        if any(v.data == "real_train" for v in plan)
        else []
    )
    roles += (
        [f"unlabelled DANN target ({', '.join(v.key for v in plan if v.dann)})"]
        if any(v.dann for v in plan)
        else []
    )
    datasets: dict[str, dict] = {
        "real_train": {**_coco_counts(real["train"]), "role": ", ".join(roles) or "unused"},
        "real_test": {**_coco_counts(real["test"]), "role": "test (every variant)"},
    }
    needed = sorted(
        {v.data for v in plan if v.synthetic_only}
        | ({"synthetic_dr"} if any(v.init_from for v in plan) else set())
    )
    catalog_info = None
    if needed:
        t = time.perf_counter()
        if params.catalog:
            catalog_info = {"root": str(Path(params.catalog).resolve()), "sources": ["given with --catalog"]}
        else:
            catalog_info = prepare_catalog(params.task, str(out / "catalog"), s.catalog_items, params.seed)
        timings["catalog_s"] = round(time.perf_counter() - t, 1)
    for name in needed:
        look = "plain" if name == "synthetic_plain" else "dr"
        overrides = {
            "catalog.root": catalog_info["root"],
            "image.width": s.render_size,
            "image.height": s.render_size,
            **(PLAIN_LOOKS if look == "plain" else {}),
            **params.render_overrides,
        }
        rp = RenderParams(
            config=str(REPO_ROOT / spec.config),
            overrides=overrides,
            n=s.images,
            seed=params.seed,
            out=str(out / "synthetic" / look),
            backend=params.backend,
            workers=params.workers,
        )
        t = time.perf_counter()
        rendered = run_render(rp)
        timings[f"render_{look}_s"] = round(time.perf_counter() - t, 1)
        datasets[name] = {
            **_coco_counts(rendered["annotations"]),
            "out": rendered["out"],
            "role": "training " + ", ".join(v.key for v in plan if v.data == name),
            "config": str(REPO_ROOT / spec.config),
            "look": look,
            "overrides": {k: v for k, v in overrides.items() if k != "catalog.root"},
            "images_rendered": rendered["images_rendered"],
            "render_s": rendered["wall_s"],
        }
    data_paths = {
        "synthetic_plain": datasets.get("synthetic_plain", {}).get("out"),
        "synthetic_dr": datasets.get("synthetic_dr", {}).get("out"),
        "real_train": real["train"],
    }

    # Label modes: class-agnostic always; per class when category names match.
    label_modes = [("agnostic", spec.class_name, None, None)]
    per_class: dict[str, Any] = {"enabled": s.per_class, "classes": []}
    if s.per_class:
        syn_cats = sorted({c for k in needed for c in datasets[k]["categories"]})
        classes = shared_classes(syn_cats, datasets["real_train"]["categories"]) if syn_cats else []
        per_class["classes"] = classes
        tested = [c for c in classes if datasets["real_test"]["objects_per_category"].get(c)]
        if len(classes) >= 2 and tested:
            maps = out / "real" / "category_maps"
            syn_map = write_category_map(syn_cats, classes, maps / "synthetic.yaml")
            real_map = write_category_map(
                datasets["real_train"]["categories"] + datasets["real_test"]["categories"],
                classes,
                maps / "real.yaml",
            )
            label_modes.append(("per-class", None, syn_map, real_map))
            per_class["maps"] = {"synthetic": syn_map, "real": real_map}
        else:
            per_class["skipped"] = (
                f"only {len(classes)} category name(s) shared by the catalog and the real set "
                f"({', '.join(classes) or 'none'}): per-class scores need at least 2"
                if len(classes) < 2
                else f"the real test split has no object of the shared classes ({', '.join(classes)})"
            )
            logger.info("per-class variants skipped: %s", per_class["skipped"])

    # Train and evaluate every variant with the same budget.
    results: dict[str, dict[str, dict]] = {"agnostic": {}, "per-class": {}}
    eval_bs = max(1, min(s.batch_size, 8))
    for labels, class_name, syn_map, real_map in label_modes:
        for v in plan:
            suffix = "" if labels == "agnostic" else "-per-class"
            run_dir = out / "variants" / f"{v.key}-{v.name}{suffix}"
            init = None
            if v.init_from:
                init = str(Path(results[labels][v.init_from]["run_dir"]) / "checkpoints" / "last.pt")
            data = data_paths[v.data]
            tp = train_params(
                v,
                params,
                s,
                run_dir=run_dir,
                class_name=class_name,
                category_map=(real_map if v.data == "real_train" else syn_map)
                if labels != "agnostic"
                else None,
                target_images=real["train"],
                init_checkpoint=init,
            )
            t = time.perf_counter()
            run, how = _train_or_reuse(tp, data)
            train_s = time.perf_counter() - t
            t = time.perf_counter()
            metrics = evaluate_variant(
                run,
                real["test"],
                f"{v.key}{suffix}",
                labels == "agnostic",
                real_map if labels != "agnostic" else None,
                params.device,
                eval_bs,
            )
            eval_s = time.perf_counter() - t
            rec = _variant_record(v, run, how, train_s, metrics, data, labels)
            rec["eval_s"] = round(eval_s, 1)
            results[labels][v.key] = rec
            logger.info(
                "%s%s: %s in %.0f s; real test AP %s, AP50 %s",
                v.title,
                suffix,
                how,
                train_s,
                rec["bbox"]["AP"],
                rec["bbox"]["AP50"],
            )
    variants = results["agnostic"]  # the chosen variants and what they start from
    t = time.perf_counter()
    uncertainty = bootstrap_transfer(
        real["test"],
        {k: json.loads(Path(r["predictions_file"]).read_text()) for k, r in variants.items()},
        seed=params.seed,
    )
    for k, r in variants.items():
        r["bbox"]["AP50_ci95"] = uncertainty.get("AP50", {}).get(k, {}).get("ci95")
    timings["bootstrap_s"] = round(time.perf_counter() - t, 1)
    if per_class["enabled"] and results["per-class"]:
        per_class["variants"] = results["per-class"]
        per_class["transfer"] = transfer_summary(per_class["variants"])

    # Everything in one JSON, then the report built from it.
    first = next(iter(variants.values()))
    summary = {
        "format": FORMAT,
        "task": params.task,
        "scale": params.scale,
        "class_name": spec.class_name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "out": str(out),
        "params": params.model_dump(mode="json"),
        "settings": s.model_dump(mode="json"),
        "protocol": {
            "seed": params.seed,
            "same_budget": {
                "model": s.model,
                "image_size": s.image_size,
                "steps": s.steps,
                "batch_size": s.batch_size,
                "optimizer": s.optimizer,
                "lr": s.lr,
                "warmup_steps": int(round(s.warmup_fraction * s.steps)),
            },
            "test_set": real["test"],
            "split": {k: real[k] for k in ("how", "train_source", "test_source")},
            "leak_check": real["leak_check"],
            "test_images_in_training": 0,  # prepare_real_sets stops the run otherwise
            "model_selection": "none: the last checkpoint of every variant is evaluated once on the test split",
            "weights_source": first.get("weights_source"),
            "notes": _protocol_notes(first, s),
        },
        "catalog": catalog_info,
        "datasets": datasets,
        "real_split": {
            "train_image_ids": real["train_image_ids"],
            "test_image_ids": real["test_image_ids"],
            "train_files": real["train_files"],
            "test_files": real["test_files"],
        },
        "variants": variants,
        "transfer": transfer_summary(variants),
        "uncertainty": uncertainty,
        "per_class": per_class,
        "provenance": {
            "git": git_info(),
            "packages": package_versions(),
            "device": first.get("device"),
            "command": " ".join(sys.argv),
        },
        "timings": {**timings, "wall_s": None},
    }
    for labels in results:
        for k, r in results[labels].items():
            summary["timings"][f"train_{k}{'' if labels == 'agnostic' else '_per_class'}_s"] = r["call_s"]
            summary["timings"][f"eval_{k}{'' if labels == 'agnostic' else '_per_class'}_s"] = r["eval_s"]
    summary["timings"]["wall_s"] = round(time.perf_counter() - t_start, 1)
    json_path = out / "sim2real.json"
    atomic_write_json(json_path, summary)
    t = time.perf_counter()
    report = write_comparison(json_path)
    summary["timings"]["report_s"] = round(time.perf_counter() - t, 1)
    summary["timings"]["wall_s"] = round(time.perf_counter() - t_start, 1)
    summary["report"] = {"html": str(report), "md": str(report.with_suffix(".md"))}
    atomic_write_json(json_path, summary)
    logger.info("sim2real %s done in %.0f s: %s", params.task, summary["timings"]["wall_s"], report)
    return summary


def _protocol_notes(first: dict, s: ScaleSettings) -> list[str]:
    notes = [
        "Every variant uses the same model, input size, steps, batch size, optimizer, learning rate schedule and "
        "seed; (e) additionally starts from (b)'s final weights, so it has seen (b)'s steps too.",
        "Train-time augmentation: off for (a), on (kornia domain randomization, train.augment) for (b)-(e).",
        "(c) uses the real TRAIN split's photos as unlabelled DANN target; their labels are never read.",
        "The test split is used once, for the final scores; no setting was chosen by looking at it.",
    ]
    if str(first.get("weights_source", "")).startswith("random init"):
        notes.append(
            "All models start from random initialisation (no pretrained weights on this machine): "
            "absolute numbers are far below what a pretrained backbone reaches, at smoke scale "
            "especially; compare variants with each other, not with published results."
        )
    return notes


# ---- plain entry point ---------------------------------------------------------------------------------
def run_benchmark(task: str, scale: str = "smoke", out: str | None = None, **kwargs) -> dict:
    """Run the benchmark in this process through ephemeral Prefect; returns the summary (also sim2real.json).

    ``kwargs`` are further :class:`Sim2RealParams` fields (real_train, real_test, seed, variants, steps, ...)."""
    from flows.env import prefect_defaults

    prefect_defaults()
    try:
        params = Sim2RealParams(task=task, scale=scale, out=out, **kwargs)
    except ValueError as e:  # pydantic's ValidationError: one line naming the field
        err = e.errors()[0] if hasattr(e, "errors") else {"loc": (), "msg": str(e)}
        key = ".".join(str(x) for x in err["loc"]) or "parameters"
        raise ConfigError(f"sim2real {key}", err["msg"]) from None
    resolve_real_sets(params)  # a missing real set fails here, before Prefect starts
    return sim2real_benchmark(params)
