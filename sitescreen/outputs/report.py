"""The run report, as Markdown and as one self-contained HTML file.

Both renderings come from one list of blocks (heading, paragraph, table, image, ...), so the
two never disagree. The HTML needs nothing from the network: images are inlined as
``data:image/png;base64`` URIs, the style sheet and the scripts (the vendored Leaflet of the
interactive map, see :mod:`sitescreen.outputs.webmap`) are inline, there are no web fonts, and
a Content-Security-Policy forbids the page to load anything and lets only the page's own
scripts run (by their SHA-256). Every piece of text that comes from a user or a file (site
names, addresses, reasons, catalog text) is escaped, in the Markdown as well, where raw HTML
would otherwise pass through to the viewer.

The title is the portfolio name (``manifest["title"]``). The first screen holds the headline
table (medium-and-above share per headline hazard x scenario x year, with model range,
weighted share and denominators) and one sentence per hazard. Then: shares tables and charts
per hazard (single hazards folded), maps (interactive and static), the per-site table of the
headline hazards (folded), methods (once per hazard: datasets, threshold set, method text,
and a table of dataset pathways and periods with the exact/approximate flag), data provenance
and licences, geocoding quality, and changes since the previous run. Long tables are folded
in ``<details>``, which open when the page is printed.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import html
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sitescreen.aggregate import SiteResults, marked_pathway
from sitescreen.classify import RiskLevel
from sitescreen.cooling import cooling_frame
from sitescreen.data.sources import SYNTHETIC_WARNING, is_synthetic
from sitescreen.geocode.frame import is_located
from sitescreen.geocode.model import COARSE_PRECISIONS
from sitescreen.outputs.geopackage import cooling_sites
from sitescreen.outputs.run_folder import REPORT_HTML, REPORT_MD
from sitescreen.outputs.styling import (
    BOUNDARY_CREDIT,
    LEVEL_COLOURS,
    NO_DATA_COLOUR,
    hazard_order,
    map_chart_name,
    shares_chart_name,
)
from sitescreen.outputs.summary import (
    HEADLINE_HAZARDS,
    approximate_pathways,
    disclosure_sentences,
    hazard_sentences,
    headline_table,
    pct_text,
    range_text,
    report_title,
    unresolved_weight_sentence,
)
from sitescreen.outputs.webmap import web_map
from sitescreen.scenarios import Narrative, scenario_rank, scenario_title

__all__ = ["render_report", "headline_markdown"]

_SCEN_SHORT = {"optimistic": "Opt", "current_trend": "Cur", "pessimistic": "Pes"}
_MAX_CHANGE_ROWS = 300
# Sites listed in the report's per-site table; larger portfolios list those with the highest
# headline levels (every site is in site_results.csv and sites.geojson). A table of 100,000
# sites would make a report of about 100 MB that takes a minute to build and to open.
_MAX_SITE_ROWS = 2000
# Tables longer than this are folded (<details>) so the page stays short.
_FOLD_ROWS = 12


# ----------------------------------------------------------------------------- document model

@dataclass(slots=True)
class _Cell:
    """A table cell: text, an optional CSS class (HTML only) and a tooltip."""

    text: str
    cls: str = ""
    title: str = ""


@dataclass(slots=True)
class _Doc:
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str = "") -> None:
        self.blocks.append(("h", (level, text, anchor)))

    def para(self, text: str, cls: str = "") -> None:
        self.blocks.append(("p", (text, cls)))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], *,
              groups: Sequence[tuple[str, int]] = (), cls: str = "") -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows], list(groups), cls)))

    def image(self, name: str, alt: str, data: bytes) -> None:
        self.blocks.append(("img", (name, alt, data)))

    def code(self, text: str, summary: str) -> None:
        self.blocks.append(("code", (text, summary)))

    def links(self, items: Sequence[tuple[str, str]]) -> None:
        self.blocks.append(("links", list(items)))

    def html(self, fragment: str, markdown: str, *, css: str = "",
             scripts: Sequence[str] = ()) -> None:
        """An HTML-only part (the interactive map) with its Markdown stand-in. The
        fragment is trusted markup built by this package, not user text."""
        self.blocks.append(("html", (fragment, markdown, css, tuple(scripts))))

    @contextmanager
    def fold(self, summary: str, *, fold: bool = True) -> Iterator[None]:
        """Blocks added inside are folded under ``summary`` (HTML ``<details>``)."""
        if fold:
            self.blocks.append(("fold", summary))
        yield
        if fold:
            self.blocks.append(("/fold", None))


def _md_text(text: object) -> str:
    """Markdown-safe inline text: HTML special characters become entities, Markdown
    punctuation is backslash-escaped, and line breaks become spaces."""
    s = _str(text).replace("&", "&amp;").replace("<", "&lt;")
    s = re.sub(r"([\\`*_\[\]|#])", r"\\\1", s)
    s = re.sub(r"^(\s*)>", r"\1&gt;", s)
    return re.sub(r"\s*\n\s*", " ", s)


def _str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    try:
        if pd.isna(value):  # pd.NA, NaT
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def _safe_url(url: str) -> str:
    """Only http(s) links are kept (never ``javascript:`` or ``data:``)."""
    return url if re.match(r"^https?://[^\s\"'<>]+$", url or "") else ""


def _to_markdown(doc: _Doc) -> str:
    out: list[str] = []
    for kind, body in doc.blocks:
        if kind == "h":
            level, text, _ = body
            out.append(f"{'#' * level} {_md_text(text)}\n")
        elif kind == "p":
            text, cls = body
            prefix = "> **Warning:** " if cls == "warn" else "> " if cls == "note" else ""
            out.append(prefix + _md_text(text) + "\n")
        elif kind == "ul":
            out.append("\n".join(f"- {_md_text(item)}" for item in body) + "\n")
        elif kind == "links":
            out.append("\n".join(
                f"- [{_md_text(label)}]({_safe_url(url)})" if _safe_url(url)
                else f"- {_md_text(label)}" for label, url in body) + "\n")
        elif kind == "table":
            header, rows, _, _ = body
            lines = ["| " + " | ".join(_md_text(h) for h in header) + " |",
                     "|" + "|".join("---" for _ in header) + "|"]
            for row in rows:
                cells = [_md_text(c.text if isinstance(c, _Cell) else c) for c in row]
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines) + "\n")
        elif kind == "img":
            name, alt, _ = body
            out.append(f"![{_md_text(alt)}]({name})\n")
        elif kind == "code":
            text, summary = body
            fence = "````" if "```" in text else "```"
            out.append(f"{_md_text(summary)}:\n\n{fence}\n{text}\n{fence}\n")
        elif kind == "html":
            out.append(f"> {_md_text(body[1])}\n")
        elif kind == "fold":
            out.append(f"**{_md_text(body)}**\n")
    return "\n".join(out)


def _esc(text: object) -> str:
    return html.escape(_str(text), quote=True)


_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")


def _html_cell(tag: str, cell: Any) -> str:
    if not isinstance(cell, _Cell):
        cell = _Cell(_str(cell))
    cls = cell.cls or ("n" if tag == "td" and _NUMERIC.match(cell.text) else "")
    attrs = (f' class="{_esc(cls)}"' if cls else "") + \
        (f' title="{_esc(cell.title)}"' if cell.title else "")
    return f"<{tag}{attrs}>{_esc(cell.text)}</{tag}>"


def _to_html_body(doc: _Doc) -> str:
    out: list[str] = []
    for kind, body in doc.blocks:
        if kind == "h":
            level, text, anchor = body
            ident = f' id="{_esc(anchor)}"' if anchor else ""
            out.append(f"<h{level}{ident}>{_esc(text)}</h{level}>")
        elif kind == "p":
            text, cls = body
            out.append(f'<p class="{_esc(cls)}">{_esc(text)}</p>' if cls else f"<p>{_esc(text)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in body) + "</ul>")
        elif kind == "links":
            items = []
            for label, url in body:
                safe = _safe_url(url)
                items.append(f'<li><a href="{_esc(safe)}" rel="noopener noreferrer">{_esc(label)}</a></li>'
                             if safe else f"<li>{_esc(label)}</li>")
            out.append("<ul>" + "".join(items) + "</ul>")
        elif kind == "table":
            header, rows, groups, cls = body
            parts = [f'<div class="scroll"><table class="{_esc(cls)}">' if cls
                     else '<div class="scroll"><table>', "<thead>"]
            if groups:
                parts.append("<tr>" + "".join(
                    f'<th colspan="{n}" class="grp">{_esc(t)}</th>' if n > 1 else
                    f'<th class="grp">{_esc(t)}</th>' for t, n in groups) + "</tr>")
            parts.append("<tr>" + "".join(_html_cell("th", h) for h in header) + "</tr></thead><tbody>")
            for row in rows:
                parts.append("<tr>" + "".join(_html_cell("td", c) for c in row) + "</tr>")
            parts.append("</tbody></table></div>")
            out.append("".join(parts))
        elif kind == "img":
            name, alt, data = body
            b64 = base64.b64encode(data).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{_esc(alt)}">'
                       f"<figcaption>{_esc(alt)} ({_esc(name)})</figcaption></figure>")
        elif kind == "code":
            text, summary = body
            out.append(f"<details><summary>{_esc(summary)}</summary><pre>{_esc(text)}</pre></details>")
        elif kind == "html":
            out.append(body[0])
        elif kind == "fold":
            out.append(f'<details class="fold"><summary>{_esc(body)}</summary>')
        elif kind == "/fold":
            out.append("</details>")
    return "\n".join(out)


def _css() -> str:
    levels = "".join(f".l{lvl}{{background:{c};}}" for lvl, c in LEVEL_COLOURS.items())
    return (
        "body{font-family:-apple-system,'Segoe UI',Roboto,'Noto Sans','Noto Sans CJK SC',"
        "'PingFang SC','Microsoft YaHei',sans-serif;max-width:72rem;margin:1.5rem auto;"
        "padding:0 1rem;color:#222;line-height:1.45;font-size:15px}"
        "h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;"
        "padding-bottom:.2rem}h3{margin-top:1.6rem}"
        "table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}"
        "th,td{border:1px solid #d0d0d0;padding:.2rem .45rem;text-align:left;vertical-align:top}"
        "th{background:#f3f3f3}th.grp{text-align:center}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "td.lv{text-align:center;white-space:nowrap;font-variant-numeric:tabular-nums}"
        f"{levels}.l1,.l5{{color:#fff}}.l0{{background:{NO_DATA_COLOUR};color:#333}}"
        ".scroll{overflow-x:auto}"
        "figure{margin:.8rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}"
        "figcaption{font-size:.8rem;color:#666}"
        ".warn{background:#fde0dd;border:2px solid #b2182b;color:#67000d;padding:.6rem .8rem;"
        "font-weight:bold}"
        ".banner{position:sticky;top:0;z-index:2;background:#b2182b;color:#fff;padding:.5rem .8rem;"
        "font-weight:bold;text-align:center;letter-spacing:.02em}"
        ".note{background:#f6f8fa;border-left:4px solid #8c96a0;padding:.4rem .7rem}"
        ".meta{color:#555;font-size:.9rem}"
        "td.bad{background:#fde0dd;font-weight:bold}"
        "pre{white-space:pre-wrap;font-size:.8rem;background:#f6f8fa;padding:.5rem}"
        "nav ul{columns:3;font-size:.9rem;margin:.4rem 0}"
        "table.headline td,table.headline th{padding:.25rem .6rem}"
        "table.headline td.hz{font-weight:bold}"
        "details.fold{margin:.6rem 0}details.fold>summary{cursor:pointer;color:#0b4f8a;"
        "font-weight:600}"
        ".lede{font-size:1.05rem;color:#333;margin:.1rem 0 .6rem}"
        "@media print{@page{margin:14mm}body{max-width:none;margin:0;font-size:10.5pt}"
        ".banner{position:static}figure,table,tr{break-inside:avoid}h2,h3{break-after:avoid}"
        "nav,details>summary{display:none}details{display:block}"
        ".scroll{overflow:visible}a{color:inherit}}"
    )


# Folded sections open for printing, and close again after.
_PRINT_JS = ("(function(){var opened=[];window.addEventListener('beforeprint',function(){"
             "document.querySelectorAll('details:not([open])').forEach(function(d){d.open=true;"
             "opened.push(d);});});window.addEventListener('afterprint',function(){"
             "opened.forEach(function(d){d.open=false;});opened=[];});}());")


def _script_hash(js: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode() + "'"


def _to_html(doc: _Doc, *, title: str, banner: str, toc: Sequence[tuple[str, str]]) -> str:
    extra_css = "".join(body[2] for kind, body in doc.blocks if kind == "html")
    scripts = [js for kind, body in doc.blocks if kind == "html" for js in body[3]]
    scripts.append(_PRINT_JS)
    for js in scripts:
        if "</script" in js.lower():
            raise ValueError("an inline script may not contain '</script'")
    # The policy is the guarantee behind "self-contained": even an injected tag could load
    # nothing, inline images are the only resources allowed, and only the page's own
    # scripts (by hash) run, never an injected one.
    csp = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src {' '.join(dict.fromkeys(_script_hash(js) for js in scripts))}; "
           "connect-src 'none'; base-uri 'none'; form-action 'none'")
    nav = ("<nav><ul>" + "".join(f'<li><a href="#{_esc(a)}">{_esc(t)}</a></li>' for a, t in toc)
           + "</ul></nav>") if toc else ""
    # The contents come after the first screen (title, headline table and sentences).
    h2 = [i for i, (kind, body) in enumerate(doc.blocks) if kind == "h" and body[0] == 2]
    first = h2[1] if len(h2) > 1 else len(doc.blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="sitescreen">'
        f"<title>{_esc(title)}</title><style>{_css()}{extra_css}</style></head><body>\n"
        + (f'<div class="banner">{_esc(banner)}</div>\n' if banner else "")
        + _to_html_body(_Doc(doc.blocks[:first])) + "\n" + nav + "\n"
        + _to_html_body(_Doc(doc.blocks[first:])) + "\n"
        + "".join(f"<script>{js}</script>\n" for js in scripts) + "</body></html>\n"
    )


# ----------------------------------------------------------------------------- helpers

def _pct(value: object) -> str:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.0f}"


def _share(value: object) -> str:
    """A share of sites in %, as the sentences print it (100 and 0 only when exact)."""
    text = _pct(value)
    return text if text == "-" else pct_text(float(value))  # type: ignore[arg-type]


def _labels(frame: pd.DataFrame) -> dict[str, str]:
    # One row per hazard first: the long table has millions of rows.
    first = frame[["hazard", "hazard_label"]].drop_duplicates("hazard", keep="last")
    return dict(zip(first["hazard"], first["hazard_label"], strict=True))


def _abbr(label: str) -> str:
    words = [w for w in re.split(r"[\s_-]+", label) if w and w.lower() not in ("and", "of")]
    return "".join(w[0].upper() for w in words) or label[:3]


def _col(sites: pd.DataFrame, name: str) -> pd.Series:
    """``_str`` of each cell of a site column ("" when absent), one call per distinct value."""
    if name not in sites:
        return pd.Series("", index=sites.index)
    codes, uniq = pd.factorize(sites[name])
    text = np.array([_str(u) for u in uniq] + [""], dtype=object)  # code -1: missing
    return pd.Series(text[codes], index=sites.index, dtype=object)


# ----------------------------------------------------------------------------- sections

def _title(manifest: Mapping) -> str:
    inputs = manifest.get("inputs", {}).get("sites", {})
    return _str(manifest.get("title")) or report_title(None, None, inputs.get("path", "") or
                                                       f"run {manifest.get('run_id', '')}")


def _header(doc: _Doc, manifest: Mapping, sites: pd.DataFrame, *, banner: bool = True) -> None:
    """Title, run line and, for synthetic data, the warning line. ``banner``: the page shows
    the warning itself above the title (the report), so the line does not repeat it."""
    run_id = manifest.get("run_id", "")
    doc.heading(1, _title(manifest))
    inputs = manifest.get("inputs", {}).get("sites", {})
    doc.para(f"Physical climate risk screening, run {run_id}: sitescreen "
             f"{manifest.get('sitescreen_version', '')}; created "
             f"{manifest.get('created_at', '')}; sites file {inputs.get('path', '')} "
             f"({len(sites)} sites); data origin: {manifest.get('data_origin', '')}.", "meta")
    if is_synthetic(manifest):
        doc.para(("" if banner else f"{SYNTHETIC_WARNING} ")
                 + "Every number, chart and map in this report is illustrative only.", "warn")


_MEDIUM_PLUS_NOTE = (
    "Medium+ = level 3 (medium) to 5 (very high), as a share of the sites screened (located "
    "and with data); sites with no data or no location are counted in the last column, never "
    "as low risk. In brackets: the share with every site at the low or high end of its model "
    "spread.")


def _headline(doc: _Doc, shares: pd.DataFrame, *, anchor: str = "findings") -> None:
    """The first screen: the headline table and one sentence per hazard."""
    doc.heading(2, "Headline: sites at medium or higher risk", anchor)
    header, rows = headline_table(shares)
    if rows:
        doc.table(header, [[_Cell(r[0], "hz"), *r[1:]] for r in rows], cls="headline")
    else:
        doc.para("No site could be screened (no location or no data).")
    approx = "\u2020" in "".join(c for r in rows for c in r)
    doc.para(_MEDIUM_PLUS_NOTE + (" \u2020 a dataset pathway only approximates the scenario "
                                  "(named below and in Methods)." if approx else ""), "note")
    present = list(dict.fromkeys(shares["hazard"]))
    headline = [h for h in HEADLINE_HAZARDS if h in present] or present
    doc.bullets(hazard_sentences(shares, hazards=headline))


def _sentences_by_case(doc: _Doc, shares: pd.DataFrame) -> None:
    present = list(dict.fromkeys(shares["hazard"]))
    headline = [h for h in HEADLINE_HAZARDS if h in present] or present
    sentences = disclosure_sentences(shares, hazards=headline)
    if sentences:
        with doc.fold(f"One sentence per hazard, scenario and year ({len(sentences)}), "
                      "for copying into a disclosure"):
            doc.bullets(sentences)


def _lower_bound_cell(r: Mapping) -> Any:
    n = int(r.get("sites_lower_bound") or 0)
    missing = " or ".join(p for p in _str(r.get("lower_bound_missing")).split(",") if p)
    return _Cell(f"{n} (no {missing} data)" if n and missing else str(n), "bad" if n else "")


def _shares_table(doc: _Doc, part: pd.DataFrame, weighted: bool) -> None:
    header = ["Scenario", "Year", "L1 %", "L2 %", "L3 %", "L4 %", "L5 %", "Medium+ %",
              "Range %"]
    if weighted:
        header.append(f"Medium+ % by {_str(part['weight_field'].iloc[0])}")
    # A composite's sites whose level is a lower bound (a component without data there).
    bounded = "sites_lower_bound" in part and bool(part["sites_lower_bound"].fillna(0).any())
    header += ["Screened", *(["Of which lower bound"] if bounded else []), "No data",
               "Unresolved", "Dataset pathway", "Period"]
    rows = []
    for r in part.to_dict("records"):
        row: list[Any] = [scenario_title(r["scenario"]), r["year"],
                          *[_share(r[f"pct_level_{lvl}"]) for lvl in range(1, 6)],
                          _share(r["medium_plus_pct"]),
                          range_text(r["medium_plus_pct_low"], r["medium_plus_pct_high"])]
        if weighted:
            row.append(_share(r["w_medium_plus_pct"]))
        approx = approximate_pathways(r)
        pathway = marked_pathway(_str(r["pathway"]), not approx, bool(r["is_composite"]))
        row += [r["sites_screened"], *([_lower_bound_cell(r)] if bounded else []),
                r["sites_no_data"], r["sites_unresolved"],
                _Cell(pathway, "bad" if approx else "", _str(r.get("pathway_label"))),
                _str(r["period"])]
        rows.append(row)
    doc.table(header, rows, cls="num")


def _shares_sections(doc: _Doc, shares: pd.DataFrame, charts: Mapping[str, bytes]) -> None:
    doc.heading(2, "Share of sites per risk level", "shares")
    weighted = "w_medium_plus_pct" in shares.columns
    for hazard in hazard_order(shares):
        part = shares[shares["hazard"] == hazard]
        part = part.assign(_s=part["scenario"].map(scenario_rank)).sort_values(
            ["year", "_s"], kind="stable")
        label = _str(part["hazard_label"].iloc[0])
        composite = bool(part["is_composite"].iloc[0])
        doc.heading(3, f"{label}{' (composite)' if composite else ''}", f"shares-{hazard}")
        # The composites are what disclosures report; their components are folded.
        with doc.fold(f"{label}: table and chart", fold=not composite):
            _shares_table(doc, part, weighted)
            name = shares_chart_name(hazard, "png")
            if name in charts:
                doc.image(name, f"{label}: share of sites by risk level", charts[name])
    if len(shares):
        _sentences_by_case(doc, shares)


def _span(lo: float, hi: float, fmt: str = "{:,.0f}") -> str:
    """``"9-17"``, one number when both round alike, ``"-"`` without values."""
    if np.isnan(lo) or np.isnan(hi):
        return "-"
    a, b = fmt.format(round(lo) + 0), fmt.format(round(hi) + 0)  # + 0: no "-0"
    return a if a == b else f"{a} to {b}"


def _centers(n: int) -> str:
    return f"{n} data center" + ("" if n == 1 else "s")


def _cooling(doc: _Doc, table: pd.DataFrame, sites: pd.DataFrame, manifest: Mapping) -> None:
    """Data-center cooling electricity per scenario and year (SenseTime's question)."""
    frame = cooling_frame(table)
    records = manifest.get("data_center_cooling", [])
    if frame.empty or not records:
        return
    rec = records[0]
    cur = _str(rec.get("currency"))
    doc.heading(2, "Data-center cooling energy", "cooling")
    n = frame["site_id"].nunique()
    doc.para(f"Change of the cooling electricity of the {_centers(n)} (sites of kind "
             f"{_str(rec.get('kind'))}) from today (1995-2014 cooling degree days) to each "
             "scenario and period, by the degree-day method. The % change needs only the "
             "cooling degree days; MWh/year needs a site's IT load (it_load_kw or "
             "it_load_mw), money its electricity price. The range puts the ensemble's p10 and "
             "p90 maps of the period over today's median: the models' spread of the future "
             "climate, not of the change, so its low end can be below zero.")
    items = []
    centers = sites[sites["site_id"].astype(str).isin(frame["site_id"].astype(str)).to_numpy()]
    names = dict(zip(centers["site_id"].astype(str), _col(centers, "name"), strict=True))
    frame = frame.assign(_s=frame["scenario"].map(scenario_rank)).sort_values(
        ["year", "_s"], kind="stable")
    for (year, _), part in frame.groupby(["year", "_s"], sort=False):
        pct = part["dc_cooling_change_pct"].to_numpy(dtype=float)
        if np.isnan(pct).all():
            continue
        lo = np.nanmin(part["dc_cooling_change_pct_low"].to_numpy(dtype=float))
        hi = np.nanmax(part["dc_cooling_change_pct_high"].to_numpy(dtype=float))
        per_mw = part["dc_cooling_change_mwh_per_mw_it"].to_numpy(dtype=float)
        cost_mw = part["dc_cooling_change_cost_per_mw_it"].to_numpy(dtype=float)
        text = (f"By {year} under the {scenario_title(part['scenario'].iloc[0])} scenario "
                f"({_str(part['pathway'].iloc[0])}, {_str(part['period'].iloc[0])}), cooling "
                f"electricity of the {_centers(int((~np.isnan(pct)).sum()))} with data "
                f"changes by {_span(np.nanmin(pct), np.nanmax(pct))} % (p10-p90 range "
                f"{_span(lo, hi)} %); {_span(np.nanmin(per_mw), np.nanmax(per_mw))} MWh/year "
                "per MW of IT load")
        if not np.isnan(cost_mw).all():
            text += f" ({_span(np.nanmin(cost_mw), np.nanmax(cost_mw))} {cur}/year per MW)"
        mwh = part["dc_cooling_change_mwh"].to_numpy(dtype=float)
        if not np.isnan(mwh).all():
            cost = part["dc_cooling_change_cost"].to_numpy(dtype=float)
            k = int((~np.isnan(mwh)).sum())
            text += (f"; in total {np.nansum(mwh):,.0f} MWh/year (range "
                     f"{np.nansum(part['dc_cooling_change_mwh_low']):,.0f} to "
                     f"{np.nansum(part['dc_cooling_change_mwh_high']):,.0f}) for the "
                     f"{_centers(k)} with an IT load, {np.nansum(cost):,.0f} {cur}/year")
        items.append(text + ".")
    doc.bullets(items)
    combos = list(dict.fromkeys(zip(frame["scenario"], frame["year"], strict=True)))
    header = ["Site", "Name", "CDD today (C-days)"] + [
        f"{_SCEN_SHORT.get(sc, sc)} {y} %" for sc, y in combos] + ["Inputs"]
    rows = []
    for sid, part in frame.groupby("site_id", sort=False):
        by = {(r.scenario, r.year): r for r in part.itertuples(index=False)}
        first = part.iloc[0]
        cells = []
        for key in combos:
            r = by.get(key)
            cells.append("-" if r is None or np.isnan(r.dc_cooling_change_pct) else
                         f"{_pct(r.dc_cooling_change_pct)} "
                         f"({_span(r.dc_cooling_change_pct_low, r.dc_cooling_change_pct_high)})")
        rows.append([sid, names.get(str(sid), ""), _pct(first["cdd_today"]), *cells,
                     _str(first["dc_assumptions"])])
    doc.table(header, rows)
    price = rec.get("default_electricity_price")
    doc.bullets([
        f"Method: {_str(rec.get('method'))}.",
        f"Defaults where a site gives nothing (a site's own pue, cooling_share and "
        f"electricity_price win): PUE {rec.get('default_pue')}, cooling share of the non-IT "
        f"overhead {rec.get('default_cooling_share')}, electricity price "
        + (f"{price} {cur}/kWh" if price is not None else "none (no money figure)")
        + "; the IT load has no default.",
        "Each site's inputs and the defaults it used are in the table above, in "
        "site_results.csv (extra_cooling_demand_dc_*), in the GeoPackage layer "
        "data_center_cooling and in manifest.json (data_center_cooling).",
    ])


def _parse_map_name(name: str) -> tuple[str, str, int] | None:
    m = re.match(r"^charts/map_(.+)_(\d{4})\.png$", name)
    if not m:
        return None
    stem, year = m.group(1), int(m.group(2))
    for scen in Narrative:
        if stem.endswith("_" + scen.value):
            return stem[: -len(scen.value) - 1], scen.value, year
    return None


def _maps(doc: _Doc, charts: Mapping[str, bytes], labels: Mapping[str, str],
          listed: pd.DataFrame, table: pd.DataFrame, n_sites: int, *, synthetic: bool) -> None:
    found = [(n, p) for n in charts if (p := _parse_map_name(n))]  # in the order drawn
    # The interactive map opens on the first static map's layer.
    imap = web_map(listed, table, labels=labels, default=found[0][1] if found else None,
                   n_listed_of=n_sites, synthetic=synthetic) if len(table) else None
    if not found and imap is None:
        return
    doc.heading(2, "Maps", "maps")
    doc.para(BOUNDARY_CREDIT + " Sites are drawn where they were located; unresolved sites "
             "are not drawn.", "note")
    if imap is not None:
        doc.html(imap.html, "The interactive map (pan, zoom, click a site for its levels) is "
                 "in report.html.", css=imap.css, scripts=imap.scripts)
    # With the interactive map above, the static ones (for print and the Markdown) fold.
    with doc.fold(f"Static maps ({len(found)})", fold=imap is not None and bool(found)):
        for name, (hazard, scen, year) in found:
            if map_chart_name(hazard, scen, year) == name:
                doc.image(name, f"{labels.get(hazard, hazard)}: {scenario_title(scen)} {year}",
                          charts[name])


def _level_cell(level: int, low: int, high: int, driver: str) -> _Cell:
    if level <= 0:
        return _Cell("-", "lv l0", "no data")
    text = str(level) if low == high else f"{level} ({low}-{high})"
    tip = RiskLevel(level).label + (f"; driven by {driver}" if driver else "")
    return _Cell(text, f"lv l{level}", tip)


def _headline_hazards(table: pd.DataFrame) -> list[str]:
    present = list(table["hazard"].unique())
    return [h for h in HEADLINE_HAZARDS if h in present] or present


def _listed_sites(sites: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The sites the per-site table and the interactive map show: all of them, or for a
    large portfolio the :data:`_MAX_SITE_ROWS` with the highest headline levels, in input
    order."""
    if len(sites) <= _MAX_SITE_ROWS:
        return sites
    part = table[table["hazard"].isin(_headline_hazards(table))]
    top = pd.to_numeric(part["level"], errors="coerce").groupby(part["site_id"]).max()
    rank = sites["site_id"].map(top).fillna(0).to_numpy()
    return sites.iloc[np.sort(np.argsort(-rank, kind="stable")[:_MAX_SITE_ROWS])]


def _report_rows(sites: pd.DataFrame, results: SiteResults, cooling: np.ndarray | None = None,
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the listed sites, as :func:`_listed_sites` picks them, the long rows of the listed
    sites and of the data centers: ``cooling``, computed when not given) of a run's results
    aligned with ``sites``."""
    if len(results) != len(sites):
        raise ValueError(f"{len(results)} results for {len(sites)} sites")
    keep = np.ones(len(sites), dtype=bool)
    if len(sites) > _MAX_SITE_ROWS:
        present = list(dict.fromkeys(info.hazard for info in results.layers))
        headline = [h for h in HEADLINE_HAZARDS if h in present] or present
        rank = np.zeros(len(sites), dtype=np.int64)
        for i, info in enumerate(results.layers):
            if info.hazard in headline:
                np.maximum(rank, results.level[i], out=rank)
        keep[:] = False
        keep[np.argsort(-rank, kind="stable")[:_MAX_SITE_ROWS]] = True
    rows = results.select(keep | (cooling_sites(results) if cooling is None else cooling)
                          ).long_table()
    return sites.iloc[np.flatnonzero(keep)], rows


def _site_files(manifest: Mapping) -> list[str]:
    """The per-site files of the run, the long ones first (``site_results.csv`` and
    ``sites.geojson`` when the manifest does not say)."""
    files = manifest.get("per_site_outputs", {}).get("files")
    if files is None:
        return ["site_results.csv", "sites.geojson"]
    return [f for f in files if not f.endswith((".parquet", ".gpkg"))] \
        or [f for f in files if f.endswith(".parquet")] or ["no per-site file of this run"]


def _site_table(doc: _Doc, sites: pd.DataFrame, table: pd.DataFrame,
                labels: Mapping[str, str], n_sites: int, files: Sequence[str]) -> None:
    doc.heading(2, "Sites", "sites")
    hazards = _headline_hazards(table)
    part = table[table["hazard"].isin(hazards)]
    combos = sorted({(h, s, int(y)) for h, s, y in part[["hazard", "scenario", "year"]]
                     .drop_duplicates().itertuples(index=False)},
                    key=lambda k: (hazards.index(k[0]), k[2], scenario_rank(k[1])))
    if len(sites) < n_sites:
        part = part[part["site_id"].isin(set(sites["site_id"]))]
    cells: dict[tuple[str, str, str, int], _Cell] = {}
    flags: dict[str, list[str]] = {}
    # Python values column by column: a row iterator would box every cell of the long rows.
    for sid, hazard, scen, year, level, low, high, driver, flag_text in zip(*(
            part[c].tolist() for c in ("site_id", "hazard", "scenario", "year", "level",
                                       "level_low", "level_high", "driver", "flags")),
            strict=True):
        cells[(sid, hazard, scen, int(year))] = _level_cell(
            int(level), int(low), int(high), _str(driver))
        for f in _str(flag_text).split(";"):
            if f.strip():
                flags.setdefault(sid, []).append(f.strip())
    abbr = {h: _abbr(labels.get(h, h)) for h in hazards}
    header = ["Site", "Name", "City", "Precision"] + [
        f"{abbr[h]} {_SCEN_SHORT.get(s, s)} {y}" for h, s, y in combos] + ["Flags"]
    groups = [("", 4)] + [(labels.get(h, h), sum(1 for c in combos if c[0] == h))
                          for h in hazards] + [("", 1)]
    unresolved = ~is_located(sites)
    rows = []
    for (_, s), unres in zip(sites.iterrows(), unresolved, strict=True):
        sid = _str(s["site_id"])
        site_flags = [f.strip() for f in _str(s.get("location_flags")).split(";") if f.strip()]
        if unres:
            site_flags.insert(0, "unresolved location")
        all_flags = list(dict.fromkeys(site_flags + flags.get(sid, [])))
        rows.append([sid, _str(s.get("name")), _str(s.get("city")),
                     _str(s.get("geocode_precision")) or _str(s.get("location_source")),
                     *[cells.get((sid, h, sc, y), _Cell("-", "lv l0", "no result"))
                       for h, sc, y in combos],
                     "; ".join(all_flags)])
    legend = ", ".join(f"{abbr[h]} = {labels.get(h, h)}" for h in hazards)
    doc.para(f"Level per site (1 very low to 5 very high; '-' no data; a range in brackets is "
             f"the model spread). Columns: {legend}; Opt/Cur/Pes = Optimistic, Current Trend, "
             f"Pessimistic. Every hazard, also the single ones, is in {files[0]}."
             + (f" Listed: the {len(sites):,} of {n_sites:,} sites with the highest levels, "
                f"in input order; every site is in {' and '.join(files)}."
                if len(sites) < n_sites else ""))
    with doc.fold(f"Level per site: {len(rows):,} sites", fold=len(rows) > _FOLD_ROWS):
        doc.table(header, rows, groups=groups)


def _fmt_threshold(ts: Mapping) -> str:
    if ts.get("edges"):
        edges = ", ".join(f"{e:g}" for e in ts["edges"])
        direction = ("higher value, higher level" if ts.get("kind") == "ascending"
                     else "lower value, higher level")
        text = f"edges {edges} ({direction}) in {ts.get('units', '')}"
    elif ts.get("mapping"):
        text = "categories to levels " + ", ".join(f"{k} -> {v}" for k, v in ts["mapping"].items()) \
            + f" ({ts.get('units', '')})"
    else:
        text = str(ts.get("units", ""))
    if ts.get("near_margin"):
        text += f"; values within {ts['near_margin']:g} of an edge are flagged near-threshold"
    return text


def _method_difference(reference: str, text: str) -> str:
    """The words of ``text`` that differ from the ``reference`` method text, joined by
    ' ... ' (the column, pathway and period of a layer), so the method is printed once."""
    if text == reference:
        return "" if text else "-"
    a, b = reference.split(), text.split()
    parts = [" ".join(b[j1:j2]) for op, _, _, j1, j2 in
             difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
             if op in ("replace", "insert") and j2 > j1]
    return " ... ".join(parts) if parts else "(words left out)"


def _methods(doc: _Doc, manifest: Mapping, labels: Mapping[str, str]) -> None:
    doc.heading(2, "Methods", "methods")
    defs = manifest.get("definitions", {})
    doc.bullets([f"{k.replace('_', ' ')}: {v}" for k, v in defs.items()])
    comps = manifest.get("composites", [])
    if comps:
        doc.para("Composite hazards, as disclosures report them: a site's level is the highest "
                 "level of its components. Where a component has no data at a site, the "
                 "others' highest level is a lower bound: kept when medium or higher "
                 "(counted as a lower bound), else the site has no data for the composite, "
                 "never low.")
        doc.bullets([f"{c.get('label', c.get('name'))} = highest of "
                     f"{', '.join(labels.get(x, x) for x in c.get('components', []))}"
                     for c in comps])
    datasets = {d.get("id"): d for d in manifest.get("datasets", [])}
    thresholds = {t.get("name"): t for t in manifest.get("threshold_sets", [])}
    by_hazard: dict[str, list[Mapping]] = {}
    for layer in manifest.get("layers", []):
        by_hazard.setdefault(layer.get("hazard", ""), []).append(layer)
    for hazard, layers in by_hazard.items():
        doc.heading(3, f"{labels.get(hazard, hazard)} ({hazard})", f"method-{hazard}")
        items = []
        ds_ids = list(dict.fromkeys(d for lay in layers for d in lay.get("datasets", [])))
        items.append("Datasets: " + "; ".join(
            f"{datasets.get(d, {}).get('title', d)} ({datasets.get(d, {}).get('version', '?')})"
            for d in ds_ids))
        for name in dict.fromkeys(lay.get("threshold_set", "") for lay in layers):
            ts = thresholds.get(name, {})
            items.append(f"Threshold set {name} (version {ts.get('version', '?')}, "
                         f"{ts.get('kind', '?')}): {_fmt_threshold(ts)}.")
            if ts.get("source"):
                items.append(f"Threshold source: {ts['source']}")
        units = list(dict.fromkeys(_str(lay.get("units")) for lay in layers))
        if units:
            items.append("Value units: " + "; ".join(units))
        layers = sorted(layers, key=lambda x: (int(x.get("year", 0)),
                                               scenario_rank(x.get("scenario", ""))))
        texts = [_str(lay.get("method")) for lay in layers]
        reference = next((t for t in texts if t), "")
        varies = any(t != reference for t in texts)
        if reference:
            items.append(f"Method: {reference}" + (
                f" (as for {scenario_title(layers[texts.index(reference)].get('scenario', ''))} "
                f"{layers[texts.index(reference)].get('year', '')}; the other layers differ "
                "only where the table below says)" if varies else ""))
        doc.bullets(items)
        rows = []
        for lay, text in zip(layers, texts, strict=True):
            pw = lay.get("pathway", {})
            exact = bool(pw.get("exact", True))
            row = [scenario_title(lay.get("scenario", "")), lay.get("year", ""),
                   f"{pw.get('code', '')} ({pw.get('label', '')})", pw.get("period", ""),
                   _Cell("exact" if exact else "approximate", "" if exact else "bad"),
                   _str(pw.get("note"))]
            if varies:
                row.append(_method_difference(reference, text))
            rows.append(row)
        doc.table(["Scenario", "Year", "Dataset pathway", "Period", "Match", "Note",
                   *(["Method differs in"] if varies else [])], rows)
        # Layers often share their details: print each distinct record once, keyed by the
        # scenario/year layers it belongs to.
        grouped: dict[str, list[str]] = {}
        for lay in layers:
            if lay.get("details"):
                key = json.dumps(lay["details"], ensure_ascii=False, sort_keys=True, default=str)
                grouped.setdefault(key, []).append(f"{lay.get('scenario')}/{lay.get('year')}")
        if grouped:
            details = {", ".join(keys): json.loads(k) for k, keys in grouped.items()}
            text = json.dumps(details, ensure_ascii=False, indent=1, default=str)
            if len(text) > 6000:
                text = text[:6000] + "\n... (cut; the full record is in manifest.json)"
            doc.code(text, f"Layer details for {labels.get(hazard, hazard)}")


def _provenance(doc: _Doc, manifest: Mapping) -> None:
    doc.heading(2, "Data provenance and licences", "provenance")
    origin = _str(manifest.get("data_origin"))
    doc.para(f"Data origin: {origin}. {_str(manifest.get('data_origin_note'))}",
             "warn" if is_synthetic(origin) else "")
    src = manifest.get("data_source", {})
    if src:
        doc.para(f"Data read from: {_str(src.get('description'))} ({_str(src.get('root'))}).")
    rows = []
    # The catalog pins the upstream file's checksum; synthetic data are not that file.
    pin = (lambda d: "- (synthetic data, not the upstream file)") if is_synthetic(origin) \
        else (lambda d: _str(d.get("sha256"))[:12])
    for d in manifest.get("datasets", []):
        rows.append([f"{_str(d.get('title'))} ({_str(d.get('id'))})", _str(d.get("publisher")),
                     _str(d.get("version")), _str(d.get("license")), _str(d.get("citation")),
                     pin(d)])
    if rows:
        doc.table(["Dataset", "Publisher", "Version", "Licence", "Citation",
                   "Upstream SHA-256 (catalog pin)"], rows)
        doc.para("Dataset pages:")
        doc.links([(f"{_str(d.get('title'))}: {_str(d.get('homepage') or d.get('base_url'))}",
                    _str(d.get("homepage") or d.get("base_url")))
                   for d in manifest.get("datasets", [])])
    inputs = manifest.get("inputs", {}).get("sites", {})
    doc.bullets([
        f"Sites file: {_str(inputs.get('path'))} (SHA-256 {_str(inputs.get('sha256'))}, "
        f"{_str(inputs.get('n_sites'))} sites)",
        f"Catalog: {', '.join(map(str, manifest.get('catalog_sources', [])))}; threshold sets: "
        f"{', '.join(t.get('name', '') for t in manifest.get('threshold_sets', []))}",
        f"Software: sitescreen {_str(manifest.get('sitescreen_version'))}; the full record of "
        "this run is manifest.json beside this report.",
        "Map outlines: Natural Earth 1:110m Admin 0 countries (public domain), shown for "
        "orientation only.",
    ])


def _geocoding(doc: _Doc, sites: pd.DataFrame, manifest: Mapping) -> None:
    doc.heading(2, "Site locations", "geocoding")
    geo = manifest.get("geocoding", {})
    if geo.get("providers"):
        doc.para("Geocoders: " + ", ".join(map(str, geo["providers"])) + ".")
    precision = _col(sites, "geocode_precision").replace("", "(none)")
    source = _col(sites, "location_source").replace("", "(none)")
    counts = pd.crosstab(precision, source) if len(sites) else pd.DataFrame()
    if not counts.empty:
        doc.table(["Precision"] + [str(c) for c in counts.columns],
                  [[idx, *[int(v) for v in row]] for idx, row in counts.iterrows()], cls="num")
    unresolved = sites[~is_located(sites)]
    if len(unresolved):
        doc.heading(3, f"Unresolved sites ({len(unresolved)})")
        weight = unresolved_weight_sentence(sites, pd.Series(~is_located(sites), index=sites.index),
                                            manifest.get("request", {}).get("weight"))
        doc.para("These sites have no location and are not screened; they are counted as "
                 "'unresolved' in every table. Add coordinates or an override to place them."
                 + (f" In all, {weight}." if weight else ""))
        doc.table(["Site", "Name", "Address", "City", "Country", "Reason"], [
            [_str(r.get("site_id")), _str(r.get("name")), _str(r.get("address")),
             _str(r.get("city")), _str(r.get("country")),
             _str(r.get("geocode_reason")) or _str(r.get("geocode_status")) or "no coordinates"]
            for r in _capped(doc, unresolved, "unresolved_sites layer of sites.gpkg, "
                             "sites.geojson and sites.parquet").to_dict("records")])
    coarse = sites[_col(sites, "geocode_precision").isin(sorted(COARSE_PRECISIONS)).to_numpy()]
    if len(coarse):
        doc.heading(3, f"Coarse locations ({len(coarse)})")
        doc.para("These sites are placed at the point of a district, city, province or "
                 "country, not at the building: their hazard values describe that point "
                 "(the flood maps are about 1 km). Check them before reporting.", "note")
        doc.table(["Site", "Name", "Precision", "Matched", "Geocoder", "Confidence"], [
            [_str(r.get("site_id")), _str(r.get("name")), _str(r.get("geocode_precision")),
             _str(r.get("geocode_matched")), _str(r.get("geocoder")),
             _str(r.get("geocode_confidence"))]
            for r in _capped(doc, coarse, "geocode_precision field of sites.parquet, "
                             "sites.geojson and sites.gpkg").to_dict("records")])


def _capped(doc: _Doc, rows: pd.DataFrame, where: str) -> pd.DataFrame:
    """The first :data:`_MAX_SITE_ROWS` of ``rows``, saying so (and ``where`` every site
    is) when there are more."""
    if len(rows) <= _MAX_SITE_ROWS:
        return rows
    doc.para(f"The first {_MAX_SITE_ROWS:,} of {len(rows):,} are listed; every one is in the "
             f"{where}.", "note")
    return rows.iloc[:_MAX_SITE_ROWS]


def _changes(doc: _Doc, changes: Mapping) -> None:
    doc.heading(2, "Changes since the previous run", "changes")
    if not changes.get("previous_run"):
        doc.para(_str(changes.get("note")) or "No earlier run of this sites file was found: "
                 "nothing to compare.")
        return
    doc.para(f"Compared with run {changes['previous_run']} "
             f"(created {_str(changes.get('previous_created_at'))}).")
    if changes.get("per_site") is False:
        doc.para(_str(changes.get("note")), "note")
    counts = changes.get("counts", {})
    doc.table(["What", "Count"], [[k.replace("_", " "), v] for k, v in counts.items()], cls="num")
    if counts.get("unexplained"):
        doc.para(f"{counts['unexplained']} level changes have no recorded cause: the inputs, "
                 "data and method recorded in the manifests are the same. Please report this.",
                 "warn")
    inputs = changes.get("input_changes", [])
    if inputs:
        doc.heading(3, "Data and method changes")
        doc.bullets([f"{c.get('kind')}: {c.get('what')}: {_str(c.get('previous'))} -> "
                     f"{_str(c.get('current'))}" for c in inputs])
    for key, title in (("sites_added", "Sites added"), ("sites_removed", "Sites removed")):
        items = changes.get(key, [])
        if items:
            doc.heading(3, f"{title} ({len(items)})")
            doc.table(["Site", "Name", "City"],
                      [[_str(s.get("site_id")), _str(s.get("name")), _str(s.get("city"))]
                       for s in items])
    moved = changes.get("sites_moved", [])
    if moved:
        doc.heading(3, f"Sites moved ({len(moved)})")
        doc.table(["Site", "Name", "Distance (m)", "Cause", "Detail"], [
            [_str(m.get("site_id")), _str(m.get("name")),
             "-" if m.get("distance_m") is None else f"{m['distance_m']:.0f}",
             _str(m.get("cause")), _str(m.get("detail"))] for m in moved])
    shares = changes.get("share_changes", [])
    if shares:
        doc.heading(3, "Medium-and-above shares that changed")
        doc.table(["Hazard", "Scenario", "Year", "Previous %", "Now %", "Change (points)"], [
            [_str(s.get("hazard_label")), scenario_title(_str(s.get("scenario"))), s.get("year"),
             _share(s.get("previous_medium_plus_pct")), _share(s.get("medium_plus_pct")),
             _pct(s.get("delta_pct_points"))] for s in shares], cls="num")
    levels = changes.get("level_changes", [])
    if levels:
        doc.heading(3, f"Level changes ({len(levels)})")
        if len(levels) > _MAX_CHANGE_ROWS:
            doc.para(f"The first {_MAX_CHANGE_ROWS} are shown; changes.csv lists all of them.")
        doc.table(["Site", "Hazard", "Scenario", "Year", "Before", "Now", "Cause"], [
            [_str(c.get("site_id")), _str(c.get("hazard_label") or c.get("hazard")),
             scenario_title(_str(c.get("scenario"))), c.get("year"),
             _level_cell(int(c.get("previous_level") or 0), int(c.get("previous_level") or 0),
                         int(c.get("previous_level") or 0), ""),
             _level_cell(int(c.get("level") or 0), int(c.get("level") or 0),
                         int(c.get("level") or 0), ""),
             _Cell(_str(c.get("cause")), "bad" if c.get("cause_group") == "unexplained" else "")]
            for c in levels[:_MAX_CHANGE_ROWS]])


# ----------------------------------------------------------------------------- entry point

def render_report(*, shares: pd.DataFrame, sites: pd.DataFrame,
                  table: SiteResults | pd.DataFrame,
                  manifest: Mapping, charts: Mapping[str, bytes],
                  changes: Mapping | None = None,
                  cooling: np.ndarray | None = None) -> dict[str, bytes]:
    """The run report as ``{"report.md": bytes, "report.html": bytes}``.

    Parameters
    ----------
    shares, sites, table, manifest : the run's shares table, located sites, per-site results
        and manifest, as the pipeline builds them. ``table`` is the
        :class:`~sitescreen.aggregate.SiteResults` aligned with ``sites`` (the report then
        reads the long rows of the sites it lists and of the data centers only, so its cost
        follows :data:`_MAX_SITE_ROWS`, not the portfolio) or the long results table.
    charts : output of :func:`sitescreen.outputs.charts.render_charts`; PNG charts are inlined in the
        HTML and linked by their relative path (``charts/...``) from the Markdown, which is
        meant to sit in the run folder beside them.
    changes : output of :func:`sitescreen.outputs.changes.compare_runs`; adds a changes section.
    cooling : which sites are data centers with cooling columns
        (:func:`~sitescreen.outputs.geopackage.cooling_sites` of ``table``), when the caller
        has it.

    Returns
    -------
    UTF-8 encoded Markdown and HTML. Both are deterministic for the same inputs.
    """
    if isinstance(table, SiteResults):
        listed, table = _report_rows(sites, table, cooling)
    else:
        listed = _listed_sites(sites, table)
    labels = {**_labels(table), **_labels(shares)}
    synthetic = is_synthetic(manifest)
    doc = _Doc()
    _header(doc, manifest, sites)
    _headline(doc, shares)
    _cooling(doc, table, sites, manifest)
    _shares_sections(doc, shares, charts)
    _maps(doc, charts, labels, listed, table, len(sites), synthetic=synthetic)
    _site_table(doc, listed, table, labels, len(sites), _site_files(manifest))
    _methods(doc, manifest, labels)
    _provenance(doc, manifest)
    _geocoding(doc, sites, manifest)
    if changes is not None:
        _changes(doc, changes)
    toc = [(anchor, text) for kind, body in doc.blocks if kind == "h"
           for level, text, anchor in [body] if level == 2 and anchor]
    title = f"{_title(manifest)}: climate risk screening"
    banner = SYNTHETIC_WARNING if synthetic else ""  # the one synthetic-data text
    md = _to_markdown(doc)
    if synthetic:
        md = f"> **{_md_text(banner)}**\n\n" + md
    return {REPORT_MD: md.encode("utf-8"),
            REPORT_HTML: _to_html(doc, title=title, banner=banner, toc=toc).encode("utf-8")}


def headline_markdown(shares: pd.DataFrame, manifest: Mapping, *, run_dir: str = "",
                      report_uri: str = "") -> str:
    """The report's first screen as Markdown, for places that show Markdown away from the
    run folder (the Prefect summary artifact): the title, the synthetic-data warning, the
    headline table and one sentence per hazard, then where the outputs are.

    Parameters
    ----------
    shares, manifest : the run's shares table and manifest.
    run_dir : the run folder, named at the end.
    report_uri : a link to ``report.html`` (a ``file://`` URI is only useful on the server
        that wrote it, so it comes last).
    """
    doc = _Doc()
    _header(doc, manifest, pd.DataFrame(index=range(int(
        manifest.get("inputs", {}).get("sites", {}).get("n_sites") or 0))), banner=False)
    _headline(doc, shares)
    if run_dir:
        doc.para(f"Outputs: {run_dir}", "meta")
    md = _to_markdown(doc)
    if report_uri:
        uri = report_uri.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
        md += f"\n[HTML report]({uri}) (opens on the machine that wrote it)\n"
    return md
