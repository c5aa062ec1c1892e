"""One report document written twice: a self-contained HTML page (figures inlined as base64 PNG) and a
Markdown twin whose figures sit in a folder beside it. Building both from the same calls is what keeps
them saying the same thing; train.report and train.compare are its two users.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from urllib.parse import quote

from synth.fsutil import atomic_write_bytes, atomic_write_text

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.8em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.92em}th,td{border:1px solid #ccc;padding:4px 9px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}table.kv td{text-align:left}
.summary{background:#f5f9ff;border-left:4px solid #4575b4;padding:10px 14px;font-size:1.05em}
.warn{background:#fff6e5;border-left:4px solid #f0a030;padding:8px 14px}.note{color:#666;font-size:0.9em}
figure{margin:10px 0 22px}img{max-width:100%}figcaption{color:#555;font-size:0.88em}
pre{background:#f7f7f7;padding:10px;overflow-x:auto;font-size:0.82em}
"""
# Paragraph classes that stand out; Markdown has no classes, so these become block quotes there.
CALLOUTS = ("summary", "warn")


def read_json(path: str | Path) -> dict | list | None:
    """A JSON file's content, or None when it is missing or unreadable: a report shows what exists."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def fmt(v, digits: int = 3) -> str:
    """A number for a table cell; 'n/a' for missing or non-finite values."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def png(fig, dpi: int = 110, photo: bool = False) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards); `photo` figures are quantised to 256 colours,
    a third of the size, because they are inlined into the HTML."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    if not photo:
        return buf.getvalue()
    from PIL import Image

    small = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=256).save(small, format="PNG", optimize=True)
    return small.getvalue()


def md_cell(value) -> str:
    """Text that stays inside one Markdown table cell: a pipe would end the cell and a line break the row,
    so pipes are backslash-escaped (CommonMark / GFM tables) and line breaks become spaces."""
    text = str(value).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return text.replace("|", "\\|")


class Document:
    """HTML and Markdown built side by side; `write` puts report.html, report.md and the figures in a folder."""

    def __init__(self, files_dir_name: str = "report_files"):
        self.html: list[str] = []
        self.md: list[str] = []
        self.files_dir_name = files_dir_name
        self.images: dict[str, bytes] = {}

    def h(self, level: int, text: str) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def p(self, text: str, cls: str = "") -> None:
        self.html.append(f"<p class='{cls}'>{html.escape(text)}</p>")
        self.md.append(("> " if cls in CALLOUTS else "") + text + "\n")

    def table(self, header: list[str], rows: list[list], cls: str = "") -> None:
        self.html.append(
            (f"<table class='{cls}'><tr>" if cls else "<table><tr>")
            + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            + "</table>"
        )
        lines = ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in [header, *rows]]
        lines.insert(1, "|" + "---|" * len(header))
        self.md.append("\n".join(lines) + "\n")

    def figure(self, name: str, image: bytes | None, caption: str = "") -> None:
        """An inlined figure; without an image, a note saying why (the caption), when there is one."""
        if image is None:
            if caption:
                self.p(f"(no figure: {caption})", "note")
            return
        self.images[name] = image
        b64 = base64.b64encode(image).decode("ascii")
        self.html.append(
            f"<figure><img src='data:image/png;base64,{b64}' alt='{html.escape(name)}'/>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        alt = name.replace("[", "(").replace("]", ")")
        self.md.append(f"![{alt}]({quote(self.files_dir_name)}/{quote(name)}.png)\n\n{caption}\n")

    def pre(self, text: str) -> None:
        self.html.append(f"<pre>{html.escape(text)}</pre>")
        self.md.append("```\n" + text.rstrip() + "\n```\n")

    def write(self, out_dir: Path, title: str) -> Path:
        """Write OUT/report.html (self-contained), OUT/report.md and its figures; returns the HTML path."""
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>"
            + html.escape(title)
            + f"</title><style>{CSS}</style></head><body>"
            + "\n".join(self.html)
            + "</body></html>\n"
        )
        for name, image in self.images.items():
            atomic_write_bytes(out_dir / self.files_dir_name / f"{name}.png", image)
        atomic_write_text(out_dir / "report.md", "\n".join(self.md))
        atomic_write_text(out_dir / "report.html", page)
        return out_dir / "report.html"
