"""The reports' shared pieces: train.document (HTML + Markdown twins, table escaping, figure links) and how
train.compare reads variants by role rather than by letter."""

from __future__ import annotations

import re

import pytest

from train.compare import headline_sentence, reference_key, set_titles, variant_colors
from train.document import Document, fmt, md_cell


def test_markdown_table_cells_escape_pipes_and_line_breaks():
    assert md_cell("a|b") == "a\\|b"
    assert md_cell("two\nlines\r\nhere") == "two lines here"
    assert md_cell(3) == "3"
    doc = Document()
    doc.table(["name", "value|unit"], [["x|y", "1\n2"]])
    table = doc.md[-1].splitlines()
    assert table == ["| name | value\\|unit |", "|---|---|", "| x\\|y | 1 2 |"]
    assert all(re.sub(r"\\\|", "", line).count("|") == 3 for line in table)  # every row keeps 2 cells
    assert "<td>x|y</td>" in doc.html[-1]  # HTML needs no escaping of pipes, only of markup


def test_document_writes_html_markdown_and_figures(tmp_path):
    doc = Document()
    doc.h(1, "Title <b>")
    doc.p("headline", "summary")
    doc.p("plain")
    doc.figure("pr set 1", b"\x89PNG fake", "a caption")
    doc.figure("missing", None, "why it is missing")
    doc.figure("silent", None)
    doc.pre("x: 1\n")
    html_path = doc.write(tmp_path, "page & title")
    page = html_path.read_text()
    md = (tmp_path / "report.md").read_text()
    assert html_path == tmp_path / "report.html" and "<title>page &amp; title</title>" in page
    assert "Title &lt;b&gt;" in page and "src='data:image/png;base64," in page
    assert "> headline" in md and "\nplain\n" in md  # call-outs are block quotes in Markdown
    assert "![pr set 1](report_files/pr-set-1.png)" in md  # a URL-safe relative link
    assert (tmp_path / "report_files" / "pr-set-1.png").read_bytes() == b"\x89PNG fake"
    assert "(no figure: why it is missing)" in md and "silent" not in md
    assert "```\nx: 1\n```" in md


def test_fmt():
    assert fmt(0.12345) == "0.123" and fmt(2.0, 0) == "2" and fmt(None) == "n/a"
    assert fmt(float("nan")) == "n/a" and fmt(7) == "7" and fmt("text") == "text"


def _variants() -> dict[str, dict]:
    """Keys that are not the benchmark's letters: compare must go by role and order only."""

    def rec(key, role, kind, ap50, dann=False):
        return {
            "key": key,
            "name": f"name-{key}",
            "role": role,
            "train_data_kind": kind,
            "dann": dann,
            "bbox": {"AP50": ap50},
        }

    return {
        "p": rec("p", "synthetic", "synthetic_plain", 0.2),
        "q": rec("q", "synthetic", "synthetic_dr", 0.3),
        "r": rec("r", "synthetic", "synthetic_dr", 0.35, dann=True),
        "s": rec("s", "real", "real_train", 0.5),
        "t": rec("t", "finetuned", "real_train", 0.6),
    }


def test_variants_are_coloured_by_position_and_the_reference_found_by_role():
    v = _variants()
    colors = variant_colors(v)
    assert list(colors) == list(v) and len(set(colors.values())) == len(v)
    assert variant_colors(["s", "p"])["s"] == colors["p"]  # position, not name
    assert reference_key(v) == "s"
    assert reference_key({k: r for k, r in v.items() if r["role"] != "real"}) is None
    titles = set_titles(v)
    assert (
        titles["synthetic_plain"] == "synthetic plain (p)" and titles["synthetic_dr"] == "synthetic DR (q, r)"
    )
    assert titles["real_train"] == "real train"  # only synthetic-only variants label a set


@pytest.mark.parametrize("meaningful", [True, False])
def test_headline_picks_the_best_synthetic_variant_and_the_real_reference(meaningful):
    summary = {
        "class_name": "product",
        "variants": _variants(),
        "datasets": {"real_test": {"images": 12}},
        "transfer": {
            "ratios_meaningful": meaningful,
            "reference_verdict": "above the floor" if meaningful else "not distinguishable from the floor",
            "floor": {"estimate": 0.12, "ci95": [0.1, 0.14]},
            "AP50_relative_to_real_only": {"r": 0.7},
            "adaptation_gain_AP50": 0.05,
        },
    }
    text = headline_sentence(summary)
    assert "best synthetic variant ((r) name-r)" in text and "in 12 real test photos with AP50 0.350" in text
    assert ("70 %" in text) is meaningful and "AP50 0.500" in text  # the reference's number either way
    assert ("not distinguishable from the floor (blind floor AP50 0.120)" in text) is not meaningful
    assert "changes AP50 by +0.050 over (q)." in text  # DANN's baseline: same data, no DANN
    assert headline_sentence({"variants": {}}) == "No variant was evaluated."


