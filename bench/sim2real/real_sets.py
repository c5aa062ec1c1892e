"""The real photos: which labelled sets a run uses, the leak-free train/test split, and what each set holds.

The split and its leak check come before any rendering or training, so a bad set fails early."""

from __future__ import annotations

from pathlib import Path

from bench.sim2real.scales import Sim2RealParams
from synth.coco import load_coco, resolve_coco_path, summarise
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json
from synth.paths import shared_root


def _default_real(rel: str | None) -> str | None:
    return None if rel is None else str(shared_root() / rel)


def _require_set(path: str, what: str) -> str:
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
    spec = params.spec()
    real_train = _require_set(params.real_train or _default_real(spec.real_train), "real_train")
    test_arg = (
        params.real_test
        if params.real_test
        else (None if params.real_train else _default_real(spec.real_test))
    )
    return real_train, (_require_set(test_arg, "real_test") if test_arg else None)


def _check_fold(real_test: str | None, test_fold: int) -> None:
    if real_test is not None and test_fold:
        raise ConfigError(
            "--test-fold",
            "a test fold holds out part of the real train set; it cannot go with a separate real test set",
        )


def check_real_sets(params: Sim2RealParams) -> None:
    """Before Prefect starts: the real sets exist and the test fold asked for is one the set can hold."""
    from train.splits import split_by_photo

    real_train, real_test = resolve_real_sets(params)
    _check_fold(real_test, params.test_fold)
    if params.test_fold:
        split_by_photo(
            load_coco(real_train, check_files=False), params.test_fraction, params.seed, params.test_fold
        )


def prepare_real_sets(
    real_train: str, real_test: str | None, test_fraction: float, seed: int, out: str, test_fold: int = 0
) -> dict:
    """Write real/train.json and real/test.json and prove that no test picture is in the training set."""
    from train.splits import assert_no_leak, overlap_report, split_by_photo, write_subset

    _check_fold(real_test, test_fold)
    out_dir = Path(out)
    train_src = load_coco(real_train)
    if real_test is None:
        split = split_by_photo(train_src, test_fraction, seed, test_fold)
        test_src, train_ids, test_ids = train_src, split.train_ids, split.test_ids
        how = (
            f"{train_src.ann_file} split by photo: {len(test_ids)} of {len(train_src.images)} images "
            f"({split.groups} photos, test fraction {test_fraction}, seed {seed}, fold {test_fold}) "
            "held out for testing"
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
        "test_fold": test_fold if real_test is None else None,
        "how": how,
        "leak_check": leak,
    }
    atomic_write_json(out_dir / "split.json", info)
    return info


def dataset_counts(path: str | Path) -> dict:
    """What the summary records of every set: its file, image and object counts, and its categories."""
    s = summarise(load_coco(path, check_files=False))
    return {
        "path": s["path"],
        "images": s["images"],
        "objects": s["annotations"],
        "categories": s["categories"],
        "objects_per_category": s["per_category"],
    }


def real_datasets(real: dict, variants) -> dict[str, dict]:
    """The real train and test sets' records, with the role each plays for the chosen ``variants``."""
    trained = [v.key for v in variants if v.data == "real_train"]
    targets = [v.key for v in variants if v.adapts]
    roles = ([f"training ({', '.join(trained)})"] if trained else []) + (
        [f"unlabelled adaptation target ({', '.join(targets)})"] if targets else []
    )
    return {
        "real_train": {**dataset_counts(real["train"]), "role": ", ".join(roles) or "unused"},
        "real_test": {**dataset_counts(real["test"]), "role": "test (every variant)"},
    }
