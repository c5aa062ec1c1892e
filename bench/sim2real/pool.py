"""Several benchmark runs scored together: disjoint test folds and further training seeds.

One run tests on one split of a small real set (150 photos of freiburg_dev), which leaves a difference of a
few AP50 points inside its interval; more training seeds hardly narrow it, more test photos do. Runs on the
disjoint test folds of one photo draw (``--test-fold``), each with any number of training seeds
(``--train-set seed=S``), are scored here together: a variant's AP50 is the mean over folds (weighted by
labelled objects) of its mean over seeds, beside the blind floor fitted on each fold's own train split, with
one paired bootstrap over the photos of every fold. Where the runs bring one real-only (d) arm that clears
the floor, every other arm is also given as a share of it, with the paired interval of that ratio.

Runs must share one protocol (budget, model, detector input, the set the photos come from). A variant
trained with different recipe overrides in different runs (``--train-set fda.enabled=true``, or
``--render-set`` for the variants that learn from the renders) is a different arm, named by what differs,
so an A/B of recipes can be pooled the same way.
"""

from __future__ import annotations

import filecmp
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.sim2real.protocol import FLOOR
from bench.sim2real.variants import VARIANT_BY_KEY, VARIANTS, reference_key
from synth.coco import load_coco, read_results
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json

# Settings that define what a run measured; runs that differ in one of them are not pooled.
PROTOCOL_SETTINGS = (
    "images",
    "render_size",
    "model",
    "image_size",
    "steps",
    "batch_size",
    "optimizer",
    "lr",
    "per_class",
)
# Training overrides that change which run it is, not the recipe: they do not separate arms.
RUN_ONLY_OVERRIDES = ("seed", "threads")
VARIANT_ORDER = {v.key: i for i, v in enumerate(VARIANTS)}
TITLES = {v.key: v.title for v in VARIANTS}
REAL_ONLY = reference_key(v.key for v in VARIANTS)  # the variant that shares of real-only are taken of


@dataclass
class Fold:
    """The runs that tested on one set of photos (``test``, its ``image_ids``; the first run's COCO files)
    and their predictions: {arm: {training seed: predictions file}}."""

    test: str
    train: str
    image_ids: list[int]
    runs: dict[str, dict[int, str]] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)


def read_bench_run(path: str | Path) -> dict:
    """A benchmark run's summary (``sim2real.json``, or the folder that holds it)."""
    p = Path(path)
    file = p / "sim2real.json" if p.is_dir() else p
    if not file.is_file():
        raise ConfigError(
            str(path), "no sim2real.json here: pass the --out folder of `simreal bench sim2real`"
        )
    from train.document import read_json

    summary = read_json(file)
    if (
        not isinstance(summary, dict)
        or not {"variants", "real_split", "settings", "params"} <= summary.keys()
    ):
        raise ConfigError(
            str(file), "not a sim2real benchmark summary (variants, real_split, settings missing)"
        )
    summary["_file"] = str(file.resolve())
    summary["_root"] = str(file.resolve().parent)
    return summary


def _inside_run(summary: dict, recorded: str) -> str:
    """A file the summary names, found in the run's folder where it is now: the benchmark writes every file
    it records under its ``out`` folder, so a moved or copied run still pools, and a path that points
    elsewhere is refused rather than read."""
    out = Path(summary.get("out") or summary["_root"])
    try:
        rel = Path(recorded).relative_to(out)
    except ValueError:
        raise ConfigError(summary["_file"], f"{recorded} is outside the run's folder {out}") from None
    if ".." in rel.parts:
        raise ConfigError(summary["_file"], f"{recorded} leaves the run's folder {out}")
    return str(Path(summary["_root"]) / rel)


def _recipe(summary: dict, vary_pretrain: bool, key: str) -> str:
    """What variant ``key`` of a run was trained with beyond the protocol: the training overrides that reach
    it, render overrides where it learns from the renders, and, where runs differ, the starting point."""
    params = summary["params"]
    variant = VARIANT_BY_KEY.get(key)
    parts = [
        f"{k}={v}"
        for k, v in sorted((params.get("train_overrides") or {}).items())
        if k not in RUN_ONLY_OVERRIDES and (variant is None or variant.takes(k))
    ]
    if _learns_from_renders(key):
        parts += [f"render {k}={v}" for k, v in sorted((params.get("render_overrides") or {}).items())]
    if vary_pretrain:
        parts.insert(0, "pretrained" if params.get("pretrain") else "random init")
    return ", ".join(parts)


