"""The benchmark's ordered steps as plain functions: split the real photos, render the synthetic sets, train
and score every variant with one budget, then write ``sim2real.json`` and the comparison report.

The heavy steps are called through :class:`Runners`, so the same protocol runs in-process or under Prefect
(``flows/sim2real.py`` passes tasks and flows that wrap the very same functions)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.sim2real.budget import resolve_budget
from bench.sim2real.catalogs import prepare_catalog
from bench.sim2real.labels import LabelMode, plan_label_modes
from bench.sim2real.real_sets import prepare_real_sets, real_datasets, resolve_real_sets
from bench.sim2real.scales import ScaleSettings, Sim2RealParams
from bench.sim2real.summary import build_summary, transfer_summary
from bench.sim2real.synthetic import RenderJob, look_of, needed_sets, render_job, synthetic_record
from bench.sim2real.training import (
    TrainFn,
    evaluate_on_test,
    seed_mean,
    train_config,
    train_in_process,
    train_or_reuse,
    variant_record,
)
from bench.sim2real.variants import GAINS, Variant, reference_key
from synth.coco import read_results
from synth.fsutil import atomic_write_json

LOG = logging.getLogger(__name__)
FLOOR = "floor"  # the blind detector's key in the bootstrap, beside the variants


@dataclass(frozen=True)
class Runners:
    """How the heavy steps run: plain calls by default; the flow passes Prefect-wrapped ones."""

    render: Callable[[RenderJob], dict]  # -> {"annotations", "out", "images_rendered", "wall_s"}
    train: TrainFn = train_in_process
    evaluate: Callable[..., dict] = evaluate_on_test
    prepare_catalog: Callable[..., dict] = prepare_catalog
    prepare_real: Callable[..., dict] = prepare_real_sets


@dataclass
class BenchRun:
    """One run of the protocol: its parameters, budget, output folder and how its steps execute."""

    params: Sim2RealParams
    runners: Runners
    log: logging.Logger | logging.LoggerAdapter = LOG
    settings: ScaleSettings = field(init=False)
    budget: dict | None = field(init=False)
    out: Path = field(init=False)
    plan: list[Variant] = field(init=False)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.out = self.params.out_dir().resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings, self.budget = resolve_budget(self.params.settings(), self.out, self.params.device)
        self.plan = self.params.planned_variants()
        self.params.initial_weights()  # asked-for pretraining that did not happen fails before any work

    def timed(self, key: str, fn: Callable, *args):
        """``fn(*args)``, its wall time recorded in ``timings[key]``."""
        t = time.perf_counter()
        result = fn(*args)
        self.timings[key] = round(time.perf_counter() - t, 1)
        return result


def run_protocol(params: Sim2RealParams, runners: Runners, log=LOG) -> dict:
    """Render, split, train every variant, evaluate on the real test split, write the JSON and the report."""
    t_start = time.perf_counter()
    run = BenchRun(params, runners, log)
    s = run.settings
    if run.budget:
        log.info(
            "budget: %.0f training minutes per variant at %.2f s per step -> %d steps",
            s.budget_min,
            run.budget["step_s"],
            s.steps,
        )
    log.info(
        "sim2real %s at %s scale -> %s: variants %s, %s at %d px, %d steps x %d images, seed %d",
        params.task,
        params.scale,
        run.out,
        ", ".join(v.key for v in run.plan),
        s.model,
        s.image_size,
        s.steps,
        s.batch_size,
        params.seed,
    )
    # Real photos: the split and its leak check come first, so a bad set fails before any rendering.
    real = run.timed("split_s", _split_real, run)
    log.info("real photos: %s", real["how"])
    datasets = real_datasets(real, run.plan)
    catalog, synthetic = render_synthetic_sets(run)
    datasets.update(synthetic)
    modes, per_class = plan_label_modes(
        datasets,
        needed_sets(run.plan),
        params.spec().class_name,
        s.per_class,
        run.out / "real" / "category_maps",
    )
    if "skipped" in per_class:
        log.info("per-class variants skipped: %s", per_class["skipped"])
    data_paths = {
        "synthetic_plain": datasets.get("synthetic_plain", {}).get("out"),
        "synthetic_dr": datasets.get("synthetic_dr", {}).get("out"),
        "real_train": real["train"],
    }
    results = {mode.labels: train_and_score(run, mode, data_paths, real) for mode in modes}
    variants = results["agnostic"]  # the chosen variants and what they start from
    uncertainty = run.timed("bootstrap_s", add_uncertainty, real, variants, params.seed)
    if per_class["enabled"] and results.get("per-class"):
        per_class["variants"] = results["per-class"]
        per_class["transfer"] = transfer_summary(per_class["variants"])
    summary = build_summary(
        params,
        run.settings,
        str(run.out),
        budget=run.budget,
        real=real,
        catalog=catalog,
        datasets=datasets,
        variants=variants,
        uncertainty=uncertainty,
        per_class=per_class,
        timings={**run.timings, "wall_s": None},
    )
    for labels, recs in results.items():
        tail = "" if labels == "agnostic" else "_per_class"
        for k, r in recs.items():
            summary["timings"][f"train_{k}{tail}_s"] = r["call_s"]
            summary["timings"][f"eval_{k}{tail}_s"] = r["eval_s"]
    write_summary_and_report(summary, run.out / "sim2real.json", t_start)
    log.info(
        "sim2real %s done in %.0f s: %s", params.task, summary["timings"]["wall_s"], summary["report"]["html"]
    )
    return summary


def _split_real(run: BenchRun) -> dict:
    p = run.params
    return run.runners.prepare_real(
        *resolve_real_sets(p), p.test_fraction, p.seed, str(run.out / "real"), p.test_fold
    )


def render_synthetic_sets(run: BenchRun) -> tuple[dict | None, dict[str, dict]]:
    """The catalog (built, or the one given) and the synthetic sets the chosen variants need, one seed."""
    needed = needed_sets(run.plan)
    if not needed:
        return None, {}
    catalog = run.timed("catalog_s", _catalog, run)
    records = {}
    for name in needed:
        job = render_job(run.params, run.settings, name, catalog["root"], run.out)
        rendered = run.timed(f"render_{look_of(name)}_s", run.runners.render, job)
        records[name] = synthetic_record(job, rendered, name, run.plan)
    return catalog, records


def _catalog(run: BenchRun) -> dict:
    p = run.params
    if p.catalog:
        return {"root": str(Path(p.catalog).resolve()), "sources": ["given with --catalog"]}
    return run.runners.prepare_catalog(p.task, str(run.out / "catalog"), run.settings.catalog_items, p.seed)


def train_and_score(run: BenchRun, mode: LabelMode, data_paths: dict, real: dict) -> dict[str, dict]:
    """Train (or reuse) and evaluate every planned variant in one label mode, in order, once per training
    seed; {key: record}. A variant's record is its first seed's, with the mean of its runs' scores."""
    records: dict[str, dict] = {}
    for v in run.plan:
        runs = []
        for k, seed in enumerate(run.params.training_seeds()):
            start = records[v.init_from]["seed_runs"][k]["run_dir"] if v.init_from else None
            runs.append(_train_and_score_one(run, mode, v, seed, k, data_paths, real, start))
        records[v.key] = seed_mean(runs)
    return records


