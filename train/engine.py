"""The training loop: ``train(cfg) -> run dir``, at the end of this file, reads as setup (``load_data``,
``build_state``, ``build_loaders``, ``start_records``) -> ``train_one_interval`` -> ``validate`` ->
``save_checkpoint``, repeated until the last step, then ``finish`` (final evaluation).

One step = one global batch (``batch_size`` per process x processes) of letterboxed synthetic images,
randomized on the device (train.augment), optionally with a batch of unlabelled target-domain photos
for DANN (train.dann) and for self-training on a mean teacher's pseudo-labels (train.self_training).
bf16 autocast on CUDA, channels_last, linear warmup then cosine LR, gradient clipping, DDP under
``torchrun`` (NCCL on GPUs, gloo on CPUs). Training is counted in steps, not epochs: the data order
(train.data.StepBatchSampler) is a pure function of (seed, step), which is what makes ``--resume`` continue
on the very next batch and 1 or N processes see the same global batches.

Run directory layout::

    RUN_DIR/
      config.yaml            the validated TrainConfig, defaults filled in
      provenance.json        git commit, package versions, device, seed, weights source, command line
      dataset_summary.json   train / validation / target sets: images, instances per class, mapping
      log.csv                one row per log interval and checkpoint: step, epoch, lr, losses (means over
                             the interval and all processes), domain accuracy, lambda, gradient norm,
                             images/s, share of time waiting for data, validation AP (when evaluated)
      tb/                    TensorBoard events (when tensorboard is importable)
      checkpoints/last.pt    detector + DANN heads + mean teacher + optimizer + LR schedule + step (resumable)
      eval/<set>/            metrics.json, predictions.json (validation split "val", configured sets)
      report.html, report.md, report_files/   written by train.report.write_report (simreal report)

log.csv is appended and flushed at every interval (a crash loses at most the last line); on resume it
is rewritten without the rows after the checkpoint's step.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from pydantic import ValidationError
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from synth.coco import CocoSource, load_coco
from synth.config import format_validation_error
from synth.errors import ConfigError, SimrealError
from synth.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from train.augment import DomainRandomizer
from train.config import TARGET_IMAGE_METHODS, TrainConfig
from train.dann import (
    DomainAdaptiveDetector,
    ImageDomainHead,
    InstanceDomainHead,
    feature_channels,
    ganin_lambda,
)
from train.data import (
    CocoDetection,
    LabelMap,
    StepBatchSampler,
    UnlabelledImages,
    build_label_map,
    collate_detection,
    dataset_summary,
    epochs_for,
    loader_context,
    split_image_ids,
)
from train.evaluate import CHECKPOINT_FIELDS, CHECKPOINT_FORMAT, evaluate_detector, load_checkpoint
from train.fourier import FourierStyle
from train.models import BuiltModel, build_model, count_parameters
from train.provenance import provenance
from train.self_training import MeanTeacher, pseudo_box_count

log = logging.getLogger(__name__)

LOG_FIELDS = [
    "step",
    "epoch",
    "lr",
    "loss",
    "loss_classifier",
    "loss_box_reg",
    "loss_mask",
    "loss_objectness",
    "loss_rpn_box_reg",
    "bbox_regression",
    "classification",
    "loss_domain_image",
    "loss_pseudo",
    "pseudo_boxes",
    "loss_domain_instance",
    "domain_acc",
    "domain_acc_instance",
    "lambda",
    "grad_norm",
    "images_per_s",
    "data_wait_frac",
    "val_bbox_AP",
    "val_segm_AP",
    "elapsed_s",
]


class TrainingError(SimrealError):
    """Training cannot go on (diverged loss, incompatible resume)."""


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# ---- setup -----------------------------------------------------------------------------------------
def setup_distributed(cfg: TrainConfig) -> DistInfo:
    """Single process, or one of WORLD_SIZE processes started by torchrun."""
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda requested but no GPU is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return DistInfo(rank, world, local_rank, device)


def seed_everything(seed: int, rank: int, step: int = 0) -> None:
    """Per-process stream: ranks differ (augmentation, RoI sampling), runs with one seed repeat."""
    torch.manual_seed(seed * 1_000_003 + rank * 7919 + step)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup from 0.1% to 100%, then cosine decay to `min_ratio`."""
    warmup = min(warmup, max(0, total - 1))
    if step < warmup:
        return 0.001 + (1 - 0.001) * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _use_amp(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")


def _use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")


# ---- data ------------------------------------------------------------------------------------------
@dataclass
class TrainData:
    """The labelled set, its class mapping, and the images each role uses."""

    source: CocoSource
    label_map: LabelMap
    train_ids: list[int]
    val_ids: list[int] | None  # None: every image of a separate validation set
    val_source: CocoSource | None

    @property
    def class_names(self) -> list[str]:
        return list(self.label_map.class_names)


def load_data(cfg: TrainConfig) -> TrainData:
    """Read and map the data first: a bad path or category map fails before anything is created."""
    source = load_coco(cfg.data)
    label_map = build_label_map(
        source.categories,
        category_map=cfg.category_map,
        class_agnostic=cfg.class_agnostic,
        where=source.ann_file,
    )
    if cfg.model.is_rcnn and not source.has_masks:
        raise ConfigError(
            source.ann_file,
            f"{cfg.model.name} needs instance masks but this set has boxes only "
            "(train an SSD model on it instead)",
        )
    if cfg.val_data:
        return TrainData(source, label_map, sorted(source.images), None, load_coco(cfg.val_data))
    train_ids, val_ids = split_image_ids(list(source.images), cfg.val_fraction, cfg.seed)
    return TrainData(source, label_map, train_ids, val_ids, source if val_ids else None)


def _to_device(targets: list[dict], device: torch.device) -> list[dict]:
    return [
        {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
        for t in targets
    ]


def _model_targets(targets: list[dict]) -> list[dict]:
    return [{k: t[k] for k in ("boxes", "labels", "masks") if k in t} for t in targets]


def build_loaders(
    cfg: TrainConfig,
    train_ds: CocoDetection,
    target_ds: UnlabelledImages | None,
    dinfo: DistInfo,
    start_step: int,
    batch_sampler: Callable[..., Sampler] = StepBatchSampler,
) -> tuple[Iterator, Iterator | None]:
    """Batch iterators whose order is a pure function of (seed, step): a resumed run continues exactly.
    ``batch_sampler`` draws the labelled batches (StepBatchSampler's signature; e.g. train.replay's mix)."""
    pin = dinfo.device.type == "cuda"

    def sampler(
        n: int,
        batch_size: int,
        seed: int,
        cls: Callable[..., Sampler] = StepBatchSampler,
        start_step=start_step,
    ):
        return cls(
            n,
            batch_size,
            cfg.steps,
            world_size=dinfo.world_size,
            rank=dinfo.rank,
            seed=seed,
            start_step=start_step,
        )

    loader = DataLoader(
        train_ds,
        num_workers=cfg.workers,
        collate_fn=collate_detection,
        pin_memory=pin,
        batch_sampler=sampler(len(train_ds), cfg.batch_size, cfg.seed, batch_sampler),
        prefetch_factor=4 if cfg.workers else None,
        persistent_workers=False,
        multiprocessing_context=loader_context() if cfg.workers else None,
    )
    if target_ds is None:
        return iter(loader), None
    target_loader = DataLoader(
        target_ds,
        num_workers=min(cfg.workers, 2),
        pin_memory=pin,
        batch_sampler=sampler(
            len(target_ds),
            cfg.dann.target_batch_size or cfg.batch_size,
            cfg.seed + 1,
            start_step=max(start_step, first_target_step(cfg)),
        ),
        multiprocessing_context=loader_context() if cfg.workers else None,
    )
    return iter(loader), iter(target_loader)


# ---- run directory ---------------------------------------------------------------------------------
def _prepare_run_dir(cfg: TrainConfig) -> Path:
    run = Path(cfg.out)
    last = run / "checkpoints" / "last.pt"
    if cfg.resume:
        if not last.is_file():
            raise ConfigError(last, "nothing to resume (no checkpoint)")
    elif last.is_file():
        raise ConfigError(
            run, "already holds a training run: pass --resume to continue it, or choose another --out"
        )
    run.mkdir(parents=True, exist_ok=True)
    return run


def _write_config(run: Path, cfg: TrainConfig) -> None:
    atomic_write_text(run / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


class CsvLog:
    """Append-only CSV with a fixed header; rows after `keep_until_step` are dropped on resume."""

    def __init__(self, path: Path, fields: list[str], keep_until_step: int | None = None):
        self.path, self.fields = path, fields
        if keep_until_step is not None and path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= keep_until_step]
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", restval="")
            w.writeheader()
            w.writerows(rows)
            atomic_write_text(path, buf.getvalue())
        elif not path.is_file() or path.stat().st_size == 0:
            atomic_write_text(path, ",".join(fields) + "\n")
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore", restval="")

    def write(self, row: dict) -> None:
        self._writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# ---- model, optimizer, schedule --------------------------------------------------------------------
@dataclass
class TrainState:
    """Everything a step changes and a checkpoint stores."""

    wrapper: DomainAdaptiveDetector  # the detector plus the DANN heads (checkpointed)
    model: torch.nn.Module  # what the loop calls: the wrapper, or DDP around it
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    built: BuiltModel
    weights_source: str
    start_step: int = 0
    teacher: MeanTeacher | None = None  # self-training's mean teacher, once its burn-in is over

    @property
    def detector(self) -> torch.nn.Module:
        return self.wrapper.detector


@dataclass(frozen=True)
class StartFrom:
    """A fresh run that starts from given detector weights instead of ``model.weights`` (train.extend: a
    trained detector whose class heads were enlarged). ``init_kind`` / ``norm`` are the architecture choices
    its weights were built with (as a checkpoint records them); the weights must fit exactly."""

    state: dict[str, torch.Tensor]
    init_kind: str
    norm: str | None
    source: str  # what logs and reports say the weights were


def resume_checkpoint(cfg: TrainConfig) -> dict | None:
    """The checkpoint a ``--resume`` run continues (None without --resume), read and checked before any
    work starts: missing, empty, foreign, incomplete or with an invalid config stops with one line."""
    if not cfg.resume:
        return None
    last = Path(cfg.out) / "checkpoints" / "last.pt"
    if not last.is_file():
        raise ConfigError(last, "nothing to resume (no checkpoint)")
    ckpt = load_checkpoint(last, fields=tuple(CHECKPOINT_FIELDS))
    try:
        TrainConfig.model_validate(ckpt["config"])
    except ValidationError as e:
        raise ConfigError(
            last, f"the checkpoint's config is invalid: {format_validation_error(last, e)}"
        ) from None
    return ckpt


def _check_resume_compatible(ckpt: dict, cfg: TrainConfig, class_names: list[str]) -> None:
    old = TrainConfig.model_validate(ckpt["config"])
    if old.model != cfg.model:
        raise TrainingError(cfg.out, "the model section differs from the checkpoint's; cannot resume")
    if list(ckpt["class_names"]) != list(class_names):
        raise TrainingError(
            cfg.out, f"classes differ from the checkpoint's ({ckpt['class_names']} vs {class_names})"
        )
    if _dann_shape(old) != _dann_shape(cfg):
        raise TrainingError(cfg.out, "DANN settings differ from the checkpoint's; cannot resume")
    if old.self_training != cfg.self_training:
        raise TrainingError(cfg.out, "self-training settings differ from the checkpoint's; cannot resume")


def _dann_shape(cfg: TrainConfig) -> tuple:
    """The DANN settings that decide which heads exist and their sizes: a checkpoint resumes only under the
    same ones."""
    d = cfg.dann
    return d.enabled, d.instance_level, d.levels, d.hidden_channels


def _domain_adaptive(
    cfg: TrainConfig, detector: torch.nn.Module, device: torch.device
) -> DomainAdaptiveDetector:
    """The detector wrapped with its DANN heads (none when DANN is off)."""
    image_head = instance_head = None
    if cfg.dann.enabled:
        channels = feature_channels(detector, cfg.model.image_size)
        try:
            image_head = ImageDomainHead(channels, cfg.dann.hidden_channels, cfg.dann.levels)
        except ValueError:  # the head decides which levels fit; here it becomes the one-line config error
            raise ConfigError(
                "dann.levels",
                f"{cfg.dann.levels} does not fit {cfg.model.name}, whose backbone has {len(channels)} feature "
                f"levels (0-{len(channels) - 1})",
            ) from None
        if cfg.dann.instance_level:
            instance_head = InstanceDomainHead(
                detector.roi_heads.box_predictor.cls_score.in_features, 2 * cfg.dann.hidden_channels
            )
    wrapper = DomainAdaptiveDetector(
        detector,
        image_head,
        instance_head,
        domain_weight=cfg.dann.weight,
        instance_rois_per_image=cfg.dann.instance_rois_per_image,
    ).to(device)
    if _use_channels_last(cfg, device):
        wrapper = wrapper.to(memory_format=torch.channels_last)
    return wrapper


def _restore(state: TrainState, ckpt: dict, cfg: TrainConfig) -> None:
    """Load a checkpoint's weights, optimizer and schedule; the run continues at its step."""
    try:
        state.detector.load_state_dict(ckpt["model"])
        if state.wrapper.image_head is not None:
            state.wrapper.image_head.load_state_dict(ckpt["domain_heads"]["image"])
        if state.wrapper.instance_head is not None:
            state.wrapper.instance_head.load_state_dict(ckpt["domain_heads"]["instance"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.scheduler.load_state_dict(ckpt["scheduler"])
        if isinstance(ckpt.get("teacher"), dict):
            state.teacher = new_teacher(state.detector, cfg)
            state.teacher.load_state_dict(ckpt["teacher"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:  # tensors that do not fit this model
        detail = (str(e).splitlines() or [""])[0][:120]
        raise ConfigError(
            Path(cfg.out) / "checkpoints" / "last.pt",
            f"does not fit the model it describes ({type(e).__name__}: {detail})",
        ) from None
    state.start_step = int(ckpt["step"])
    state.weights_source = ckpt["weights_source"]
    if state.start_step >= cfg.steps:
        raise ConfigError(
            "steps", f"the run already has {state.start_step} steps; raise --steps to train further"
        )


def _load_start(built: BuiltModel, start: StartFrom) -> None:
    try:
        built.model.load_state_dict(start.state)
    except RuntimeError as e:
        detail = (str(e).splitlines()[1:2] or [str(e)])[0].strip()[:160]
        raise ConfigError(start.source, f"its weights do not fit the {built.name} model ({detail})") from None
    built.weights_source = start.source


def build_state(
    cfg: TrainConfig,
    class_names: list[str],
    dinfo: DistInfo,
    run: Path,
    ckpt: dict | None = None,
    start: StartFrom | None = None,
) -> TrainState:
    """Model, DANN heads, optimizer, schedule. Initialisation is seeded and the same on every rank; a
    resumed run rebuilds the checkpoint's architecture without reading initial weights again
    (``ckpt``: the run's ``resume_checkpoint``, read here when not given); a fresh run with ``start``
    begins from its weights."""
    if cfg.resume:
        ckpt = ckpt if ckpt is not None else resume_checkpoint(cfg)
        _check_resume_compatible(ckpt, cfg, class_names)
        start = None
    seed_everything(cfg.seed, 0)
    restore = ckpt or ({"init_kind": start.init_kind, "norm": start.norm} if start else None)
    built = build_model(
        cfg.model,
        len(class_names),
        restore_kind=restore["init_kind"] if restore else None,
        restore_norm=restore.get("norm") if restore else None,
    )
    if start is not None:
        _load_start(built, start)
    wrapper = _domain_adaptive(cfg, built.model.to(dinfo.device), dinfo.device)
    params = [p for p in wrapper.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    )
    state = TrainState(wrapper, wrapper, params, optimizer, scheduler, built, built.weights_source)
    if ckpt is not None:
        _restore(state, ckpt, cfg)
    seed_everything(cfg.seed, dinfo.rank, state.start_step)
    if dinfo.world_size > 1:
        device_ids = [dinfo.device.index] if dinfo.device.type == "cuda" else None
        state.model = DistributedDataParallel(wrapper, device_ids=device_ids)
    return state


# ---- checkpoints -----------------------------------------------------------------------------------
def save_checkpoint(
    path: Path, state: TrainState, *, step: int, cfg: TrainConfig, label_map: LabelMap
) -> None:
    """Detector, DANN heads, optimizer, schedule and what is needed to rebuild the model (atomic)."""
    wrapper = state.wrapper
    heads = {}
    if wrapper.image_head is not None:
        heads["image"] = wrapper.image_head.state_dict()
    if wrapper.instance_head is not None:
        heads["instance"] = wrapper.instance_head.state_dict()
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "model": {k: v.contiguous() for k, v in wrapper.detector.state_dict().items()},
        "domain_heads": heads,
        "teacher": state.teacher.state_dict() if state.teacher is not None else None,
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "config": cfg.model_dump(mode="json"),
        "class_names": list(label_map.class_names),
        "label_mode": label_map.mode,
        "init_kind": state.built.init_kind,
        "norm": state.built.norm,
        "weights_source": state.weights_source,
    }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write_bytes(path, buf.getvalue())


# ---- records: config, provenance, dataset summary, CSV log, TensorBoard ----------------------------
class Records:
    """The run's log.csv and TensorBoard events (rank 0 only; the others hold a Records that writes nothing)."""

    def __init__(self, log_csv: CsvLog | None = None, tensorboard=None):
        self.log_csv, self.tensorboard = log_csv, tensorboard

    def write(self, row: dict, step: int, *, tensorboard: bool = True) -> None:
        if self.log_csv is None:
            return
        self.log_csv.write(row)
        if tensorboard and self.tensorboard is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, int | float):
                    self.tensorboard.add_scalar(k, v, step)

    def close(self) -> None:
        if self.log_csv is not None:
            self.log_csv.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _val_summary(data: TrainData) -> dict | None:
    if data.val_source is data.source and data.val_ids:
        return dataset_summary(data.val_source, data.label_map, data.val_ids)
    if data.val_source:
        return {"path": str(data.val_source.ann_file), "images": len(data.val_source.images)}
    return None


def _write_summaries(
    cfg: TrainConfig, run: Path, data: TrainData, n_train: int, target_ds, dinfo: DistInfo
) -> None:
    summary = {
        "train": dataset_summary(data.source, data.label_map, data.train_ids),
        "val": _val_summary(data),
        "target": (
            {"path": str(Path(cfg.target_images).resolve()), "images": len(target_ds)}
            if target_ds is not None
            else None
        ),
        "epochs": epochs_for(cfg.steps, cfg.batch_size, dinfo.world_size, n_train),
    }
    atomic_write_json(run / "dataset_summary.json", summary)


def start_records(
    cfg: TrainConfig,
    run: Path,
    data: TrainData,
    state: TrainState,
    *,
    n_train: int,
    target_ds,
    augmenter: DomainRandomizer,
    dinfo: DistInfo,
) -> Records:
    """Write config.yaml, dataset_summary.json and provenance.json; open log.csv and TensorBoard."""
    if not dinfo.is_main:
        return Records()
    device = dinfo.device
    _write_config(run, cfg)
    _write_summaries(cfg, run, data, n_train, target_ds, dinfo)
    n_params, n_trainable = count_parameters(state.detector)
    atomic_write_json(
        run / "provenance.json",
        provenance(
            device,
            seed=cfg.seed,
            world_size=dinfo.world_size,
            weights_source=state.weights_source,
            model=cfg.model.name,
            norm=state.built.norm,
            parameters=n_params,
            trainable_parameters=n_trainable,
            amp="bf16" if _use_amp(cfg, device) else "off",
            channels_last=_use_channels_last(cfg, device),
            augment=augmenter.describe(),
            class_names=data.class_names,
            resumed_at_step=state.start_step or None,
        ),
    )
    log_csv = CsvLog(run / "log.csv", LOG_FIELDS, keep_until_step=state.start_step if cfg.resume else None)
    names = data.class_names
    log.info(
        "simreal train: %s on %d images, %d class%s (%s%s), device %s%s; weights: %s",
        cfg.model.name,
        n_train,
        len(names),
        "es" if len(names) != 1 else "",
        ", ".join(names[:8]),
        " ..." if len(names) > 8 else "",
        device,
        f" x{dinfo.world_size}" if dinfo.world_size > 1 else "",
        state.weights_source,
    )
    return Records(log_csv, _tensorboard(run / "tb"))


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


# ---- one interval of steps -------------------------------------------------------------------------
@dataclass
class StepInputs:
    """Where each step's images come from and how they are put on the device."""

    batches: Iterator
    target_batches: Iterator | None
    augmenter: DomainRandomizer
    restyler: FourierStyle
    device: torch.device
    channels_last: bool
    amp: object  # an autocast context, or nullcontext

    def close(self) -> None:
        """Run the loaders to their end (their samplers hold exactly the steps taken), so their worker
        processes exit while training still owns them rather than in a finaliser at interpreter exit."""
        for batches in (self.batches, self.target_batches):
            for _ in batches or ():
                pass


@dataclass
class Meter:
    """Sums over the current log interval. They stay on the device: no host sync per step."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    count: int = 0
    images: int = 0
    data_wait: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def add(self, values: dict[str, torch.Tensor], images: int) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1
        self.images += images


def build_step_inputs(
    cfg: TrainConfig,
    train_ds: CocoDetection,
    target_ds: UnlabelledImages | None,
    dinfo: DistInfo,
    start_step: int,
    batch_sampler: Callable[..., Sampler] = StepBatchSampler,
) -> StepInputs:
    device = dinfo.device
    augmenter = DomainRandomizer(cfg.augment, cfg.model.image_size)
    batches, target_batches = build_loaders(cfg, train_ds, target_ds, dinfo, start_step, batch_sampler)
    return StepInputs(
        batches,
        target_batches,
        augmenter,
        FourierStyle(cfg.fda),
        device,
        _use_channels_last(cfg, device),
        torch.autocast(device.type, dtype=torch.bfloat16) if _use_amp(cfg, device) else nullcontext(),
    )


def uses_target_images(cfg: TrainConfig) -> bool:
    return any(getattr(cfg, key).enabled for key in TARGET_IMAGE_METHODS)


def new_teacher(detector: torch.nn.Module, cfg: TrainConfig) -> MeanTeacher:
    st = cfg.self_training
    return MeanTeacher(
        detector,
        ema=st.ema,
        threshold=st.threshold,
        max_per_image=st.max_per_image,
        ignore_below=st.ignore_below,
    )


def teacher_start_step(cfg: TrainConfig) -> int:
    """The step self-training's teacher is copied from the detector (the burn-in before it is source-only)."""
    return math.ceil(cfg.steps * cfg.self_training.start)


def first_target_step(cfg: TrainConfig) -> int:
    """The first step that uses a target batch: DANN and FDA need one every step, self-training alone only
    once its teacher exists, so its burn-in neither loads nor randomizes target photos it would drop."""
    return 0 if cfg.dann.enabled or cfg.fda.enabled else teacher_start_step(cfg)


def _dann_lambda(cfg: TrainConfig, step: int) -> float:
    return ganin_lambda(step / max(1, cfg.steps - 1), cfg.dann.gamma) if cfg.dann.enabled else 0.0


def train_step(
    state: TrainState, inputs: StepInputs, cfg: TrainConfig, step: int, meter: Meter, world: int
) -> None:
    """One optimizer step on one global batch: load, randomize on the device, forward, backward, clip."""
    t0 = time.perf_counter()
    images_u8, targets = next(inputs.batches)
    wants_target = inputs.target_batches is not None and step >= first_target_step(cfg)
    t_images_u8 = next(inputs.target_batches) if wants_target else None
    meter.data_wait += time.perf_counter() - t0

    device, augmenter = inputs.device, inputs.augmenter
    images = torch.stack(images_u8).to(device, non_blocking=True).float().div_(255)
    targets = _to_device(targets, device)
    if augmenter.active:
        images, targets = augmenter(images, targets)
    if cfg.self_training.enabled and state.teacher is None and step >= teacher_start_step(cfg):
        state.teacher = new_teacher(state.detector, cfg)
    t_images = pseudo = None
    if t_images_u8 is not None:
        t_images = t_images_u8.to(device, non_blocking=True).float().div_(255)
        if inputs.restyler.active:  # the photos as they are lend their look to the randomized renders
            images = inputs.restyler(images, t_images)
        if not cfg.dann.enabled and state.teacher is None:
            t_images = None  # FDA alone: the detector never sees the photos
    if t_images is not None:
        if state.teacher is not None:
            # labelled by the teacher as they are, then randomized together with their labels
            with inputs.amp:
                pseudo = state.teacher.pseudo_labels(t_images)
            if augmenter.active:
                t_images, pseudo = augmenter(t_images, pseudo)
        elif augmenter.active:
            t_images = augmenter.images_only(t_images)
    if inputs.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    with inputs.amp:
        out = state.model(
            list(images),
            _model_targets(targets),
            list(t_images) if t_images is not None else None,
            _dann_lambda(cfg, step),
            pseudo_targets=_model_targets(pseudo) if pseudo is not None else None,
            pseudo_weight=cfg.self_training.weight,
        )
    loss = sum(v for k, v in out.items() if not k.startswith("metric_"))
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = (
        torch.nn.utils.clip_grad_norm_(state.params, cfg.clip_grad_norm)
        if cfg.clip_grad_norm
        else torch.zeros((), device=device)
    )
    state.optimizer.step()
    state.scheduler.step()
    if state.teacher is not None:
        state.teacher.update(state.detector)
    values = {k: v.detach().float() for k, v in out.items()}
    if pseudo is not None:
        values["metric_pseudo_boxes"] = pseudo_box_count(pseudo).to(device)
    values.update(loss=loss.detach().float(), grad_norm=grad_norm.detach().float())
    meter.add(values, len(images_u8) * world)


def train_one_interval(
    state: TrainState,
    inputs: StepInputs,
    cfg: TrainConfig,
    meter: Meter,
    bar,
    start: int,
    stop: int,
    world: int,
) -> None:
    """Steps `start` .. `stop` - 1; their losses accumulate in `meter`."""
    for step in range(start, stop):
        train_step(state, inputs, cfg, step, meter, world)
        bar.update(1)


def _all_reduce_mean(values: dict[str, torch.Tensor], dinfo: DistInfo) -> dict[str, float]:
    keys = sorted(values)
    vec = torch.stack([values[k].reshape(()) for k in keys])
    if dinfo.world_size > 1:
        vec = vec.to(dinfo.device)
        dist.all_reduce(vec)
        vec /= dinfo.world_size
    return dict(zip(keys, vec.cpu().tolist(), strict=True))


def interval_row(
    meter: Meter,
    state: TrainState,
    cfg: TrainConfig,
    dinfo: DistInfo,
    done: int,
    n_train: int,
    run_start: float,
) -> dict:
    """log.csv's row for the interval ending at step `done`: means over the interval and all processes."""
    means = _all_reduce_mean({k: v / meter.count for k, v in meter.sums.items()}, dinfo)
    if not math.isfinite(means["loss"]):  # checked before any checkpoint can store it
        raise TrainingError(
            f"step {done}", f"loss is {means['loss']} (diverged); lower --lr or check the data"
        )
    elapsed = time.perf_counter() - meter.start
    row = {k.replace("metric_", ""): v for k, v in means.items()}
    row.update(
        step=done,
        epoch=round(done * cfg.batch_size * dinfo.world_size / n_train, 3),
        lr=state.scheduler.get_last_lr()[0],
        images_per_s=meter.images / elapsed if elapsed > 0 else 0.0,
        data_wait_frac=meter.data_wait / elapsed if elapsed > 0 else 0.0,
        elapsed_s=round(time.perf_counter() - run_start, 1),
    )
    if cfg.dann.enabled:
        row["lambda"] = _dann_lambda(cfg, done - 1)
    return row


# ---- evaluation ------------------------------------------------------------------------------------
def validate(
    state: TrainState,
    data: TrainData,
    cfg: TrainConfig,
    dinfo: DistInfo,
    run: Path,
    *,
    final: bool,
    step: int,
) -> dict:
    """COCO AP on the validation images (rank 0; the others wait at a barrier).

    `val_ids` None means every image of a separate validation set, which is mapped onto the classes by
    name; the held-out split of the training set uses the training set's own mapping.
    """
    result = {}
    if dinfo.is_main:
        class_names = data.class_names
        same_set = data.val_ids is not None
        metrics = evaluate_detector(
            state.detector,
            class_names,
            data.val_source,
            out_dir=run / "eval" / "val" if final else None,
            name="val",
            category_map=cfg.category_map if same_set else None,
            class_agnostic=class_names[0] if cfg.class_agnostic else None,
            image_ids=data.val_ids,
            device=dinfo.device,
            batch_size=cfg.batch_size,
            workers=0,
            nms_threshold=cfg.model.nms_threshold,
            meta=_eval_meta(run, cfg, dinfo, step),
            floor_from=data.source if final else None,
            floor_ids=data.train_ids,
        )
        result["val_bbox_AP"] = metrics["bbox"]["AP"]
        if metrics.get("segm"):
            result["val_segm_AP"] = metrics["segm"]["AP"]
        state.wrapper.train()
    if not final:
        _barrier(dinfo)
    return result


def _eval_meta(run: Path, cfg: TrainConfig, dinfo: DistInfo, step: int, **extra) -> dict:
    return {
        "checkpoint": str((run / "checkpoints" / "last.pt").resolve()),
        "step": step,
        "model": cfg.model.name,
        **extra,
        "device": str(dinfo.device),
    }


def evaluate_configured_sets(
    state: TrainState, data: TrainData, cfg: TrainConfig, dinfo: DistInfo, run: Path
) -> None:
    """Every set of ``cfg.eval`` into eval/<name>/ (rank 0)."""
    class_names = data.class_names
    meta = _eval_meta(run, cfg, dinfo, cfg.steps, weights_source=state.weights_source)
    for es in cfg.eval:
        src = load_coco(es.data)
        agnostic = (
            True
            if es.class_agnostic
            else (class_names[0] if data.label_map.mode == "class-agnostic" and not es.category_map else None)
        )
        evaluate_detector(
            state.detector,
            class_names,
            src,
            out_dir=run / "eval" / (es.name or src.name),
            name=es.name or src.name,
            category_map=es.category_map,
            class_agnostic=agnostic,
            device=dinfo.device,
            batch_size=cfg.batch_size,
            workers=cfg.workers,
            nms_threshold=cfg.model.nms_threshold,
            meta=meta,
            floor_from=es.floor_from or data.source,
            floor_ids=None if es.floor_from else data.train_ids,
        )


def _barrier(dinfo: DistInfo) -> None:
    if dinfo.world_size > 1:
        dist.barrier()


# ---- the loop --------------------------------------------------------------------------------------
def _is_log_step(done: int, cfg: TrainConfig) -> bool:
    return done % cfg.log_every == 0 or done % cfg.checkpoint_every == 0 or done == cfg.steps


def _is_eval_step(done: int, cfg: TrainConfig, data: TrainData) -> bool:
    """Intermediate validation (the final one runs after the loop)."""
    return (
        data.val_source is not None
        and bool(cfg.eval_every)
        and done % cfg.eval_every == 0
        and done < cfg.steps
    )


def _next_stop(step: int, cfg: TrainConfig) -> int:
    """The next step after `step` that logs, validates or checkpoints."""
    every = [e for e in (cfg.log_every, cfg.checkpoint_every, cfg.eval_every) if e]
    return min([cfg.steps] + [(step // e + 1) * e for e in every])


def finish(
    state: TrainState, data: TrainData, cfg: TrainConfig, dinfo: DistInfo, run: Path, records: Records
) -> None:
    """Final evaluation (the validation split, then every configured set), then close the records."""
    if dinfo.is_main:
        if data.val_source is not None:
            final = validate(state, data, cfg, dinfo, run, final=True, step=cfg.steps)
            records.write({"step": cfg.steps, **final}, cfg.steps, tensorboard=False)
        evaluate_configured_sets(state, data, cfg, dinfo, run)
        records.close()
    _barrier(dinfo)
    if dinfo.world_size > 1:
        dist.destroy_process_group()


def train(
    cfg: TrainConfig,
    *,
    start: StartFrom | None = None,
    batch_sampler: Callable[..., Sampler] = StepBatchSampler,
) -> Path:
    """Train a detector as configured; returns the run directory (see the module docstring).

    ``start``: begin from these weights instead of ``model.weights``; ``batch_sampler``: how the labelled
    batches are drawn (train.extend passes both)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt = resume_checkpoint(cfg)
    data = load_data(cfg)
    dinfo = setup_distributed(cfg)
    run = _prepare_run_dir(cfg) if dinfo.is_main else Path(cfg.out)
    _barrier(dinfo)
    size = cfg.model.image_size
    train_ds = CocoDetection(
        data.source, data.label_map, image_ids=data.train_ids, image_size=size, masks=cfg.model.is_rcnn
    )
    target_ds = UnlabelledImages(cfg.target_images, size) if uses_target_images(cfg) else None
    state = build_state(cfg, data.class_names, dinfo, run, ckpt, start)
    del ckpt, start  # their tensors now live in the model and optimizer
    inputs = build_step_inputs(cfg, train_ds, target_ds, dinfo, state.start_step, batch_sampler)
    records = start_records(
        cfg,
        run,
        data,
        state,
        n_train=len(train_ds),
        target_ds=target_ds,
        augmenter=inputs.augmenter,
        dinfo=dinfo,
    )
    bar = tqdm(
        total=cfg.steps,
        initial=state.start_step,
        disable=not (dinfo.is_main and cfg.progress),
        dynamic_ncols=True,
        desc="train",
    )
    run_start = time.perf_counter()
    meter = Meter()
    state.wrapper.train()
    step = state.start_step
    while step < cfg.steps:
        stop = _next_stop(step, cfg)
        train_one_interval(state, inputs, cfg, meter, bar, step, stop, dinfo.world_size)
        step = stop
        row = None
        if _is_log_step(step, cfg):
            row = interval_row(meter, state, cfg, dinfo, step, len(train_ds), run_start)
            bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2g}")
            meter = Meter()
        if _is_eval_step(step, cfg, data):
            row = row or {"step": step}
            row.update(validate(state, data, cfg, dinfo, run, final=False, step=step))
            meter.start = time.perf_counter()  # validation time is not training throughput
        if row is not None:
            records.write(row, step)
        if dinfo.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_checkpoint(
                run / "checkpoints" / "last.pt", state, step=step, cfg=cfg, label_map=data.label_map
            )
    bar.close()
    inputs.close()
    _barrier(dinfo)
    finish(state, data, cfg, dinfo, run, records)
    return run
