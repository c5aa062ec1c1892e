"""``simreal train`` and ``simreal bench train``: fitting detectors, and how fast that goes.

How the flags and --config become one TrainConfig is flows/cli/train_config.py (``train_config_from_args``).
"""

from __future__ import annotations

import argparse
import json
import textwrap

from flows.cli import add_command
from flows.cli.evaluation import print_metrics
from flows.cli.train_config import train_config_from_args

TRAIN_EPILOG = textwrap.dedent("""\
    examples:
      simreal train --data runs/shelf --model maskrcnn --out runs/train-shelf
      simreal train --data runs/shelf --model maskrcnn_mobilenet --image-size 512 --steps 3000 \\
          --target-images photos/ --dann --self-train --eval ../shared/real/retail/ycbv_sample --out runs/dann
      simreal train --data runs/bin --model ssdlite --class-agnostic screw --out runs/screws
      simreal train --config train.yaml --resume
      torchrun --nproc_per_node 2 -m flows.cli train --config train.yaml    (DDP, 2 processes)

      simreal train --config configs/train_cpu.yaml --data runs/shelf --out runs/cpu

    models: maskrcnn (ResNet-50 FPN v2), maskrcnn_mobilenet (MobileNetV3 FPN, CPU-friendly),
            ssd (SSD300 VGG16), ssdlite (SSDlite320 MobileNetV3).
    weights: auto (default: torchvision's COCO, else ImageNet weights from the torch hub cache
            $TORCH_HOME/hub/checkpoints, else downloaded, else random init with a warning),
            DEFAULT or COCO (COCO detector), IMAGENET (backbone), none (random init), a torchvision
            name (ResNet50_Weights.IMAGENET1K_V1) or FILE. Logs and reports say which were used.
    Without CUDA, what is not given takes the CPU recipe of the default run (SSDlite, 224 px,
    batch 8, 700 steps, AdamW: flows/params.py CPU_RECIPE); the log says so.
    """)

BENCH_TRAIN_EPILOG = textwrap.dedent("""\
    examples:
      simreal bench train --out runs/bench
      simreal bench train --models maskrcnn ssdlite --batch-size 16 --device cuda --out runs/bench/h100.json
    """)


def _train(args) -> int:
    from train.engine import train

    run = train(train_config_from_args(args))
    print(f"run directory: {run}")
    for mfile in sorted((run / "eval").glob("*/metrics.json")):
        print_metrics(json.loads(mfile.read_text()))
    return 0


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "train",
        help="train Mask R-CNN / SSD on a COCO set (DR, DANN, DDP)",
        description="Train a torchvision detector on a COCO dataset (synthetic or real) with kornia domain "
        "randomization and optional adversarial adaptation (DANN) to unlabelled target photos. "
        "Flags override the values of --config.",
        epilog=TRAIN_EPILOG,
    )
    p.add_argument("--config", help="TrainConfig YAML (see train/config.py); flags override it")
    p.add_argument("--data", help="COCO dataset folder (annotations.json + images/) or annotations .json")
    p.add_argument("--out", help="run directory to create (or continue with --resume)")
    p.add_argument("--model", help="maskrcnn | maskrcnn_mobilenet | ssd | ssdlite (or the full names)")
    p.add_argument(
        "--image-size", type=int, help="square training size in px (default 512; 256 without CUDA)"
    )
    p.add_argument(
        "--weights",
        metavar="DEFAULT|COCO|IMAGENET|none|auto|FILE",
        help="initial weights (default auto; see below)",
    )
    p.add_argument("--steps", type=int, help="optimizer steps (default 2000; 300 without CUDA)")
    p.add_argument("--batch-size", type=int, help="images per step per process (default 4; 2 without CUDA)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.02 for SGD)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--target-images", help="unlabelled target-domain photos: a folder or a COCO set")
    p.add_argument(
        "--dann", action="store_true", help="adversarial adaptation to --target-images (image level)"
    )
    p.add_argument("--dann-instance", action="store_true", help="DANN at image and RoI level (R-CNN only)")
    p.add_argument("--dann-weight", type=float, help="weight of the domain loss (default 0.1)")
    p.add_argument(
        "--self-train",
        action="store_true",
        help="from half-way, also learn from a mean teacher's confident detections on --target-images",
    )
    p.add_argument(
        "--self-train-threshold", type=float, help="teacher score a detection needs to become a label (0.5)"
    )
    p.add_argument(
        "--fda",
        action="store_true",
        help="restyle half the renders with the low-frequency amplitude of --target-images (FDA)",
    )
    p.add_argument("--augment-strength", type=float, help="domain randomization strength 0..1 (default 0.5)")
    p.add_argument("--no-augment", action="store_true", help="switch domain randomization off")
    p.add_argument("--class-agnostic", metavar="NAME", help="train one class NAME (e.g. product, screw)")
    p.add_argument("--category-map", metavar="FILE", help="YAML/JSON {dataset category: class name or null}")
    p.add_argument("--val-data", help="separate labelled validation set (default: --val-fraction of --data)")
    p.add_argument("--val-fraction", type=float, help="held-out share of --data for validation (default 0.1)")
    p.add_argument(
        "--eval",
        action="append",
        metavar="COCO",
        help="evaluate on this labelled set after training (repeatable; e.g. real photos)",
    )
    p.add_argument("--eval-every", type=int, help="validation AP every N steps (default: only at the end)")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default 2)")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", choices=["auto", "bf16", "off"])
    p.add_argument("--seed", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
    return p


# ---- bench train -----------------------------------------------------------------------------------
def _bench_train(args) -> int:
    from train.bench import bench_train

    res = bench_train(
        args.models,
        image_size=args.image_size,
        batch_size=args.batch_size,
        warmup=args.warmup,
        iterations=args.iterations,
        device=args.device,
        amp=args.amp,
        data=args.data,
        workers=args.workers,
        threads=args.threads,
        out=args.out,
    )
    if "written_to" in res:
        print(f"results: {res['written_to']}")
    return 0


def add_bench_train_parser(subparsers) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "train",
        help="training images/s and peak memory per model",
        description="Training throughput (images/s) and peak memory for each model at 640 px, and data-loading "
        "images/s, as JSON. Each model runs in its own process.",
        epilog=BENCH_TRAIN_EPILOG,
    )
    p.add_argument("--models", nargs="+", help="default: all four")
    p.add_argument("--image-size", type=int, default=640)
    p.add_argument("--batch-size", type=int, help="default 8 on GPU, 2 on CPU")
    p.add_argument("--iterations", type=int, help="timed steps (default 20 GPU, 2 CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 5 GPU, 1 CPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    p.add_argument("--data", help="COCO set for the data-loading measurement (default: generated JPEGs)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers for the loading measurement")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", help="JSON file, or a folder for bench_train.json")
    p.set_defaults(func=_bench_train)
    return p
