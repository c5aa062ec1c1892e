"""The ``pretrain-detector`` flow: a detector trained on the project's own renders, to start other trainings
from instead of random init (what ImageNet or COCO weights are for, where neither can be downloaded).

It renders ``configs/pretrain.yaml`` (objects of every kind in bins, trays and on tables, one class per
catalog category) and trains a detector on it. The result is cached under a key that covers everything it
depends on (the recipe file, the catalog's files, the image count and every training setting), so the
second call for the same settings only reads ``pretrain.json``; an interrupted pretraining resumes
(finished shards, the last checkpoint). ``simreal train --weights FILE`` and ``simreal bench sim2real
--pretrain`` start from its checkpoint: the detector's tensors whose shapes fit are loaded, the class layer
is new. Its cost is recorded beside it, so a benchmark can report it separately.
"""

# No `from __future__ import annotations` in flow modules (see flows/render_then_train.py).
import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow

from flows.params import PretrainParams, RenderParams
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json

log = logging.getLogger(__name__)

RECORD = "pretrain.json"  # written last: a folder with it holds a finished pretraining
FORMAT_VERSION = 1
# Files of a catalog entry that do not decide what is rendered: caches derived from the mesh, previews.
_DERIVED_SUFFIXES = (".prep.npz", ".geom.npz")
_DERIVED_NAMES = ("thumbnail.png", "thumbnail.jpg")


def catalog_fingerprint(root: Path) -> str:
    """SHA-256 over every file that decides how the catalog's objects look (paths and bytes), in order."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(_DERIVED_SUFFIXES) and p.name not in _DERIVED_NAMES
    )
    if not files:
        raise ConfigError(root, "the pretraining catalog is empty (fill it with `simreal sku generate`)")
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def pretrain_key(params: PretrainParams, catalog_digest: str) -> str:
    """16 hex digits of SHA-256 over what the detector depends on; the same settings give the same key."""
    what = {
        "format": FORMAT_VERSION,
        "recipe": hashlib.sha256(params.config_path().read_bytes()).hexdigest(),
        "catalog": catalog_digest,
        **params.model_dump(exclude={"config", "catalog", "workers", "threads", "device", "cache"}),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def default_catalog(params: PretrainParams) -> Path:
    """The procedural library in the cache, generated on first use (ids follow from the seed)."""
    from synth.catalog import Catalog
    from synth.library import generate_library

    root = params.root() / "catalogs" / f"library-r30-i12-seed{params.seed}"
    with one_maker(root):
        catalog = Catalog(root)
        if len(catalog) < 42:
            log.info("pretraining catalog: generating the procedural library into %s", root)
            generate_library(catalog, 30, 12, params.seed, thumbnails=False)
    return root


def train_settings(params: PretrainParams, data: str, out: Path) -> dict[str, Any]:
    return {
        "data": data,
        "out": str(out),
        "model.name": params.model,  # already the full name (PretrainParams)
        "model.image_size": params.image_size,
        "model.weights": "none",  # the point: the project's own start, not someone else's
        "model.trainable_backbone_layers": 6,
        "steps": params.steps,
        "batch_size": params.batch_size,
        "optimizer": "adamw",
        "lr": params.lr,
        "warmup_steps": params.warmup_steps,
        "val_fraction": 0.0,
        "workers": 1,
        "threads": params.threads,
        "device": params.device,
        "seed": params.seed,
        "progress": False,
        "log_every": max(1, params.steps // 20),
        "checkpoint_every": max(1, params.steps // 6),
    }


def cached_record(folder: Path) -> dict | None:
    """The record of a finished pretraining in ``folder`` whose checkpoint is still there, else None."""
    try:
        rec = json.loads((folder / RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ckpt = folder / "train" / "checkpoints" / "last.pt"
    if not isinstance(rec, dict) or not ckpt.is_file():
        return None
    return {**rec, "checkpoint": str(ckpt), "reused": True}


@contextmanager
def one_maker(folder: Path) -> Iterator[None]:
    """Hold ``<folder>.lock``: a second process asking for the same pretraining waits, then reuses it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process is making pretrained detector %s: waiting for it", folder.name)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield  # the kernel drops the lock when the file closes or its holder dies


@flow(name="pretrain-detector", log_prints=True)
def pretrain_detector(params: PretrainParams = PretrainParams()) -> dict:  # noqa: B008 (pydantic default)
    """Render the recipe, train on it, record the cost; or return the record of the same pretraining."""
    params.check()
    catalog = Path(params.catalog).resolve() if params.catalog else default_catalog(params)
    digest = catalog_fingerprint(catalog)
    key = pretrain_key(params, digest)
    folder = params.root() / "pretrain" / key
    with one_maker(folder):
        if (rec := cached_record(folder)) is not None:
            log.info("pretrained detector %s: reused from %s", key, folder)
            return rec
        return _make(params, catalog, digest, key, folder)


def _make(params: PretrainParams, catalog: Path, digest: str, key: str, folder: Path) -> dict:
    """Render (resuming finished shards), train (resuming the last checkpoint), then write the record."""
    from flows.render import run_render
    from flows.training import _TrainingProgress
    from train.config import load_train_config
    from train.engine import train

    log.info(
        "pretraining %s: rendering %d images of %s (catalog %s) into %s",
        key,
        params.images,
        params.config,
        catalog,
        folder / "data",
    )
    t0 = time.perf_counter()
    rendered = run_render(
        RenderParams(
            config=str(params.config_path()),
            overrides={
                "catalog.root": str(catalog),
                "image.width": params.render_size,
                "image.height": params.render_size,
            },
            n=params.images,
            seed=params.seed,
            out=str(folder / "data"),
            workers=params.workers,
        )
    )
    render_s = time.perf_counter() - t0
    log.info("pretraining %s: rendered in %.0f s; training %d steps", key, render_s, params.steps)
    t1 = time.perf_counter()
    cfg = load_train_config(None, train_settings(params, rendered["out"], folder / "train"))
    last = folder / "train" / "checkpoints" / "last.pt"
    with _TrainingProgress(folder / "train", cfg.steps):
        train(cfg.model_copy(update={"resume": last.is_file()}))
    train_s = time.perf_counter() - t1
    rec = {
        "key": key,
        "params": params.model_dump(exclude={"cache"}),
        "catalog_sha256": digest,
        "images": params.images,
        "render_s": round(render_s, 1),
        "train_s": round(train_s, 1),
        "cost_s": round(render_s + train_s, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(folder / RECORD, rec)
    log.info(
        "pretrained detector %s in %.0f s (render %.0f s, train %.0f s)",
        key,
        rec["cost_s"],
        render_s,
        train_s,
    )
    return {**rec, "checkpoint": str(last), "reused": False}
