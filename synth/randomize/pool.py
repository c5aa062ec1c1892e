"""Which catalog entries a config draws: the targets (selected, weighted) and the rest (distractor sources).

Reading a catalog means parsing one YAML record per entry, far too slow to repeat for every image, so the
pool is cached per process and rebuilt only when the catalog folder changes (an entry added, replaced or
removed) or the selection in the config changes.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from synth.catalog import Catalog, SkuRecord
from synth.config import CatalogSelection
from synth.errors import ConfigError
from synth.randomize.placed import categorical
from synth.randomize.settings import ObjectsConfig, RenderConfig


@dataclass(frozen=True, eq=False)
class SkuPool:
    root: Path
    targets: tuple[SkuRecord, ...]  # sorted by id
    probabilities: np.ndarray  # sampling probability of each target
    others: tuple[SkuRecord, ...]  # catalog entries that are not targets (usable as distractors)
    class_agnostic: str | None
    _mesh_paths: dict = field(default_factory=dict)

    def category(self, record: SkuRecord) -> str:
        return self.class_agnostic or record.category

    def categories(self) -> list[str]:
        return sorted({self.category(r) for r in self.targets})

    def mesh_path(self, record: SkuRecord) -> str:
        """Absolute path of the entry's mesh, so a scene re-renders from any working directory."""
        path = self._mesh_paths.get(record.id)
        if path is None:
            path = self._mesh_paths[record.id] = str((self.root / record.id / record.mesh).resolve())
        return path

    def sample_target(self, rng: np.random.Generator, max_size=None) -> SkuRecord | None:
        """A target drawn by weight; with ``max_size`` (x, y, z) only those whose extents fit."""
        p = self.probabilities
        if max_size is not None:
            fits = np.array(
                [all(s <= m for s, m in zip(r.size_m, max_size, strict=True)) for r in self.targets]
            )
            p = np.where(fits, p, 0.0)
            total = p.sum()
            if total <= 0:
                return None
            p = p / total
        return self.targets[categorical(rng, p)]

    def sample_other(self, rng: np.random.Generator, max_size=None) -> SkuRecord | None:
        """A non-target entry, uniformly, optionally limited in size; None when there is none."""
        choices = [
            r
            for r in self.others
            if max_size is None or all(s <= m for s, m in zip(r.size_m, max_size, strict=True))
        ]
        if not choices:
            return None
        return choices[int(rng.integers(len(choices)))]


def sku_pool(cfg: RenderConfig, catalog: Catalog) -> SkuPool:
    """The cached pool for this config's selection and object weights.

    The cache key is the catalog folder's modification time: every catalog write (``Catalog.add``,
    ``remove``) renames an entry folder inside it, which updates that time, and one ``stat`` per image
    is all it costs (re-reading every record's time took milliseconds on a large catalog)."""
    root = os.path.abspath(catalog.root)
    try:
        stamp = os.stat(root).st_mtime_ns
    except OSError:
        raise ConfigError(
            cfg.source, f"key 'catalog.root': catalog folder not found: {catalog.root}"
        ) from None
    return _pool_cached(root, stamp, cfg.catalog.model_dump_json(), cfg.objects.model_dump_json(), cfg.source)


@lru_cache(maxsize=16)
def _pool_cached(root: str, _stamp: int, selection_json: str, objects_json: str, source: str) -> SkuPool:
    catalog = Catalog(root)
    selection = CatalogSelection.model_validate_json(selection_json)
    objects = ObjectsConfig.model_validate_json(objects_json)
    records = list(catalog)
    if not records:
        raise ConfigError(
            source,
            f"key 'catalog.root': the catalog at {root} has no entries "
            "(add some with `simreal sku add` or `simreal sku generate`)",
        )
    targets, others = select(records, selection, source)
    probs = _probabilities(targets, objects, selection.class_agnostic, source)
    probs.setflags(write=False)
    return SkuPool(Path(root), tuple(targets), probs, tuple(others), selection.class_agnostic)


def select(
    records: list[SkuRecord], sel: CatalogSelection, source: str
) -> tuple[list[SkuRecord], list[SkuRecord]]:
    """Split records into (targets, others) by supercategory, include and exclude patterns."""
    for key, patterns in (("include", sel.include), ("exclude", sel.exclude)):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(r.id, pattern) for r in records):
                raise ConfigError(source, f"key 'catalog.{key}': {pattern!r} matches no catalog entry")

    def chosen(r: SkuRecord) -> bool:
        if sel.supercategory != "any" and r.supercategory != sel.supercategory:
            return False
        if sel.include and not any(fnmatch.fnmatchcase(r.id, p) for p in sel.include):
            return False
        return not any(fnmatch.fnmatchcase(r.id, p) for p in sel.exclude)

    targets = [r for r in records if chosen(r)]
    others = [r for r in records if not chosen(r)]
    if not targets:
        raise ConfigError(
            source,
            f"key 'catalog': no catalog entry matches the selection (supercategory="
            f"{sel.supercategory}, include={sel.include}, exclude={sel.exclude})",
        )
    return targets, others


def _probabilities(
    targets: list[SkuRecord], objects: ObjectsConfig, class_agnostic: str | None, source: str
) -> np.ndarray:
    weights = np.ones(len(targets))
    for pattern in objects.weights:
        if not any(fnmatch.fnmatchcase(r.id, pattern) for r in targets):
            raise ConfigError(source, f"key 'objects.weights.{pattern}': matches no selected catalog entry")
    for i, r in enumerate(targets):
        for pattern, w in objects.weights.items():  # first matching pattern wins
            if fnmatch.fnmatchcase(r.id, pattern):
                weights[i] = w
                break
    if objects.balance == "category":
        cats = [class_agnostic or r.category for r in targets]
        per_cat = {c: weights[[k for k, cc in enumerate(cats) if cc == c]].sum() for c in set(cats)}
        live = sum(1 for v in per_cat.values() if v > 0)
        weights = np.array(
            [w / per_cat[c] / live if per_cat[c] > 0 else 0.0 for w, c in zip(weights, cats, strict=True)]
        )
    total = weights.sum()
    if total <= 0:
        raise ConfigError(source, "key 'objects.weights': every selected catalog entry has weight 0")
    return weights / total
