"""One report document written twice, from two Jinja2 templates: a self-contained HTML page (figures inlined
as base64 PNG) and a Markdown twin whose figures sit in a folder beside it. Building both from the same
blocks is what keeps them saying the same thing; train.report and train.compare are its two users.

Reports are meant to be sent to a colleague, so what they say holds no machine paths: every absolute path
in their text is written relative to the report's folder (``../data``) when that is near, else as the
folder's or file's name (``freiburg_dev``); figure files get URL-safe names.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
from pathlib import Path

import jinja2
from markupsafe import Markup

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
MAX_UP = 2  # a path at most this many folders up from the report is shown relative to it

HTML_TEMPLATE = """\
{% macro block(b) -%}
{% if b.kind == "h" %}<h{{ b.level }}>{{ b.text }}</h{{ b.level }}>
{%- elif b.kind == "p" %}<p class='{{ b.cls }}'>{{ b.text }}</p>
{%- elif b.kind == "table" %}<table{% if b.cls %} class='{{ b.cls }}'{% endif %}><tr>
{%- for h in b.header %}<th>{{ h }}</th>{% endfor %}</tr>
{%- for row in b.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{%- elif b.kind == "figure" %}<figure><img src='data:image/png;base64,{{ b.b64 }}' alt='{{ b.name }}'/>\
<figcaption>{{ b.caption }}</figcaption></figure>
{%- elif b.kind == "pre" %}<pre>{{ b.text }}</pre>
{%- endif %}
{%- endmacro -%}
<!doctype html><html><head><meta charset='utf-8'><title>{{ title }}</title><style>{{ css }}</style></head><body>
{% for b in blocks %}{{ block(b) }}
{% endfor %}</body></html>
"""

MD_TEMPLATE = """\
{% macro block(b) -%}
{% if b.kind == "h" %}

{{ "#" * b.level }} {{ b.text }}
{% elif b.kind == "p" %}{{ "> " if b.cls in callouts }}{{ b.text }}
{% elif b.kind == "table" %}| {{ b.header | map("md_cell") | join(" | ") }} |
|{{ "---|" * (b.header | length) }}
{% for row in b.rows %}| {{ row | map("md_cell") | join(" | ") }} |
{% endfor %}
{% elif b.kind == "figure" %}![{{ b.alt }}]({{ b.src }})

{{ b.caption }}
{% elif b.kind == "pre" %}```
{{ b.text.rstrip() }}
```
{% endif %}
{%- endmacro -%}
{% for b in blocks %}{{ block(b) }}{% if not loop.last %}{{ "\\n" }}{% endif %}{% endfor %}"""


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


def pct(v) -> str:
    """A fraction as a whole percentage for a table cell ("85 %"); 'n/a' for missing or non-finite values."""
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.0f} %"


def png(fig, dpi: int = 110, photo: bool = False, keep_colors: tuple[str, ...] = ()) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards). `photo` figures are quantised to 256 colours, a
    third of the size, because they are inlined into the HTML; `keep_colors` (hex) stay exact in the
    palette, so thin lines of a legend or a box keep the colour their caption names."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    if not photo:
        return buf.getvalue()
    from PIL import Image

    rgb = Image.open(buf).convert("RGB")
    small = io.BytesIO()
    _quantize(rgb, keep_colors).save(small, format="PNG", optimize=True)
    return small.getvalue()


def _quantize(rgb, keep_colors: tuple[str, ...]):
    """256 colours: an adaptive palette, plus the colours to keep exact (median cut alone merges a colour
    that covers few pixels into a neighbour: a green legend line came out black)."""
    from PIL import Image

    adaptive = rgb.quantize(colors=256 - len(keep_colors)).getpalette()[: 3 * (256 - len(keep_colors))]
    fixed = [int(c.lstrip("#")[i : i + 2], 16) for c in keep_colors for i in (0, 2, 4)]
    palette = Image.new("P", (1, 1))
    palette.putpalette(adaptive + fixed + [0] * (768 - len(adaptive) - len(fixed)))
    return rgb.quantize(palette=palette, dither=Image.Dither.NONE)


def md_cell(value) -> str:
    """Text that stays inside one Markdown table cell: a pipe would end the cell and a line break the row,
    so pipes are backslash-escaped (CommonMark / GFM tables) and line breaks become spaces."""
    text = str(value).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return text.replace("|", "\\|")


# ---- paths fit to share ------------------------------------------------------------------------------
_ABS_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\"`<>|()\[\],;]+")


def shown_path(path: str | Path, base: Path) -> str:
    """``path`` relative to ``base`` when it is at most MAX_UP folders up, else its last component."""
    rel = os.path.relpath(path, base)
    ups = sum(1 for part in Path(rel).parts if part == "..")
    return rel if ups <= MAX_UP else Path(path).name


def portable_text(text: str, base: Path) -> str:
    """``text`` with every absolute path written by ``shown_path`` (sentence punctuation kept)."""

    def one(m: re.Match) -> str:
        path = m.group(0).rstrip(".:")
        return shown_path(path, base) + m.group(0)[len(path) :]

    return _ABS_PATH.sub(one, text)


def figure_file_name(name: str, taken: set[str]) -> str:
    """A URL-safe, unique file stem for a figure (names hold spaces and parentheses: set names)."""
    stem = (
        re.sub(r"[^A-Za-z0-9.]+", lambda m: "_" if "_" in m.group() else "-", name).strip("-_.") or "figure"
    )
    unique, k = stem, 2
    while unique in taken:
        unique, k = f"{stem}-{k}", k + 1
    return unique


# ---- the document ------------------------------------------------------------------------------------
def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md_cell"] = md_cell
    env.globals["callouts"] = CALLOUTS
    return env


HTML = _environment(True).from_string(HTML_TEMPLATE)
MARKDOWN = _environment(False).from_string(MD_TEMPLATE)
# The templates' `block` macros, to render one block alone (the page parts need no values there).
HTML_BLOCK = HTML.make_module({"blocks": [], "title": "", "css": ""}).block
MARKDOWN_BLOCK = MARKDOWN.make_module({"blocks": []}).block


class Document:
    """Blocks (headings, paragraphs, tables, figures, preformatted text) rendered by the HTML and Markdown
    templates; `write` puts report.html, report.md and the figures in a folder."""

    def __init__(self, files_dir_name: str = "report_files"):
        self.blocks: list[dict] = []
        self.files_dir_name = files_dir_name
        self.images: dict[str, bytes] = {}  # file stem -> PNG

    def h(self, level: int, text: str) -> None:
        self.blocks.append({"kind": "h", "level": level, "text": text})

    def p(self, text: str, cls: str = "") -> None:
        self.blocks.append({"kind": "p", "text": text, "cls": cls})

    def table(self, header: list[str], rows: list[list], cls: str = "") -> None:
        self.blocks.append(
            {
                "kind": "table",
                "header": [str(h) for h in header],
                "rows": [[str(c) for c in r] for r in rows],
                "cls": cls,
            }
        )

    def figure(self, name: str, image: bytes | None, caption: str = "") -> None:
        """An inlined figure; without an image, a note saying why (the caption), when there is one."""
        if image is None:
            if caption:
                self.p(f"(no figure: {caption})", "note")
            return
        stem = figure_file_name(name, set(self.images))
        self.images[stem] = image
        self.blocks.append(
            {
                "kind": "figure",
                "name": name,
                "alt": name.replace("[", "(").replace("]", ")"),
                "src": f"{self.files_dir_name}/{stem}.png",
                "b64": base64.b64encode(image).decode("ascii"),
                "caption": caption,
            }
        )

    def pre(self, text: str) -> None:
        self.blocks.append({"kind": "pre", "text": text})

    @property
    def html(self) -> list[str]:
        """Each block as HTML (what the page holds, one entry per block)."""
        return [str(HTML_BLOCK(b)) for b in self.blocks]

    @property
    def md(self) -> list[str]:
        """Each block as Markdown."""
        return [str(MARKDOWN_BLOCK(b)) for b in self.blocks]

    def portable_blocks(self, base: Path) -> list[dict]:
        """The blocks with every absolute path in their text made relative to ``base`` (or a name)."""

        def fix(value):
            if isinstance(value, str):
                return portable_text(value, base)
            return [fix(v) for v in value] if isinstance(value, list) else value

        keep = ("kind", "level", "cls", "src", "b64")
        return [{k: (v if k in keep else fix(v)) for k, v in b.items()} for b in self.blocks]

    def write(self, out_dir: Path, title: str) -> Path:
        """Write OUT/report.html (self-contained), OUT/report.md and its figures; returns the HTML path."""
        base = Path(out_dir).resolve()
        blocks = self.portable_blocks(base)
        title = portable_text(title, base)
        for stem, image in self.images.items():
            atomic_write_bytes(out_dir / self.files_dir_name / f"{stem}.png", image)
        atomic_write_text(out_dir / "report.md", MARKDOWN.render(blocks=blocks))
        atomic_write_text(out_dir / "report.html", HTML.render(blocks=blocks, title=title, css=Markup(CSS)))
        return out_dir / "report.html"
