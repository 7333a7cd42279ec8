"""The interactive map of ``report.html``: Leaflet, inlined, over Natural Earth outlines.

The map works offline and requests nothing: the vendored Leaflet build
(``outputs/vendor/leaflet``, see ``outputs/README.md``), the page's own script
(``outputs/webmap.js``), the country outlines and the sites' levels are all written into the
page. There are no tiles; the base layer is the Natural Earth 1:110m outline also drawn under
the static maps. Readers pan, zoom, choose the hazard, scenario and year the sites are
coloured by, and click a site to see all its levels.

Every piece of user text (site names, ids) travels as JSON data and is put into the page by
the script with ``textContent``, never as HTML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from sitescreen.classify import RiskLevel
from sitescreen.outputs.styling import BOUNDARY_CREDIT, LEVEL_COLOURS, NO_DATA_COLOUR, hazard_order
from sitescreen.scenarios import scenario_rank, scenario_title

__all__ = ["LEAFLET_VERSION", "WebMap", "web_map"]

#: Version of the vendored Leaflet build (npm package ``leaflet``).
LEAFLET_VERSION = "1.9.4"
_LEAFLET_CREDIT = (f"Leaflet {LEAFLET_VERSION} (BSD 2-Clause, (c) 2010-2023 Volodymyr Agafonkin, "
                   "2010-2011 CloudMade)")
_SCEN_SHORT = {"optimistic": "Opt", "current_trend": "Cur", "pessimistic": "Pes"}


@dataclass(frozen=True, slots=True)
class WebMap:
    """The map as page parts: the HTML fragment, the style sheet and the scripts to inline
    (in order). ``n_sites`` sites are drawn; ``n_unplaced`` have no location."""

    html: str
    css: str
    scripts: tuple[str, ...]
    n_sites: int
    n_unplaced: int


def _package_text(path: str) -> str:
    return resources.files("sitescreen").joinpath(path).read_text("utf-8")


@lru_cache(maxsize=1)
def _leaflet() -> tuple[str, str]:
    js = _package_text("outputs/vendor/leaflet/leaflet.js")
    # The source-map comment would make developer tools fetch leaflet.js.map.
    js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js)
    css = _package_text("outputs/vendor/leaflet/leaflet.css")
    # Marker and layer-control images the map does not use; dropped so no rule can load one.
    css = re.sub(r"url\([^)]*\)", "none", css)
    return css, js


@lru_cache(maxsize=1)
def _countries_json() -> str:
    return _script_json(json.loads(_package_text("outputs/naturalearth_110m_countries.geojson")))


def _script_json(value: object) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<`` can close the tag."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _esc(text: object) -> str:
    from html import escape

    return escape(str(text), quote=True)


def _level_chars(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").fillna(0).astype(int).clip(0, 5).astype(str)


def _map_data(sites: pd.DataFrame, table: pd.DataFrame, labels: Mapping[str, str],
              default: tuple[str, str, int] | None) -> dict:
    lon = pd.to_numeric(sites["lon"], errors="coerce")
    lat = pd.to_numeric(sites["lat"], errors="coerce")
    placed = sites[(lon.notna() & lat.notna()).to_numpy()]
    ids = [str(s) for s in placed["site_id"]]
    pos = {sid: i for i, sid in enumerate(ids)}
    # The rows of the sites drawn first: the long table of a large portfolio has millions.
    part = table[table["site_id"].isin(placed["site_id"].to_numpy())]
    part = part.assign(site_id=part["site_id"].astype(str))
    hazards = hazard_order(part) if len(part) else []
    combos = sorted({(s, int(y)) for s, y in part[["scenario", "year"]].drop_duplicates()
                     .itertuples(index=False)}, key=lambda k: (k[1], scenario_rank(k[0])))
    width = len(hazards) * len(combos)
    cells = {k: np.full((len(ids), width), "-", dtype="<U1")
             for k in ("level", "level_low", "level_high")}
    if len(part):
        # Column of each row: hazard-major over the (scenario, year) combinations.
        h_idx = part["hazard"].map({h: i for i, h in enumerate(hazards)}).to_numpy(dtype=int)
        c_key = part["scenario"].astype(str) + "|" + part["year"].astype(int).astype(str)
        c_idx = c_key.map({f"{s}|{y}": i for i, (s, y) in enumerate(combos)}).to_numpy(dtype=int)
        row = part["site_id"].map(pos).to_numpy(dtype=int)
        for key, matrix in cells.items():
            matrix[row, h_idx * len(combos) + c_idx] = _level_chars(part[key]).to_numpy()
    cells = {k: ["".join(r) for r in m] for k, m in cells.items()}
    name = placed["name"] if "name" in placed else pd.Series("", index=placed.index)
    precision = placed["geocode_precision"] if "geocode_precision" in placed else \
        pd.Series("", index=placed.index)
    out_sites = []
    for i, (sid, nm, pr, x, y) in enumerate(zip(ids, name, precision,
                                                 lon[placed.index], lat[placed.index],
                                                 strict=True)):
        lv, lo, hi = (cells[k][i] for k in ("level", "level_low", "level_high"))
        site = {"id": sid, "lon": round(float(x), 5), "lat": round(float(y), 5), "lv": lv}
        if lo != lv:
            site["lo"] = lo
        if hi != lv:
            site["hi"] = hi
        if isinstance(nm, str) and nm:
            site["name"] = nm
        if isinstance(pr, str) and pr:
            site["precision"] = pr
        out_sites.append(site)
    if default is None or default[0] not in hazards or (default[1], default[2]) not in combos:
        default = (hazards[0], combos[-1][0], combos[-1][1]) if hazards and combos else None
    return {
        "hazards": [{"id": h, "label": labels.get(h, h)} for h in hazards],
        "combos": [{"scenario": s, "year": y, "title": f"{scenario_title(s)} {y}",
                    "short": f"{_SCEN_SHORT.get(s, s)} {y}"} for s, y in combos],
        "default": {"hazard": default[0], "scenario": default[1], "year": default[2]}
        if default else None,
        "colours": {"0": NO_DATA_COLOUR, **{str(k): v for k, v in LEVEL_COLOURS.items()}},
        "levels": {str(int(lv)): lv.label for lv in RiskLevel},
        "sites": out_sites,
    }


def _select(name: str, label: str, options: Sequence[tuple[str, str]], chosen: str) -> str:
    opts = "".join(f'<option value="{_esc(v)}"{" selected" if v == chosen else ""}>{_esc(t)}'
                   "</option>" for v, t in options)
    return f'<label>{_esc(label)} <select name="{_esc(name)}">{opts}</select></label>'


def web_map(sites: pd.DataFrame, table: pd.DataFrame, *, labels: Mapping[str, str],
            default: tuple[str, str, int] | None = None, n_listed_of: int | None = None,
            synthetic: bool = False) -> WebMap | None:
    """The interactive map of ``sites`` (``site_id``, ``lon``, ``lat``, ``name``) coloured by
    their levels in the long results ``table``; None when no site has a location.

    Parameters
    ----------
    labels : display label per hazard.
    default : the (hazard, scenario, year) shown first; else the first hazard of
        :func:`~sitescreen.outputs.charts.hazard_order`, the last scenario and year.
    n_listed_of : the portfolio size when ``sites`` is a selection of it (said in the note).
    synthetic : the levels come from synthetic demo data: the map says so over the sites.
    """
    data = _map_data(sites, table, labels, default)
    if not data["sites"] or data["default"] is None:
        return None
    d = data["default"]
    n_unplaced = len(sites) - len(data["sites"])
    scen = list(dict.fromkeys(c["scenario"] for c in data["combos"]))
    years = sorted({c["year"] for c in data["combos"]})
    controls = (_select("hazard", "Hazard", [(h["id"], h["label"]) for h in data["hazards"]],
                        d["hazard"])
                + _select("scenario", "Scenario", [(s, scenario_title(s)) for s in scen],
                          d["scenario"])
                + _select("year", "Year", [(str(y), str(y)) for y in years], str(d["year"])))
    legend = "".join(
        f'<span class="imap-key"><i class="l{lvl}"></i>'
        f'{lvl} {_esc(RiskLevel(lvl).label)} (<b data-level="{lvl}">0</b>)</span>'
        for lvl in sorted(LEVEL_COLOURS, reverse=True))
    legend += ('<span class="imap-key"><i class="nd"></i>no data '
               '(<b data-level="0">0</b>)</span>')
    note = (f"{len(data['sites']):,} sites drawn"
            + (f"; {n_unplaced:,} without a location are not drawn" if n_unplaced else "")
            + (f"; the {len(sites):,} of {n_listed_of:,} sites with the highest levels"
               if n_listed_of and n_listed_of > len(sites) else "")
            + ". Click a site for its levels in every hazard, scenario and year.")
    attribution = f"{BOUNDARY_CREDIT} {_LEAFLET_CREDIT}."
    data["attribution"] = attribution
    html = (
        '<div class="imap" id="sitescreen-map">'
        f'<div class="imap-controls">{controls}</div>'
        '<div class="imap-wrap">'
        '<div class="imap-canvas" role="application" aria-label="Interactive site map"></div>'
        + ('<div class="imap-synthetic">SYNTHETIC DEMO DATA</div>' if synthetic else "")
        + "</div>"
        f'<div class="imap-legend">{legend}</div>'
        f'<p class="imap-note">{_esc(note)}</p>'
        f'<script type="application/json" id="sitescreen-map-data">{_script_json(data)}</script>'
        '<script type="application/json" id="sitescreen-map-countries">'
        f"{_countries_json()}</script>"
        "</div>")
    css_leaflet, js_leaflet = _leaflet()
    css = css_leaflet + (
        ".imap{margin:.8rem 0}.imap-wrap{position:relative}.imap-synthetic{position:absolute;"
        "bottom:1.7rem;left:.5rem;z-index:650;pointer-events:none;"
        "background:rgba(178,24,43,.85);color:#fff;font-weight:bold;padding:.15rem .6rem}"
        ".imap{margin:.8rem 0}.imap-controls{display:flex;gap:1rem;flex-wrap:wrap;"
        "margin-bottom:.4rem;font-size:.9rem}.imap-canvas{height:520px;background:#e6f0f7;"
        "border:1px solid #ccc}.imap-legend{font-size:.8rem;margin-top:.3rem}"
        ".imap-key{margin-right:.9rem;white-space:nowrap}.imap-key i{display:inline-block;"
        "width:.8rem;height:.8rem;border-radius:50%;margin-right:.25rem;vertical-align:-.1rem;"
        "border:1px solid #333}.imap-key i.nd{background:none;border-color:#7a7a7a}.imap-note{font-size:.8rem;"
        "color:#555;margin:.2rem 0}.imap-pop h4{margin:0 0 .2rem;font-size:.95rem}"
        ".imap-pop p{margin:0 0 .3rem;color:#555}.imap-pop table{font-size:.75rem;margin:0}"
        ".imap-pop td,.imap-pop th{padding:.1rem .3rem}.imap-pop th.sel,.imap-pop td.sel"
        "{outline:2px solid #333}"
        "@media print{.imap{display:none}}")
    return WebMap(html=html, css=css, scripts=(js_leaflet, _package_text("outputs/webmap.js")),
                  n_sites=len(data["sites"]), n_unplaced=n_unplaced)