def _learns_from_renders(key: str) -> bool:
    """Whether the variant trains on rendered images, or starts from one that did."""
    variant = VARIANT_BY_KEY.get(key)
    while variant is not None:
        if variant.data != "real_train":
            return True
        variant = VARIANT_BY_KEY.get(variant.init_from) if variant.init_from else None
    return False


def _photo_folders(summary: dict) -> set[str]:
    split = summary["real_split"]
    return {str(Path(f).parent) for f in split["train_files"] + split["test_files"]}


def _check_protocol(summaries: list[dict]) -> dict:
    first = summaries[0]
    for s in summaries[1:]:
        for key in PROTOCOL_SETTINGS:
            a, b = first["settings"].get(key), s["settings"].get(key)
            if a != b:
                raise ConfigError(
                    s["_file"],
                    f"{key} is {b!r} here but {a!r} in {first['_file']}: pool runs of one protocol",
                )
        if _photo_folders(s) != _photo_folders(first):
            raise ConfigError(
                s["_file"],
                f"its real photos come from {', '.join(sorted(_photo_folders(s)))}, not "
                f"{', '.join(sorted(_photo_folders(first)))}: pool runs on one set of photos",
            )
    return {key: first["settings"].get(key) for key in PROTOCOL_SETTINGS}


def collect_folds(
    summaries: list[dict], variants: list[str] | None = None
) -> tuple[list[Fold], dict[str, dict]]:
    """Group every training run of the ``variants`` (default all) by the photos it was tested on; (folds, arms).

    Runs with the same test photos form one fold; different test sets must be disjoint, else a photo would
    count twice. The same arm, fold and training seed twice is refused unless it is the same run or made
    the same predictions (as (b) does when trained again, deterministically, as the start of another (c)):
    then it counts once."""
    vary_pretrain = len({bool(s["params"].get("pretrain")) for s in summaries}) > 1
    folds: dict[frozenset, Fold] = {}
    arms: dict[str, dict] = {}
    for s in summaries:
        photos = frozenset(s["real_split"]["test_files"])
        fold = folds.get(photos)
        if fold is None:
            for other_photos, other in folds.items():
                if photos & other_photos:
                    raise ConfigError(
                        s["_file"],
                        f"its test photos overlap those of {sorted(other.sources)[0]} without being the same "
                        "set: pool disjoint folds (--test-fold) of one photo draw (--seed, --test-fraction)",
                    )
            sets = s["datasets"]
            fold = Fold(
                _inside_run(s, sets["real_test"]["path"]),
                _inside_run(s, sets["real_train"]["path"]),
                s["real_split"]["test_image_ids"],
            )
            folds[photos] = fold
        fold.sources.add(s["_file"])
        for key, record in s["variants"].items():
            if variants is not None and key not in variants:
                continue
            recipe = _recipe(s, vary_pretrain, key)
            label = f"{key} [{recipe}]" if recipe else key
            arm = arms.setdefault(
                label, {"key": key, "title": record.get("title") or TITLES.get(key, key), "recipe": recipe}
            )
            arm.setdefault("train_s", [])
            for run in record.get("seed_runs") or [record]:
                seed = int(run["seed"])
                known = fold.runs.setdefault(label, {}).get(seed)
                file = _inside_run(s, run["predictions_file"])
                if known is not None and known != file and not filecmp.cmp(known, file, shallow=False):
                    raise ConfigError(
                        s["_file"],
                        f"{label} with training seed {seed} on these test photos is also in {known}: "
                        "pool each run once",
                    )
                if known is None:
                    fold.runs[label][seed] = file
                    arm["train_s"].append(run.get("train_s"))
    order = sorted(arms, key=lambda a: (VARIANT_ORDER.get(arms[a]["key"], 99), arms[a]["recipe"]))
    return list(folds.values()), {a: arms[a] for a in order}


