"""``simreal pretrain``: a detector trained on the project's own renders, cached, to start other trainings
from (flows/pretrain.py)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap

from flows.cli import add_command, checked_params

PRETRAIN_EPILOG = textwrap.dedent("""\
    examples:
      simreal pretrain                                  # 1600 renders, 1800 steps: ~25 min on 2 cores
      simreal pretrain --catalog assets/catalog --steps 3000 --threads 2
      simreal train --data runs/screws --weights "$(simreal pretrain --print-checkpoint)" --out runs/s
          (--print-checkpoint prints the path alone on stdout; progress and logs go to stderr)
      simreal bench sim2real --task industrial --pretrain     # every variant starts from it

    The detector (SSDlite at 256 px unless --model/--image-size say otherwise) learns one class per
    catalog category on configs/pretrain.yaml. It is cached in $SIMREAL_CACHE (default ~/.cache/simreal)
    /pretrain/<key>, where the key covers the recipe file, every catalog file and the settings below; the
    same command again prints the cached checkpoint at once, and an interrupted one resumes.
    """)


def _pretrain(args) -> int:
    from flows.env import prepare_local_prefect
    from flows.params import PretrainParams
    from flows.pretrain import pretrain_detector

    fields = ("config", "catalog", "images", "render_size", "seed", "model", "image_size", "steps")
    more = ("batch_size", "lr", "warmup_steps", "workers", "threads", "device", "cache")
    given = {k: getattr(args, k) for k in (*fields, *more) if getattr(args, k) is not None}
    params = checked_params(lambda: PretrainParams(**given), "simreal pretrain")
    params.check()
    prepare_local_prefect()
    if args.print_checkpoint:  # stdout is the path alone: the log lines go to stderr
        with contextlib.redirect_stdout(sys.stderr):
            rec = pretrain_detector(params)
        print(rec["checkpoint"])
        return 0
    rec = pretrain_detector(params)
    how = "reused from the cache" if rec["reused"] else "trained now"
    print(
        f"pretrained detector {rec['key']} ({how}; it cost {rec['cost_s'] / 60:.1f} min: "
        f"rendering {rec['render_s']:.0f} s, training {rec['train_s']:.0f} s)"
    )
    print(f"checkpoint: {rec['checkpoint']}")
    return 0


def add_pretrain_parser(subparsers) -> argparse.ArgumentParser:
    from flows.params import PretrainParams

    d = PretrainParams()
    p = add_command(
        subparsers,
        "pretrain",
        help="pretrain a detector on the project's own renders (cached) to start trainings from",
        description="Render configs/pretrain.yaml and train a detector on it from random init, once: the "
        "result is cached by everything it depends on and reused. Start other trainings from it with "
        "`simreal train --weights FILE` or `simreal bench sim2real --pretrain`.",
        epilog=PRETRAIN_EPILOG,
    )
    p.add_argument("--config", help=f"pretraining recipe (default {d.config})")
    p.add_argument("--catalog", help="catalog folder (default: the procedural library, generated once)")
    p.add_argument("--images", type=int, help=f"rendered images (default {d.images})")
    p.add_argument("--render-size", type=int, help=f"square render size in px (default {d.render_size})")
    p.add_argument("--seed", type=int, help="render and training seed (default 0)")
    p.add_argument("--model", help=f"detector (default {d.model})")
    p.add_argument("--image-size", type=int, help=f"training input size in px (default {d.image_size})")
    p.add_argument("--steps", type=int, help=f"training steps (default {d.steps})")
    p.add_argument("--batch-size", type=int, help=f"images per step (default {d.batch_size})")
    p.add_argument("--lr", type=float, help=f"AdamW peak learning rate (default {d.lr})")
    p.add_argument("--warmup-steps", type=int, help=f"(default {d.warmup_steps})")
    p.add_argument("--workers", type=int, help="render processes (default 2); not part of the cache key")
    p.add_argument("--threads", type=int, help="torch CPU threads while training; not part of the key")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="not part of the key")
    p.add_argument("--cache", help="cache folder (default $SIMREAL_CACHE, else ~/.cache/simreal)")
    p.add_argument("--print-checkpoint", action="store_true", help="print only the checkpoint's path")
    p.set_defaults(func=_pretrain)
    return p
