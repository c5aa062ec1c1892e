"""The benchmark's numbers and words: each variant's AP50 relative to the real-only reference, the gain of
each recipe change, the protocol notes, and the ``sim2real.json`` document that holds them all."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from bench.sim2real.scales import ScaleSettings, Sim2RealParams
from bench.sim2real.variants import GAINS, reference_key

FORMAT = "simreal-sim2real/1"


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 4) if num is not None and den else None


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 4) if a is not None and b is not None else None


def transfer_summary(variants: dict[str, dict], floor: dict | None = None) -> dict:
    """Each variant's AP50 (and AP) as a fraction of the real-only reference's, and the gains of domain
    randomization, domain adaptation and fine-tuning, for the variants present.

    A ratio to the reference means something only when the reference itself clears the blind floor (the
    paired interval of its margin over the floor lies above 0); ``ratios_meaningful`` says whether it does.
    Records without a measured floor margin (the per-class variants) never count as clearing it."""
    ap50 = {k: (r["bbox"] or {}).get("AP50") for k, r in variants.items()}
    ap = {k: (r["bbox"] or {}).get("AP") for k, r in variants.items()}
    ref = reference_key(variants)
    out: dict[str, Any] = {"reference": ref, "floor": floor}
    if ref is not None:
        verdict = (variants[ref].get("floor_margin") or {}).get("verdict", "no blind floor measured")
        out["reference_verdict"] = verdict
        out["ratios_meaningful"] = verdict == "above the floor"
        out["AP50_relative_to_real_only"] = {k: _ratio(ap50[k], ap50[ref]) for k in variants if k != ref}
        out["AP_relative_to_real_only"] = {k: _ratio(ap[k], ap[ref]) for k in variants if k != ref}
    for g in GAINS:
        if g.variant in variants and g.baseline in variants:
            out[g.key] = _diff(ap50[g.variant], ap50[g.baseline])
    return out


def protocol_notes(first: dict, seeds: list[int], pretrained: dict | None = None) -> list[str]:
    """What a reader must know to read the numbers; ``first`` is any variant record (they share weights)."""
    same = (
        f"training seeds ({', '.join(map(str, seeds))}: each variant is trained once per seed and scored by "
        "the mean AP50 of its runs)"
        if len(seeds) > 1
        else "seed"
    )
    notes = [
        "Every variant uses the same model, input size, steps, batch size, optimizer, learning rate schedule and "
        f"{same}; (e) additionally starts from (b)'s final weights (seed by seed), so it has seen (b)'s steps "
        "too.",
        "Train-time augmentation: off for (a), on (kornia domain randomization, train.augment) for (b)-(e).",
        "(c) adapts to the real TRAIN split's photos without their labels: DANN aligns features with them, "
        "and from half-way a mean teacher labels them for the detector (self-training); their labels are "
        "never read.",
        "The test split is used once, for the final scores; no setting was chosen by looking at it.",
    ]
    if pretrained:
        how = "reused from the cache" if pretrained.get("reused") else "trained in this run"
        notes.append(
            f"(a)-(d) start from the project's own pretrained detector (`simreal pretrain`, key "
            f"{pretrained.get('key')}: {pretrained.get('images')} renders of {pretrained.get('recipe')}, "
            f"{pretrained.get('steps')} steps from random init, no real photo). It cost "
            f"{(pretrained.get('cost_s') or 0) / 60:.1f} min once ({how}), which the per-variant budget does "
            "not include; its class layer is replaced, every other tensor is loaded."
        )
    elif str(first.get("weights_source", "")).startswith("random init"):
        notes.append(
            "All models start from random initialisation (no pretrained weights on this machine): "
            "absolute numbers are far below what a pretrained backbone reaches, at smoke scale "
            "especially; compare variants with each other, not with published results."
        )
    return notes


def protocol_record(
    s: ScaleSettings,
    seed: int,
    real: dict,
    first: dict,
    seeds: list[int] | None = None,
    pretrained: dict | None = None,
) -> dict:
    """The summary's ``protocol``: the shared budget, the test set, the split and its leak check."""
    seeds = seeds or [seed]
    return {
        "seed": seed,
        "training_seeds": seeds,
        "same_budget": {
            "model": s.model,
            "image_size": s.image_size,
            "steps": s.steps,
            "batch_size": s.batch_size,
            "optimizer": s.optimizer,
            "lr": s.lr,
            "warmup_steps": s.warmup_steps,
        },
        "test_set": real["test"],
        "split": {k: real[k] for k in ("how", "train_source", "test_source")},
        "leak_check": real["leak_check"],
        "test_images_in_training": 0,  # prepare_real_sets stops the run otherwise
        "model_selection": "none: the last checkpoint of every variant is evaluated once on the test split",
        "weights_source": first.get("weights_source"),
        "pretraining": pretrained,
        "notes": protocol_notes(first, seeds, pretrained),
    }


def build_summary(
    params: Sim2RealParams,
    s: ScaleSettings,
    out: str,
    *,
    budget: dict | None,
    real: dict,
    catalog: dict | None,
    datasets: dict,
    variants: dict[str, dict],
    uncertainty: dict,
    per_class: dict,
    timings: dict,
) -> dict:
    """The ``sim2real.json`` document (timings are filled in by the caller as steps finish)."""
    from train.provenance import git_info, package_versions

    first = next(iter(variants.values()))
    return {
        "format": FORMAT,
        "task": params.task,
        "scale": params.scale,
        "class_name": params.spec().class_name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "out": out,
        "params": params.model_dump(mode="json"),
        "settings": s.model_dump(mode="json"),
        "protocol": {
            **protocol_record(s, params.seed, real, first, params.training_seeds(), params.pretrained),
            "time_budget": budget,
        },
        "catalog": catalog,
        "datasets": datasets,
        "real_split": {
            k: real[k] for k in ("train_image_ids", "test_image_ids", "train_files", "test_files")
        },
        "variants": variants,
        "transfer": transfer_summary(variants, uncertainty.get("floor")),
        "uncertainty": uncertainty,
        "per_class": per_class,
        "provenance": {
            "git": git_info(),
            "packages": package_versions(),
            "device": first.get("device"),
            "command": " ".join(sys.argv),
        },
        "timings": timings,
    }
