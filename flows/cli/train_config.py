"""How ``simreal train``'s flags and ``--config`` become one TrainConfig: config-file values, overridden by
flags, and on the CPU the default run's recipe for what neither sets. ``train_config_from_args`` is public
because this mapping is the contract tests check.
"""

from __future__ import annotations

from synth.errors import SimrealError

# TrainConfig keys set from the flag of the same name when given (in this order), then the nested ones.
_FLAT_KEYS = (
    "data", "out", "target_images", "val_data", "val_fraction", "steps", "batch_size", "lr", "optimizer",
    "warmup_steps", "workers", "seed", "device", "amp", "threads", "category_map", "class_agnostic",
    "checkpoint_every", "log_every", "eval_every",
)  # fmt: skip
_NESTED_KEYS = {
    "model.image_size": "image_size",
    "model.weights": "weights",
    "augment.strength": "augment_strength",
    "dann.weight": "dann_weight",
    "self_training.threshold": "self_train_threshold",
}


def train_config_from_args(args):
    """The TrainConfig of a parsed `simreal train` command line: --config values, overridden by flags."""
    from train.config import load_train_config, resolve_model_name

    given = {
        **{k: getattr(args, k) for k in _FLAT_KEYS},
        **{k: getattr(args, a) for k, a in _NESTED_KEYS.items()},
    }
    o: dict = {k: v for k, v in given.items() if v is not None}
    if args.model:
        o["model.name"] = resolve_model_name(args.model)
    if args.no_augment:
        o["augment.enabled"] = False
    if args.dann:
        o["dann.enabled"] = True
    if args.dann_instance:
        o["dann.enabled"] = True
        o["dann.instance_level"] = True
    if args.self_train:
        o["self_training.enabled"] = True
    if args.fda:
        o["fda.enabled"] = True
    if args.resume:
        o["resume"] = True
    if args.no_progress:
        o["progress"] = False
    if args.eval:
        o["eval"] = [{"data": d} for d in args.eval]
    if args.config is None:
        for key in ("data", "out"):
            if key not in o:
                raise SimrealError("simreal train", f"--{key} is required (or give --config FILE)")
    return load_train_config(args.config, {**cpu_recipe_defaults(args, o), **o})


def cpu_recipe_defaults(args, given: dict) -> dict:
    """flows.params' CPU recipe for what neither the flags nor --config set, when training will run on the
    CPU (no CUDA, or --device cpu): TrainConfig's GPU-sized defaults would take ~10 hours there."""
    import logging

    import torch

    from flows.params import cpu_recipe_fill
    from synth.config import read_yaml

    in_file = read_yaml(args.config) if args.config else {}
    device = given.get("device") or in_file.get("device")
    if device == "cuda" or (device != "cpu" and torch.cuda.is_available()):
        return {}
    fill = cpu_recipe_fill(given, in_file)
    if fill:
        logging.getLogger("train").info(
            "simreal train: training on the CPU, so the CPU recipe of the default run fills in %s "
            "(flows/params.py CPU_RECIPE; give flags or --config values to choose otherwise)",
            ", ".join(f"{k}={v}" for k, v in fill.items()),
        )
    return fill