@pytest.mark.parametrize("with_reference", [True, False])
def test_the_ratio_column_says_why_a_ratio_is_missing(with_reference):
    from train.compare import _accuracy_rows

    variants = {k: {**r, "title": k} for k, r in _variants().items() if with_reference or r["role"] != "real"}
    summary = {"variants": variants, "transfer": {"ratios_meaningful": False}}
    cells = {cell for row in _accuracy_rows(summary) for cell in row if isinstance(cell, str)}
    assert ("reference not above the floor" in cells) is with_reference
    assert ("no real-only variant in this run" in cells) is not with_reference


def test_reports_carry_no_machine_paths_and_every_markdown_image_resolves(tmp_path):
    from markdown_it import MarkdownIt

    from train.document import portable_text

    run = tmp_path / "runs" / "default" / "train"
    run.mkdir(parents=True)
    doc = Document()
    doc.h(1, f"Report on {tmp_path}/runs/default/data")
    doc.p(f"images from {tmp_path}/runs/default/data/annotations.json.", "note")
    doc.table(["item", "value"], [["command", "/opt/venv/bin/simreal run --out /srv/x/runs/default"]])
    doc.pre(f"data: {tmp_path}/runs/default/data\neval:\n- data: /mnt/shared/real/retail/freiburg_dev\n")
    for name in (
        "examples_freiburg_dev (real, retail)",
        "pr_ycbv [masks] 50%",
        "examples_freiburg_dev (real, retail)",
    ):
        doc.figure(name, b"\x89PNG", "caption")
    doc.write(run, f"report of {run}")
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    for text in (md, page):
        assert str(tmp_path) not in text and "/opt/venv" not in text and "/mnt/shared" not in text
    assert "images from ../data/annotations.json." in md and "data: ../data" in md
    assert "- data: freiburg_dev" in md and "simreal run --out /" not in md
    tokens = [t for block in MarkdownIt("commonmark").parse(md) for t in (block.children or [])]
    sources = [t.attrs["src"] for t in tokens if t.type == "image"]
    assert len(sources) == 3 == len(set(sources)) == len(list((run / "report_files").iterdir()))
    assert all((run / src).is_file() for src in sources)  # CommonMark shows every image
    assert portable_text("AP / real-only, 12 images/s, http://127.0.0.1:4200/api", run) == (
        "AP / real-only, 12 images/s, http://127.0.0.1:4200/api"
    )


def test_photo_figures_keep_the_colours_their_captions_name():
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D
    from PIL import Image

    from train.document import png
    from train.figures import OUTCOME_COLORS

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.imshow(np.random.default_rng(0).random((60, 80, 3)))  # a photo: hundreds of colours
    ax.legend(handles=[Line2D([], [], color=c, lw=2, label=k) for k, c in OUTCOME_COLORS.items()])
    data = png(fig, dpi=80, photo=True, keep_colors=tuple(OUTCOME_COLORS.values()))
    image = Image.open(io.BytesIO(data))
    assert image.mode == "P"
    colours = {tuple(c) for c in np.asarray(image.convert("RGB")).reshape(-1, 3).tolist()}
    for hex_colour in OUTCOME_COLORS.values():
        assert tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)) in colours


def test_dense_detections_get_labels_outside_their_boxes_and_never_overlapping():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from train.figures import draw_outcomes

    fig, ax = plt.subplots(figsize=(3, 3), dpi=80)
    ax.imshow(np.zeros((100, 100, 3)))
    preds = [
        {"bbox": [10 + k, 0 + 2 * k, 30, 30], "score": 0.9 - 0.01 * k, "category_id": 1} for k in range(12)
    ]
    draw_outcomes(ax, [], set(), preds, {0, 1}, box_lw=1, miss_lw=1, label=lambda p: f"{p['score']:.2f}")
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert 1 <= len(ax.texts) < len(preds)  # thinned: stacked boxes share one label
    assert ax.texts[0].get_text() == "0.90"  # the best score's label is the one kept first
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)