def pool_runs(
    paths: list[str | Path],
    out: str | Path,
    *,
    variants: list[str] | None = None,
    samples: int = 1000,
    seed: int = 0,
) -> dict:
    """Score the runs in ``paths`` together (their ``variants`` only, default all); writes OUT/pool.json and
    OUT/report.html / .md. Returns the pooled record."""
    from train.floor import blind_predictions, fit_blind_prior, floor_verdict
    from train.metrics import TestFold, bootstrap_folds

    if not paths:
        raise ConfigError("runs", "name at least one benchmark run folder")
    summaries = [read_bench_run(p) for p in paths]
    protocol = _check_protocol(summaries)
    folds, arms = collect_folds(summaries, variants)
    if not arms:
        raise ConfigError("variants", f"none of {variants} was trained in these runs")
    missing = [(a, i) for a in arms for i, f in enumerate(folds) if a not in f.runs]
    if missing:
        a, i = missing[0]
        raise ConfigError(
            sorted(folds[i].sources)[0],
            f"{a} has no run on the test photos of this run: every arm needs every fold "
            f"({len(missing)} arm/fold pair(s) missing)",
        )
    test_folds = []
    for f in folds:
        source = load_coco(f.test, check_files=False)
        runs = {a: [read_results(f.runs[a][s]) for s in sorted(f.runs[a])] for a in arms}
        prior = fit_blind_prior(load_coco(f.train, check_files=False))
        runs[FLOOR] = [blind_predictions(prior, [source.images[i] for i in f.image_ids])]
        test_folds.append(TestFold(source, f.image_ids, runs))
    labels = list(arms)
    differences = [(b, a, f"{b} - {a}") for i, a in enumerate(labels) for b in labels[i + 1 :]]
    real_only = [a for a in labels if arms[a]["key"] == REAL_ONLY]
    # A share of which of several real-only arms would be a choice the pooled runs do not make.
    reference = real_only[0] if len(real_only) == 1 else None
    boot = bootstrap_folds(
        test_folds,
        reference=reference,
        samples=samples,
        seed=seed,
        differences=differences + [(a, FLOOR, f"{a} - floor") for a in labels],
    )
    margins = {a: boot["differences"].pop(f"{a} - floor") for a in labels}
    verdicts = {a: floor_verdict(margins[a]["ci95"]) for a in labels}
    fold_ap = boot.get("folds") or [
        {
            "images": len(test_folds[0].image_ids),
            "AP50": {a: v.get("runs", [v["estimate"]]) for a, v in boot["AP50"].items()},
        }
    ]
    record = {
        "format": 1,
        "runs": [s["_file"] for s in summaries],
        "protocol": protocol,
        "pretrained": sorted({bool(s["params"].get("pretrain")) for s in summaries}),
        "method": boot["method"],
        "floor": {**boot["AP50"][FLOOR], "prior_from": "each fold's real train split"},
        "arms": {
            a: {
                **arms[a],
                "AP50": boot["AP50"][a]["estimate"],
                "AP50_ci95": boot["AP50"][a]["ci95"],
                "seeds_per_fold": [sorted(f.runs[a]) for f in folds],
                "floor_margin": {**margins[a], "verdict": verdicts[a]},
                "train_s_mean": _mean([t for t in arms[a]["train_s"] if t is not None]),
            }
            for a in labels
        },
        "differences": boot["differences"],
        "share_of_real_only": _shares(real_only, boot["ratio_to_reference"], verdicts),
        "folds": [
            {
                "test": f.test,
                "runs": sorted(f.sources),
                "images": fa["images"],
                "objects": sum(
                    not a.get("iscrowd", 0) for i in tf.image_ids for a in tf.source.anns_by_image[i]
                ),
                "AP50": {a: fa["AP50"][a] for a in labels},
                "floor_AP50": fa["AP50"][FLOOR][0],
            }
            for f, tf, fa in zip(folds, test_folds, fold_ap, strict=True)
        ],
    }
    for arm in record["arms"].values():
        arm.pop("train_s", None)
    out_dir = Path(out)
    atomic_write_json(out_dir / "pool.json", record)
    from bench.sim2real.pool_report import write_pool_report

    record["report"] = str(write_pool_report(record, out_dir))
    atomic_write_json(out_dir / "pool.json", record)
    return record


def _shares(real_only: list[str], ratios: dict, verdicts: dict[str, str]) -> dict:
    """Each arm's AP50 as a share of the one real-only arm's, with the paired interval of the ratio (runs
    and photos resampled together), given only when real-only itself is above the blind floor: near the
    floor a ratio says nothing about transfer. ``shown`` is False with ``why`` otherwise."""
    if len(real_only) != 1:
        many = f"{len(real_only)} real-only ({REAL_ONLY}) arms: pool one"
        why = many if real_only else f"no real-only ({REAL_ONLY}) arm among these runs"
        return {"reference": None, "shown": False, "why": why}
    reference = real_only[0]
    if verdicts[reference] != "above the floor":
        why = f"real-only ({reference}) is {verdicts[reference]}, so a share of it says nothing"
        return {"reference": reference, "shown": False, "why": why}
    return {"reference": reference, "shown": True, "arms": {a: r for a, r in ratios.items() if a != FLOOR}}


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 1) if values else None
