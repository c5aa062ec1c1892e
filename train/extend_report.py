"""``write_extend_report(out)``: what extending a detector with new classes gained and what it cost.

Built from OUT/extend.json (train.extend) and the training run in OUT/train (its log.csv), so it can be
rebuilt at any time; the same blocks become report.html and report.md (train.document). The training
run's own report (OUT/train/report.html, train.report) holds the extended model's full evaluation.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from synth.errors import ConfigError
from train.document import Document, fmt, read_json
from train.report import MODEL_TITLES, read_run, training_curves_figure


def _ap_words(summary: dict | None) -> str:
    return f"AP {fmt(summary['AP'])} (AP50 {fmt(summary['AP50'])})" if summary else "not measured"


def _change(before, after) -> str:
    return f"{after - before:+.3f}" if isinstance(before, float) and isinstance(after, float) else "n/a"


def _headline(doc: Document, r: dict) -> None:
    title = MODEL_TITLES.get(r["model"], r["model"])
    old, new = r["classes"]["old"], r["classes"]["new"]
    doc.h(1, f"{title} extended with {', '.join(new)}")
    doc.p(f"{title} · generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}", "note")
    rp = r["replay"]
    replay = (
        f"{100 * rp['fraction']:.0f}% of every batch replayed from {rp['images']} images of {rp['path']}"
        if rp["fraction"] > 0
        else "without replayed old data"
    )
    before, after = r["old_class_ap_before"], r["old_class_ap_after"]
    doc.p(
        f"{len(new)} new class{'es' if len(new) != 1 else ''} ({', '.join(new)}) added to the {len(old)} of "
        f"{r['base_checkpoint']} by fine-tuning {r['steps']} steps of {r['batch_size']} images on "
        f"{r['new_train']['images']} new images, {replay}. Old classes: box {_ap_words(before)} before, "
        f"{_ap_words(after)} after; new classes: box {_ap_words(r['new_class_ap'])}.",
        "summary",
    )
    if rp["fraction"] == 0:
        doc.p(
            "No old data was replayed: the old classes were trained only where the new images show them, "
            "so expect them to be forgotten.",
            "warn",
        )


def _class_table(doc: Document, r: dict) -> None:
    doc.h(2, "Accuracy per class (box AP, COCO)")
    doc.p(
        "Before: the base model; after: the extended model, on the same images. AP averages IoU "
        "0.50:0.95, AP50 is at IoU 0.50; 'n/a' where a model has no such class. The summary means are "
        "over every (set, class) pair with objects of that class.",
        "note",
    )
    old = set(r["classes"]["old"])
    rows = []
    for name, s in r["per_set"].items():
        for c, after in s["after"].items():
            before = s["before"].get(c) or {}
            rows.append(
                [
                    name,
                    c,
                    "old" if c in old else "new",
                    after.get("gt"),
                    fmt(before.get("AP")),
                    fmt(before.get("AP50")),
                    fmt(after.get("AP")),
                    fmt(after.get("AP50")),
                    _change(before.get("AP"), after.get("AP")),
                ]
            )
    if rows:
        doc.table(
            [
                "set",
                "class",
                "kind",
                "objects",
                "AP before",
                "AP50 before",
                "AP after",
                "AP50 after",
                "AP change",
            ],
            rows,
        )
    else:
        doc.p("No evaluation set held an object of a known class.", "warn")
    doc.table(
        ["summary", "AP", "AP50"],
        [
            [label, fmt((r[key] or {}).get("AP")), fmt((r[key] or {}).get("AP50"))]
            for label, key in (
                ("old classes, before", "old_class_ap_before"),
                ("old classes, after", "old_class_ap_after"),
                ("new classes, after", "new_class_ap"),
            )
        ],
    )


def _data_section(doc: Document, r: dict) -> None:
    doc.h(2, "Training data")
    td = r["train_data"]
    doc.table(["part", "images"], [[part, n] for part, n in td["images"].items()])
    doc.table(["class", "kind", "training objects"], [
        [c, "old" if c in r["classes"]["old"] else "new", n] for c, n in td["objects_per_class"].items()
    ])  # fmt: skip
    doc.p(
        f"Model labels: {', '.join(f'{c} = {lab}' for c, lab in r['labels'].items())} (old labels unchanged, "
        "new ones appended). The training run's own report: train/report.html.",
        "note",
    )


def write_extend_report(out: str | Path) -> Path:
    """Write OUT/report.html and OUT/report.md from OUT/extend.json and OUT/train; returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    r = read_json(out / "extend.json")
    if not isinstance(r, dict):
        raise ConfigError(out, "no extend.json: not the output folder of an extension")
    doc = Document()
    _headline(doc, r)
    _class_table(doc, r)
    run = read_run(Path(r["run_dir"]))
    if run.log:
        doc.h(2, "Fine-tuning")
        doc.figure(
            "training_curves", training_curves_figure(run.log), "Loss terms (log scale), learning rate."
        )
    _data_section(doc, r)
    title = f"{MODEL_TITLES.get(r['model'], r['model'])} extended with {', '.join(r['classes']['new'])}"
    return doc.write(out, title)
