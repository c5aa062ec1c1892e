"""The ``train-model`` and ``evaluate-transfer`` flows: thin wrappers over ``train.engine.train``,
``train.evaluate.evaluate`` and ``train.report.write_report`` that add Prefect artifacts."""

import csv
import threading
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.outputs import held_train_key, keyed_folder, train_key, trained_steps
from flows.params import EvalSet, TrainParams


def _last_logged_step(log_csv: Path) -> int:
    try:
        with log_csv.open() as f:
            rows = list(csv.DictReader(f))
        return int(float(rows[-1]["step"])) if rows else 0
    except (OSError, KeyError, ValueError, IndexError):
        return 0


class _TrainingProgress:
    """Mirrors RUN_DIR/log.csv into a Prefect progress artifact while training runs."""

    def __init__(self, run_dir: Path, total_steps: int, every_s: float = 5.0):
        self.log = run_dir / "log.csv"
        self.total = total_steps
        self.every_s = every_s
        self.artifact = create_progress_artifact(
            progress=0.0, key="train-progress", description=f"training {run_dir.name}: steps done"
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        last = -1
        while not self._stop.wait(self.every_s):
            step = _last_logged_step(self.log)
            if step != last:
                update_progress_artifact(self.artifact, progress=min(100.0, 100.0 * step / self.total))
                last = step

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        if exc[0] is None:
            update_progress_artifact(self.artifact, progress=100.0)


@flow(name="train-model", log_prints=False)  # COCOeval prints its tables
def train_model(params: TrainParams, data: str) -> str:
    """Train on the COCO dataset ``data``; returns the run directory: ``params.out``, or ``<out>-<hash>``
    when that holds another run (flows/outputs.py). The same run found there again is resumed, or, when
    finished, kept as it is."""
    from train.engine import train

    logger = get_run_logger()
    cfg = params.to_config(data)
    asked = Path(cfg.out)
    folder = keyed_folder(asked, train_key(cfg), held_train_key)
    if folder != asked:
        logger.warning("%s holds another training run: this one goes to %s", asked, folder)
    done = trained_steps(folder)
    if done >= cfg.steps:
        logger.info("%s already holds this run, trained for %d steps: not training again", folder, done)
        return str(folder)
    cfg = cfg.model_copy(update={"out": str(folder), "resume": done > 0})
    logger.info("train %s for %d steps on %s -> %s", cfg.model.name, cfg.steps, data, cfg.out)
    with _TrainingProgress(folder, cfg.steps):
        run_dir = train(cfg)
    return str(run_dir)


@task(name="evaluate-set", task_run_name="evaluate-{eval_set.name}")
def evaluate_set(checkpoint: str, eval_set: EvalSet) -> dict:
    from train.evaluate import evaluate

    return evaluate(
        checkpoint,
        eval_set.data,
        name=eval_set.display_name(),
        class_agnostic=True if eval_set.class_agnostic else None,
        category_map=eval_set.category_map,
        note=eval_set.note,
    )


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


@flow(name="evaluate-transfer", log_prints=False)  # COCOeval prints its tables
def evaluate_transfer(run_dir: str, eval_sets: list[EvalSet], note: str = "") -> dict:
    """Evaluate the run's last checkpoint on each set, write the report, publish summary artifacts."""
    from train.report import write_report

    run = Path(run_dir)
    ckpt = run / "checkpoints" / "last.pt"
    results = {}
    for s in eval_sets:
        results[s.display_name()] = evaluate_set(str(ckpt), s)
    report = write_report(run)

    lines = [f"## Transfer evaluation of `{run}`", ""]
    if note:
        lines += [note, ""]
    lines += [
        "| set | images | AP bbox | AP50 bbox | AP segm | blind floor AP50 | vs floor | weights |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for name, m in results.items():
        bbox, segm, floor = m.get("bbox") or {}, m.get("segm") or {}, m.get("floor") or {}
        lines.append(
            f"| {name} | {m['images']} | {_fmt(bbox.get('AP'))} | {_fmt(bbox.get('AP50'))} | "
            f"{_fmt(segm.get('AP'))} | {_fmt(floor.get('floor_AP50'))} | {floor.get('verdict', 'n/a')} | "
            f"{m.get('weights_source', '?')} |"
        )
        for cls, pc in (bbox.get("per_class") or {}).items():
            spc = (segm.get("per_class") or {}).get(cls) or {}
            rows.append(
                {
                    "set": name,
                    "class": cls,
                    "gt": pc.get("gt"),
                    "AP_bbox": pc.get("AP"),
                    "AP50_bbox": pc.get("AP50"),
                    "AP_segm": spc.get("AP"),
                }
            )
    lines += ["", f"Report: `{report}` (HTML) and `{report.with_suffix('.md')}` (Markdown)."]
    create_markdown_artifact(
        key="evaluation-summary", markdown="\n".join(lines), description="sim-to-real evaluation summary"
    )
    if rows:
        create_table_artifact(key="per-class-ap", table=rows, description="per-class AP by evaluation set")
    headline = ("AP", "AP50", "AP75")
    return {
        "report": str(report),
        "metrics": {
            k: {
                t: ({h: (v.get(t) or {}).get(h) for h in headline} if v.get(t) else None)
                for t in ("bbox", "segm")
            }
            for k, v in results.items()
        },
    }
