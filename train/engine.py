"""The training loop: ``train(cfg) -> run dir``. Read it from ``train`` down.

One step = one global batch (``batch_size`` per process x processes) of letterboxed synthetic images,
randomized on the device (train.augment), optionally with a batch of unlabelled target-domain photos
for DANN (train.dann). bf16 autocast on CUDA, channels_last, linear warmup then cosine LR, gradient
clipping, DDP under ``torchrun`` (NCCL on GPUs, gloo on CPUs). Training is counted in steps, not
epochs: the data order (train.data.StepBatchSampler) is a pure function of (seed, step), which is what
makes ``--resume`` continue on the very next batch and 1 or N processes see the same global batches.

Run directory layout::

    RUN_DIR/
      config.yaml            the validated TrainConfig, defaults filled in
      provenance.json        git commit, package versions, device, seed, weights source, command line
      dataset_summary.json   train / validation / target sets: images, instances per class, mapping
      log.csv                one row per log interval and checkpoint: step, epoch, lr, losses (means over
                             the interval and all processes), domain accuracy, lambda, gradient norm,
                             images/s, share of time waiting for data, validation AP (when evaluated)
      tb/                    TensorBoard events (when tensorboard is importable)
      checkpoints/last.pt    detector + DANN heads + optimizer + LR schedule + step (resumable)
      eval/<set>/            metrics.json, predictions.json (validation split "val", configured sets)
      report.html, report.md, report_files/   written by train.report.write_report (simreal report)

log.csv is appended and flushed at every interval (a crash loses at most the last line); on resume it
is rewritten without the rows after the checkpoint's step.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from synth.errors import ConfigError, SimrealError
from synth.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from train.config import TrainConfig
from train.evaluate import CHECKPOINT_FORMAT, evaluate_detector
from train.provenance import provenance


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


# ---- checkpoints -----------------------------------------------------------------------------------
def save_checkpoint(
    path: Path,
    *,
    step: int,
    wrapper,
    optimizer,
    scheduler,
    cfg: TrainConfig,
    class_names: list[str],
    label_mode: str,
    init_kind: str,
    norm: str,
    weights_source: str,
) -> None:
    heads = {}
    if wrapper.image_head is not None:
        heads["image"] = wrapper.image_head.state_dict()
    if wrapper.instance_head is not None:
        heads["instance"] = wrapper.instance_head.state_dict()
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "model": {k: v.contiguous() for k, v in wrapper.detector.state_dict().items()},
        "domain_heads": heads,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "config": cfg.model_dump(mode="json"),
        "class_names": list(class_names),
        "label_mode": label_mode,
        "init_kind": init_kind,
        "norm": norm,
        "weights_source": weights_source,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _check_resume_compatible(ckpt: dict, cfg: TrainConfig, class_names: list[str]) -> None:
    old = TrainConfig.model_validate(ckpt["config"])
    if old.model != cfg.model:
        raise TrainingError(cfg.out, "the model section differs from the checkpoint's; cannot resume")
    if list(ckpt["class_names"]) != list(class_names):
        raise TrainingError(
            cfg.out, f"classes differ from the checkpoint's ({ckpt['class_names']} vs {class_names})"
        )
    if old.dann.enabled != cfg.dann.enabled or old.dann.instance_level != cfg.dann.instance_level:
        raise TrainingError(cfg.out, "DANN settings differ from the checkpoint's; cannot resume")


# ---- data ------------------------------------------------------------------------------------------
def _to_device(targets: list[dict], device: torch.device) -> list[dict]:
    return [
        {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
        for t in targets
    ]


def _model_targets(targets: list[dict]) -> list[dict]:
    return [{k: t[k] for k in ("boxes", "labels", "masks") if k in t} for t in targets]


def _endless(loader):
    while True:
        yield from loader


# ---- the loop --------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> Path:
    """Train a detector as configured; returns the run directory (see the module docstring)."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from train.augment import DomainRandomizer
    from train.dann import (
        DomainAdaptiveDetector,
        ImageDomainHead,
        InstanceDomainHead,
        feature_channels,
        ganin_lambda,
    )
    from train.data import (
        CocoDetection,
        StepBatchSampler,
        UnlabelledImages,
        build_label_map,
        collate_detection,
        dataset_summary,
        epochs_for,
        load_coco,
        split_image_ids,
    )
    from train.models import build_model, count_parameters

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # Data first: a bad path or category map fails before anything is created.
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
        train_ids, val_ids, val_source = sorted(source.images), None, load_coco(cfg.val_data)
    else:
        train_ids, val_ids = split_image_ids(list(source.images), cfg.val_fraction, cfg.seed)
        val_source = source if val_ids else None
    dinfo = setup_distributed(cfg)
    device = dinfo.device
    run = _prepare_run_dir(cfg) if dinfo.is_main else Path(cfg.out)
    _barrier(dinfo)
    size = cfg.model.image_size
    train_ds = CocoDetection(source, label_map, image_ids=train_ids, image_size=size, masks=cfg.model.is_rcnn)
    target_ds = UnlabelledImages(cfg.target_images, size) if cfg.dann.enabled else None

    # Model, DANN heads, optimizer, schedule. Initialisation is seeded and the same on every rank; a
    # resumed run rebuilds the checkpoint's architecture without reading initial weights again.
    ckpt = None
    if cfg.resume:
        ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        _check_resume_compatible(ckpt, cfg, list(label_map.class_names))
    seed_everything(cfg.seed, 0)
    built = build_model(
        cfg.model,
        label_map.num_classes,
        restore_kind=ckpt["init_kind"] if ckpt else None,
        restore_norm=ckpt.get("norm") if ckpt else None,
    )
    detector = built.model.to(device)
    image_head = instance_head = None
    if cfg.dann.enabled:
        image_head = ImageDomainHead(feature_channels(detector, size), cfg.dann.hidden_channels)
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
    params = [p for p in wrapper.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    )

    start_step = 0
    if ckpt is not None:
        detector.load_state_dict(ckpt["model"])
        if image_head is not None:
            image_head.load_state_dict(ckpt["domain_heads"]["image"])
        if instance_head is not None:
            instance_head.load_state_dict(ckpt["domain_heads"]["instance"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_step = int(ckpt["step"])
        weights_source = ckpt["weights_source"]
        if start_step >= cfg.steps:
            raise ConfigError(
                "steps", f"the run already has {start_step} steps; raise --steps to train further"
            )
        del ckpt
    else:
        weights_source = built.weights_source
    seed_everything(cfg.seed, dinfo.rank, start_step)

    model = wrapper
    if dinfo.world_size > 1:
        model = DDP(wrapper, device_ids=[device.index] if device.type == "cuda" else None)

    augmenter = DomainRandomizer(cfg.augment, size)
    pin = device.type == "cuda"
    loader = DataLoader(
        train_ds,
        num_workers=cfg.workers,
        collate_fn=collate_detection,
        pin_memory=pin,
        batch_sampler=StepBatchSampler(
            len(train_ds),
            cfg.batch_size,
            cfg.steps,
            world_size=dinfo.world_size,
            rank=dinfo.rank,
            seed=cfg.seed,
            start_step=start_step,
        ),
        prefetch_factor=4 if cfg.workers else None,
        persistent_workers=False,
    )
    target_iter = None
    if target_ds is not None:
        target_loader = DataLoader(
            target_ds,
            num_workers=min(cfg.workers, 2),
            pin_memory=pin,
            batch_sampler=StepBatchSampler(
                len(target_ds),
                cfg.dann.target_batch_size or cfg.batch_size,
                cfg.steps,
                world_size=dinfo.world_size,
                rank=dinfo.rank,
                seed=cfg.seed + 1,
                start_step=start_step,
            ),
        )
        target_iter = iter(target_loader)

    # Records: config, provenance, dataset summary, CSV log, TensorBoard.
    class_names = list(label_map.class_names)
    n_params, n_trainable = count_parameters(detector)
    fields = [
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
    log = writer = None
    if dinfo.is_main:
        _write_config(run, cfg)
        summary = {
            "train": dataset_summary(source, label_map, train_ids),
            "val": (
                dataset_summary(val_source, label_map, val_ids)
                if val_source is source and val_ids
                else {"path": str(val_source.ann_file), "images": len(val_source.images)}
                if val_source
                else None
            ),
            "target": (
                {"path": str(Path(cfg.target_images).resolve()), "images": len(target_ds)}
                if target_ds is not None
                else None
            ),
            "epochs": epochs_for(cfg.steps, cfg.batch_size, dinfo.world_size, len(train_ds)),
        }
        atomic_write_json(run / "dataset_summary.json", summary)
        atomic_write_json(
            run / "provenance.json",
            provenance(
                device,
                seed=cfg.seed,
                world_size=dinfo.world_size,
                weights_source=weights_source,
                model=cfg.model.name,
                norm=built.norm,
                parameters=n_params,
                trainable_parameters=n_trainable,
                amp="bf16" if _use_amp(cfg, device) else "off",
                channels_last=_use_channels_last(cfg, device),
                augment=augmenter.describe(),
                class_names=class_names,
                resumed_at_step=start_step or None,
            ),
        )
        log = CsvLog(run / "log.csv", fields, keep_until_step=start_step if cfg.resume else None)
        writer = _tensorboard(run / "tb")
        print(
            f"simreal train: {cfg.model.name} on {len(train_ds)} images, {len(class_names)} "
            f"class{'es' if len(class_names) != 1 else ''} "
            f"({', '.join(class_names[:8])}{' ...' if len(class_names) > 8 else ''}), device {device}"
            f"{f' x{dinfo.world_size}' if dinfo.world_size > 1 else ''}; weights: {weights_source}",
            flush=True,
        )

    amp = torch.autocast(device.type, dtype=torch.bfloat16) if _use_amp(cfg, device) else nullcontext()
    channels_last = _use_channels_last(cfg, device)
    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        disable=not (dinfo.is_main and cfg.progress),
        dynamic_ncols=True,
        desc="train",
    )
    sums: dict[str, torch.Tensor] = {}
    count = 0
    images_seen = 0
    data_wait = 0.0
    interval_start = time.perf_counter()
    run_start = time.perf_counter()
    wrapper.train()
    batches = iter(loader)
    for step in range(start_step, cfg.steps):
        t0 = time.perf_counter()
        images_u8, targets = next(batches)
        t_images_u8 = next(target_iter) if target_iter is not None else None
        data_wait += time.perf_counter() - t0

        images = torch.stack(images_u8).to(device, non_blocking=True).float().div_(255)
        targets = _to_device(targets, device)
        if augmenter.active:
            images, targets = augmenter(images, targets)
        t_images = None
        if t_images_u8 is not None:
            t_images = t_images_u8.to(device, non_blocking=True).float().div_(255)
            if augmenter.active:
                t_images = augmenter.images_only(t_images)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        lambd = ganin_lambda(step / max(1, cfg.steps - 1), cfg.dann.gamma) if cfg.dann.enabled else 0.0

        with amp:
            out = model(
                list(images), _model_targets(targets), list(t_images) if t_images is not None else None, lambd
            )
        loss = sum(v for k, v in out.items() if not k.startswith("metric_"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
            if cfg.clip_grad_norm
            else torch.zeros((), device=device)
        )
        optimizer.step()
        scheduler.step()

        # Sums stay on the device: no host sync per step, only when a row is written.
        values = {k: v.detach().float() for k, v in out.items()}
        values.update(loss=loss.detach().float(), grad_norm=grad_norm.detach().float())
        for k, v in values.items():
            sums[k] = sums[k] + v if k in sums else v
        count += 1
        images_seen += len(images_u8) * dinfo.world_size
        bar.update(1)

        done = step + 1
        is_last = done == cfg.steps
        row = None
        if done % cfg.log_every == 0 or done % cfg.checkpoint_every == 0 or is_last:
            means = _all_reduce_mean({k: v / count for k, v in sums.items()}, dinfo)
            if not math.isfinite(means["loss"]):  # checked before any checkpoint can store it
                raise TrainingError(
                    f"step {done}", f"loss is {means['loss']} (diverged); lower --lr or check the data"
                )
            elapsed = time.perf_counter() - interval_start
            row = {k.replace("metric_", ""): v for k, v in means.items()}
            row.update(
                step=done,
                epoch=round(done * cfg.batch_size * dinfo.world_size / len(train_ds), 3),
                lr=scheduler.get_last_lr()[0],
                images_per_s=images_seen / elapsed if elapsed > 0 else 0.0,
                data_wait_frac=data_wait / elapsed if elapsed > 0 else 0.0,
                elapsed_s=round(time.perf_counter() - run_start, 1),
            )
            if cfg.dann.enabled:
                row["lambda"] = lambd
            bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2g}")
            sums, count, images_seen, data_wait = {}, 0, 0, 0.0
            interval_start = time.perf_counter()

        if val_source is not None and cfg.eval_every and done % cfg.eval_every == 0 and not is_last:
            row = row or {"step": done}
            row.update(
                _validate(
                    wrapper, class_names, val_source, val_ids, device, cfg, dinfo, run, final=False, step=done
                )
            )
            interval_start = time.perf_counter()
        if row is not None and dinfo.is_main:
            log.write(row)
            if writer is not None:
                for k, v in row.items():
                    if k not in ("step", "epoch") and isinstance(v, int | float):
                        writer.add_scalar(k, v, done)
        if dinfo.is_main and (done % cfg.checkpoint_every == 0 or is_last):
            save_checkpoint(
                run / "checkpoints" / "last.pt",
                step=done,
                wrapper=wrapper,
                optimizer=optimizer,
                scheduler=scheduler,
                cfg=cfg,
                class_names=class_names,
                label_mode=label_map.mode,
                init_kind=built.init_kind,
                norm=built.norm,
                weights_source=weights_source,
            )
    bar.close()
    _barrier(dinfo)

    # Final evaluation: the validation split, then every configured set.
    if dinfo.is_main:
        if val_source is not None:
            final = _validate(
                wrapper, class_names, val_source, val_ids, device, cfg, dinfo, run, final=True, step=cfg.steps
            )
            log.write({"step": cfg.steps, **final})
        meta = {
            "checkpoint": str((run / "checkpoints" / "last.pt").resolve()),
            "step": cfg.steps,
            "model": cfg.model.name,
            "weights_source": weights_source,
            "device": str(device),
        }
        for es in cfg.eval:
            src = load_coco(es.data)
            agn = (
                True
                if es.class_agnostic
                else (class_names[0] if label_map.mode == "class-agnostic" and not es.category_map else None)
            )
            evaluate_detector(
                detector,
                class_names,
                src,
                out_dir=run / "eval" / (es.name or src.name),
                name=es.name or src.name,
                category_map=es.category_map,
                class_agnostic=agn,
                device=device,
                batch_size=cfg.batch_size,
                workers=cfg.workers,
                nms_threshold=cfg.model.nms_threshold,
                meta=meta,
            )
        log.close()
        if writer is not None:
            writer.close()
    _barrier(dinfo)
    if dinfo.world_size > 1:
        dist.destroy_process_group()
    return run


def _validate(
    wrapper,
    class_names,
    val_source,
    val_ids,
    device,
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
        meta = {
            "checkpoint": str((run / "checkpoints" / "last.pt").resolve()),
            "step": step,
            "model": cfg.model.name,
            "device": str(device),
        }
        same_set = val_ids is not None
        metrics = evaluate_detector(
            wrapper.detector,
            class_names,
            val_source,
            out_dir=run / "eval" / "val" if final else None,
            name="val",
            category_map=cfg.category_map if same_set else None,
            class_agnostic=class_names[0] if cfg.class_agnostic else None,
            image_ids=val_ids,
            device=device,
            batch_size=cfg.batch_size,
            workers=0,
            nms_threshold=cfg.model.nms_threshold,
            meta=meta,
        )
        result["val_bbox_AP"] = metrics["bbox"]["AP"]
        if metrics.get("segm"):
            result["val_segm_AP"] = metrics["segm"]["AP"]
        wrapper.train()
    if not final:
        _barrier(dinfo)
    return result


def _all_reduce_mean(values: dict[str, torch.Tensor], dinfo: DistInfo) -> dict[str, float]:
    keys = sorted(values)
    vec = torch.stack([values[k].reshape(()) for k in keys])
    if dinfo.world_size > 1:
        vec = vec.to(dinfo.device)
        dist.all_reduce(vec)
        vec /= dinfo.world_size
    return dict(zip(keys, vec.cpu().tolist(), strict=True))


def _barrier(dinfo: DistInfo) -> None:
    if dinfo.world_size > 1:
        dist.barrier()


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))