def _train_and_score_one(
    run: BenchRun, mode: LabelMode, v: Variant, seed: int, k: int, data_paths: dict, real: dict, start
) -> dict:
    """One training run of one variant (training seed ``seed``, the ``k``-th) and its test-split record."""
    p, s = run.params, run.settings
    name = f"{v.key}-{v.name}{mode.suffix}" + (f"-seed{seed}" if k else "")
    cfg = train_config(
        v,
        p,
        s,
        run_dir=run.out / "variants" / name,
        data=data_paths[v.data],
        class_name=mode.class_name,
        category_map=mode.category_map(v.data),
        target_images=real["train"],
        parent_checkpoint=str(Path(start) / "checkpoints" / "last.pt") if start else None,
        seed=seed,
    )
    t = time.perf_counter()
    run_dir, how = train_or_reuse(cfg, run.runners.train)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    label = f"{v.key}{mode.suffix}" + (f" seed {seed}" if k else "")
    eval_bs = max(1, min(s.batch_size, 8))
    metrics = run.runners.evaluate(
        run_dir, real["test"], label, mode.agnostic, mode.real_map, p.device, eval_bs
    )
    eval_s = time.perf_counter() - t
    rec = variant_record(v, run_dir, how, train_s, metrics, data_paths[v.data], mode.labels)
    rec["eval_s"] = round(eval_s, 1)
    b = rec["bbox"]
    run.log.info(
        "%s%s%s: %s in %.0f s; real test AP %s, AP50 %s",
        v.title,
        mode.suffix,
        f" (training seed {seed})" if p.train_seeds > 1 else "",
        how,
        train_s,
        b["AP"],
        b["AP50"],
    )
    return rec


def add_uncertainty(real: dict, variants: dict[str, dict], seed: int) -> dict:
    """Bootstrap intervals over the test photos, paired with the blind floor fitted on the real train split's
    boxes; each record's bbox gains its ``AP50_ci95`` and its margin over the floor, in numbers and words."""
    from synth.coco import load_coco
    from train.floor import blind_predictions, fit_blind_prior, floor_verdict
    from train.metrics import bootstrap_transfer

    test = load_coco(real["test"], check_files=False)
    predictions = {
        k: [read_results(x["predictions_file"]) for x in r["seed_runs"]] for k, r in variants.items()
    }
    prior = fit_blind_prior(load_coco(real["train"], check_files=False))
    predictions[FLOOR] = blind_predictions(prior, [test.images[i] for i in sorted(test.images)])
    uncertainty = bootstrap_transfer(
        test,
        predictions,
        reference=reference_key(variants),
        seed=seed,
        differences=[(g.variant, g.baseline, g.label) for g in GAINS]
        + [(k, FLOOR, f"{k} - floor") for k in variants],
    )
    margins = {k: uncertainty["differences"].pop(f"{k} - floor") for k in variants}
    uncertainty["ratio_to_reference"].pop(FLOOR, None)
    uncertainty["floor"] = {
        **uncertainty["AP50"].pop(FLOOR),
        "prior_from": "the real train split",
        "boxes": len(prior.boxes),
    }
    for k, r in variants.items():
        r["bbox"]["AP50_ci95"] = uncertainty["AP50"][k]["ci95"]
        r["floor_margin"] = {**margins[k], "verdict": floor_verdict(margins[k]["ci95"])}
    return uncertainty


def write_summary_and_report(summary: dict, json_path: Path, t_start: float) -> None:
    """Write the JSON, build the report from it, then record the report's time and path in the JSON too."""
    from train.compare import write_comparison

    timings = summary["timings"]
    timings["wall_s"] = round(time.perf_counter() - t_start, 1)
    atomic_write_json(json_path, summary)
    t = time.perf_counter()
    report = write_comparison(json_path)
    timings["report_s"] = round(time.perf_counter() - t, 1)
    timings["wall_s"] = round(time.perf_counter() - t_start, 1)
    summary["report"] = {"html": str(report), "md": str(report.with_suffix(".md"))}
    atomic_write_json(json_path, summary)
