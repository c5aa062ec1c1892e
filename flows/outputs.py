"""The pipeline's output folders: the same parameters land in the same folder (and reuse it); a folder that
already holds another configuration is kept apart automatically, in ``<folder>-<hash>``.

``simreal run``, the served deployment and the ``prefect.yaml`` deployments share their defaults
(flows/params.py), so they share ``runs/default/{data,train}`` too; without this a second run with other
parameters (``PARAMS='{"render": {"n": 40}}'``) would stop on "holds a dataset with a different n". The hash
is that of what decides a folder's content: the dataset's identity (its run.json) or the training
configuration (its config.yaml, less the output folder and the resume and progress switches).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from synth.dataset.layout import LOCK_FILE, RUN_FILE
from synth.dataset.shard import IDENTITY_KEYS
from synth.errors import ConfigError

OTHER = "another configuration"  # the key of a folder whose content cannot be read as one of ours
TRAIN_VOLATILE = ("out", "resume", "progress")  # TrainConfig keys that do not change what is trained


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def keyed_folder(requested: Path, key: str, held_key: Callable[[Path], str | None]) -> Path:
    """``requested`` when it is free (``held_key`` None) or holds ``key``; else ``<requested>-<key>``."""
    apart = requested.with_name(f"{requested.name}-{key}")
    for folder in (requested, apart):
        if held_key(folder) in (None, key):
            return folder
    raise ConfigError(apart, "holds another configuration under this one's hash; delete it to start over")


def _is_free(folder: Path) -> bool:
    return not folder.is_dir() or not any(e.name != LOCK_FILE for e in folder.iterdir())


# ---- rendered datasets -----------------------------------------------------------------------------------
def dataset_key(identity: dict) -> str:
    """The key of a dataset from its run.json content (``RunPlan.identity()``)."""
    return _digest({k: identity.get(k) for k in IDENTITY_KEYS})


def held_dataset_key(folder: Path) -> str | None:
    """The key of the dataset in ``folder``; None when the folder is free."""
    if _is_free(folder):
        return None
    try:
        return dataset_key(json.loads((folder / RUN_FILE).read_text()))
    except (OSError, json.JSONDecodeError, AttributeError):
        return OTHER


# ---- training runs ---------------------------------------------------------------------------------------
def train_key(cfg) -> str:
    """The key of a TrainConfig: everything but where it is written and how it is resumed."""
    dump = cfg.model_dump(mode="json")
    return _digest({k: v for k, v in dump.items() if k not in TRAIN_VOLATILE})


def held_train_key(folder: Path) -> str | None:
    """The key of the training run in ``folder``; None when it holds none (no checkpoint and no config)."""
    import yaml

    from train.config import TrainConfig

    config = folder / "config.yaml"
    if not config.is_file():
        return OTHER if (folder / "checkpoints" / "last.pt").exists() else None
    try:
        return train_key(TrainConfig.model_validate(yaml.safe_load(config.read_text())))
    except (OSError, ValueError, yaml.YAMLError):
        return OTHER


def trained_steps(folder: Path) -> int:
    """The step of the run's last checkpoint (0 without one); read memory-mapped, weights only."""
    import torch

    last = folder / "checkpoints" / "last.pt"
    if not last.is_file():
        return 0
    return int(torch.load(last, map_location="cpu", weights_only=True, mmap=True)["step"])
