"""The ``new-sku-dataset`` flow: new meshes -> catalog -> (fit to photos) -> dataset with each new SKU in a
guaranteed share of images -> QA -> (an existing detector extended to the new classes).

Run it in-process with ``simreal sku dataset``, or serve it (flows/serve.py) and start
``prefect deployment run new-sku-dataset/local --param params='{"meshes": [...]}' --watch``.
Every step resumes: imports of identical meshes are reused, finished shards and probe sets are kept.
"""

# No `from __future__ import annotations` in flow modules (served parameter models need real annotations).
import importlib.util
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ProcessPoolTaskRunner

from flows.new_sku_params import NewSkuParams
from flows.render import render_plan_as_tasks
from synth.catalog import Catalog
from synth.sku_dataset import config_data, layout_config, quality_report, share_config
from synth.sku_import import NewSku, import_skus


def extension_available() -> bool:
    return importlib.util.find_spec("train.extend") is not None


def new_items(params: NewSkuParams) -> list[NewSku]:
    names, cats = (
        params.names or [None] * len(params.meshes),
        params.categories or [None] * len(params.meshes),
    )
    return [
        NewSku(m, n, c, params.supercategory, params.units, params.up)
        for m, n, c in zip(params.meshes, names, cats, strict=True)
    ]


def _fit(params: NewSkuParams, data: dict, records, out: Path, source: str) -> tuple[dict, dict | None]:
    """The config mapping fitted to ``params.photos`` (unchanged without photos), and the fit's files."""
    if params.photos is None:
        return data, None
    from synth.match import fit_config, write_fit

    base = share_config(data, records, catalog_root=params.catalog, share=params.share, others=params.others)
    render_part = base.model_dump(mode="json", exclude={"required"})
    result = fit_config(
        render_part,
        params.photos,
        out / "fit",
        probe_n=params.probe_images,
        iterations=params.fit_iterations,
        seed=params.seed,
        workers=params.workers,
        source=source,
    )
    files = write_fit(result, out / "fit" / "fitted.yaml", config=source, photos=params.photos)
    get_run_logger().info("fit to %s:\n%s", params.photos, result.table())
    return result.data, {
        "files": {k: str(v) for k, v in files.items()},
        "before": result.distance_before,
        "after": result.distance_after,
    }


def _render(params: NewSkuParams, cfg, out: Path) -> Path:
    from synth.dataset import make_plan
    from synth.randomize import target_categories
    from synth.share import build_share_scene

    plan = make_plan(cfg, params.images, params.seed, "pyrender", {}, build_share_scene, target_categories)
    result, _ = render_plan_as_tasks(plan, out, "process-pool")
    return result.annotations.parent


def _extend(params: NewSkuParams, annotations: Path, out: Path) -> dict | None:
    if params.base_checkpoint is None:
        return None
    if not extension_available():
        get_run_logger().warning("train.extend is not installed here: the detector is not extended")
        return None
    from train.extend import extend_detector

    eval_sets = {k: Path(v) for k, v in (params.eval_sets or {}).items()} or None
    return extend_detector(
        Path(params.base_checkpoint),
        annotations,
        Path(params.replay) if params.replay else None,
        out,
        steps=params.steps,
        batch_size=params.batch_size,
        device=params.device,
        eval_sets=eval_sets,
    )


@flow(name="new-sku-dataset", log_prints=True, task_runner=ProcessPoolTaskRunner(max_workers=2))
def new_sku_dataset(params: NewSkuParams) -> dict:
    logger = get_run_logger()
    if params.base_checkpoint is not None and extension_available():
        import train.extend  # noqa: F401 - torchvision before any GL context (STACK.md)
    out = Path(params.out).resolve()
    records = import_skus(Catalog(params.catalog), new_items(params))
    logger.info("new SKUs: %s", ", ".join(f"{r.id} ({r.category})" for r in records))
    source = params.config or layout_config(records, params.layout)
    data, fit = _fit(params, config_data(source, params.overrides), records, out, source)
    cfg = share_config(
        data, records, catalog_root=params.catalog, share=params.share, others=params.others, source=source
    )
    folder = _render(params, cfg, out / "data")
    summary = quality_report(folder, cfg, {"new_skus": [r.id for r in records], "others": params.others})
    summary["fit"] = fit
    summary["extension"] = _extend(params, folder / "annotations.json", out / "extend")
    create_markdown_artifact(
        key="new-sku-summary", markdown=_markdown(summary), description="new-sku-dataset"
    )
    return summary


def _markdown(s: dict) -> str:
    rows = "".join(f"| `{k}` | {100 * v:.1f} % |\n" for k, v in s["share"].items())
    text = (
        f"### New-SKU dataset `{s['annotations']}`\n\n{s['images']} images, {s['categories']} classes, "
        f"others {s['others']}; asked share {100 * s['required_share']:.0f} %\n\n| SKU | images with it |\n"
        f"|---|---|\n{rows}"
    )
    if s.get("fit"):
        text += "\n| statistic | W1 before | W1 after |\n|---|---|---|\n" + "".join(
            f"| {k} | {v:.4g} | {s['fit']['after'].get(k, float('nan')):.4g} |\n"
            for k, v in s["fit"]["before"].items()
        )
    if s.get("extension"):
        text += (
            "\nextended detector:\n\n```\n"
            + "\n".join(f"{k}: {v}" for k, v in s["extension"].items())
            + "\n```\n"
        )
    return text


def run_new_sku(params: NewSkuParams) -> dict:
    """Run ``new-sku-dataset`` with ``params.workers`` render processes."""
    return new_sku_dataset.with_options(task_runner=ProcessPoolTaskRunner(max_workers=params.workers))(params)
