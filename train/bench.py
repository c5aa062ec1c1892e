"""``simreal bench train``: training images/s and peak memory per model at 640 px, plus data-loading images/s.

Each model is measured in a fresh process (so peak memory is its own): a full training step as the
engine runs it (device-side kornia randomization, bf16 autocast on CUDA, channels_last, forward,
backward, optimizer step) on a synthetic batch, timed after warm-up with the device synchronised.
Data loading is measured separately on real files (``--data``, or generated 640x480 JPEGs with masks)
through the same DataLoader path, so the two numbers say whether loading can keep up.
On a CPU the iteration counts default to a handful: the numbers are indicative, not precise.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from synth.fsutil import atomic_write_json

log = logging.getLogger(__name__)

ALL_MODELS = (
    "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_mobilenet_v3_large_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
)


def _synthetic_batch(batch: int, size: int, n_objects: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    images = torch.rand((batch, 3, size, size), generator=g)
    targets = []
    for _ in range(batch):
        masks = torch.zeros((n_objects, size, size), dtype=torch.uint8)
        boxes = []
        for k in range(n_objects):
            w, h = (torch.randint(size // 12, size // 3, (2,), generator=g)).tolist()
            x, y = (
                torch.randint(0, size - w, (1,), generator=g).item(),
                torch.randint(0, size - h, (1,), generator=g).item(),
            )
            masks[k, y : y + h, x : x + w] = 1
            boxes.append([x, y, x + w, y + h])
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.ones(n_objects, dtype=torch.int64),
                "masks": masks,
            }
        )
    return images, targets


def _make_training_step(name: str, image_size: int, batch: int, device, use_amp: bool):
    """A closure running one full training step as the engine does, and the model's weights source."""
    import torch

    from train.augment import DomainRandomizer
    from train.config import AugmentConfig, ModelConfig
    from train.models import build_model

    cfg = ModelConfig(name=name, image_size=image_size)
    built = build_model(cfg, 5)
    model = built.model.to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    aug = DomainRandomizer(AugmentConfig(), image_size)
    images_cpu, targets_cpu = _synthetic_batch(batch, image_size, 4, seed=0)
    ctx = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if use_amp
        else torch.autocast(device.type, enabled=False)
    )

    def step():
        images = images_cpu.to(device, non_blocking=True)
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets_cpu]
        images, targets = aug(images, targets)
        if not cfg.is_rcnn:
            targets = [{k: t[k] for k in ("boxes", "labels")} for t in targets]
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with ctx:
            losses = model(list(images), targets)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, built.weights_source


def seconds_per_step(
    name: str, image_size: int, batch: int, *, device: str = "cpu", warmup: int = 2, iters: int = 4
) -> float:
    """Wall seconds of one training step (augmentation, forward, backward, update) of ``name`` here, in this
    process: what a time budget converts into a step count."""
    import torch

    dev = torch.device(device)
    step, _ = _make_training_step(name, image_size, batch, dev, use_amp=dev.type == "cuda")
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return (time.perf_counter() - t0) / iters


def _peak_memory_mib(device) -> tuple[float, str]:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def _measure_model(
    name: str,
    image_size: int,
    batch: int,
    warmup: int,
    iters: int,
    device_name: str,
    amp: str,
    threads: int | None,
    queue,
) -> None:
    """Child process: one model's training-step throughput and peak memory."""
    import torch

    try:
        if threads:
            torch.set_num_threads(threads)
        device = torch.device(device_name)
        use_amp = amp == "bf16" or (amp == "auto" and device.type == "cuda")
        step, weights_source = _make_training_step(name, image_size, batch, device, use_amp)

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        for _ in range(warmup):
            step()
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        seconds = time.perf_counter() - t0
        peak, kind = _peak_memory_mib(device)
        queue.put(
            {
                "images_per_s": round(batch * iters / seconds, 2),
                "step_s": round(seconds / iters, 3),
                "peak_memory_mib": round(peak, 1),
                "memory_kind": kind,
                "batch_size": batch,
                "iterations": iters,
                "warmup": warmup,
                "amp": "bf16" if use_amp else "off",
                "weights_source": weights_source,
            }
        )
    except Exception as e:  # noqa: BLE001 - reported per model, the benchmark goes on
        queue.put({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]})


def _write_sample_dataset(root: Path, n: int, width: int = 640, height: int = 480) -> Path:
    """JPEG photos-sized images with polygon-free RLE masks, like a rendered set."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        name = f"images/{i:04d}.jpg"
        Image.fromarray(img).save(root / name, quality=92)
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
        for _ in range(8):
            w, h = rng.integers(20, 200, 2)
            x, y = rng.integers(0, width - w), rng.integers(0, height - h)
            m = np.zeros((height, width), np.uint8)
            m[y : y + h, x : x + w] = 1
            rle = mask_utils.encode(np.asfortranarray(m))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h),
                    "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                }
            )
    (root / "annotations.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]})
    )
    return root


def measure_loading(data: str | Path | None, image_size: int, batch: int, workers: int, batches: int) -> dict:
    """Images/s through the training DataLoader path (decode, masks, letterbox, collate)."""
    from torch.utils.data import DataLoader

    from synth.coco import load_coco
    from train.data import CocoDetection, StepBatchSampler, build_label_map, collate_detection, loader_context

    with tempfile.TemporaryDirectory(prefix="simreal-bench-") as tmp:
        path = Path(data) if data else _write_sample_dataset(Path(tmp), n=max(16, batch * 2))
        src = load_coco(path)
        ds = CocoDetection(src, build_label_map(src.categories), image_size=image_size, masks=src.has_masks)
        loader = DataLoader(
            ds,
            num_workers=workers,
            collate_fn=collate_detection,
            batch_sampler=StepBatchSampler(len(ds), batch, batches + 1, seed=0),
            prefetch_factor=4 if workers else None,
            multiprocessing_context=loader_context() if workers else None,
        )
        it = iter(loader)
        next(it)  # worker start-up is not throughput
        t0 = time.perf_counter()
        n = sum(len(images) for images, _ in it)
        seconds = time.perf_counter() - t0
        return {
            "images_per_s": round(n / seconds, 2),
            "workers": workers,
            "batch_size": batch,
            "masks": ds.masks,
            "source": str(src.ann_file) if data else "generated 640x480 JPEGs, 8 masks each",
        }


def _result_line(name: str, r: dict) -> str:
    if "error" in r:
        return f"{name:34s} error: {r['error']}"
    return (
        f"{name:34s} {r['images_per_s']:8.2f} img/s  {r['step_s']:7.3f} s/step  "
        f"peak {r['peak_memory_mib']:8.0f} MiB ({r['memory_kind']})"
    )


def bench_train(
    models: list[str] | None = None,
    *,
    image_size: int = 640,
    batch_size: int | None = None,
    warmup: int | None = None,
    iterations: int | None = None,
    device: str = "auto",
    amp: str = "auto",
    data: str | Path | None = None,
    workers: int = 4,
    threads: int | None = None,
    out: str | Path | None = None,
) -> dict:
    """Benchmark each model; returns (and writes to `out`, when given) the results as a dict."""
    import torch

    from train.config import resolve_model_name
    from train.provenance import device_info, package_versions

    dev = "cuda" if (device == "auto" and torch.cuda.is_available()) or device == "cuda" else "cpu"
    gpu = dev == "cuda"
    batch_size = batch_size or (8 if gpu else 2)
    warmup = warmup if warmup is not None else (5 if gpu else 1)
    iterations = iterations or (20 if gpu else 2)
    names = [resolve_model_name(m) for m in (models or ALL_MODELS)]
    ctx = mp.get_context("spawn")
    results: dict = {}
    for name in names:
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_measure_model,
            args=(name, image_size, batch_size, warmup, iterations, dev, amp, threads, queue),
        )
        proc.start()
        proc.join()
        results[name] = (
            queue.get() if not queue.empty() else {"error": f"benchmark process exited with {proc.exitcode}"}
        )
        log.info("%s", _result_line(name, results[name]))
    loading = measure_loading(data, image_size, batch_size, workers, batches=max(4, iterations))
    log.info("%-34s %8.2f img/s  (%d workers)", "data loading", loading["images_per_s"], workers)
    fastest = max((r["images_per_s"] for r in results.values() if "images_per_s" in r), default=0.0)
    report = {
        "benchmark": "train",
        "image_size": image_size,
        "device": device_info(dev),
        "packages": package_versions(),
        "models": results,
        "data_loading": loading,
        "loading_keeps_up": loading["images_per_s"] >= fastest,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if out is not None:
        out = Path(out)
        path = out if out.suffix == ".json" else out / "bench_train.json"
        atomic_write_json(path, report)
        report["written_to"] = str(path)
    return report
